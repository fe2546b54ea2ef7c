"""What a configuration will cost before anything trains: q, steps, δ and the calibrated noise.

Used by the trainer (at launch) and by the New run preview (on every form change), so both agree
by construction; the calibrated σ is shared between them through :mod:`dpcore.privacy.calcache`.
Torch-free: it needs only the configuration, the number of training sequences N and the accountant.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

from dpcore.privacy.accounting import sample_rate_for, steps_for_epochs
from dpcore.privacy.calcache import CalibrationKey, calibrated_noise
from dpcore.privacy.delta import check_delta, default_delta


class ConfigLike(Protocol):
    """What a plan reads of a :class:`dpcore.config.TrainConfig` (which sits above privacy and imports its registry)."""

    epsilon: float | None
    delta: float | None
    noise_multiplier: float | None
    mechanism: str
    accountant: str
    batch_size: int
    max_steps: int | None
    epochs: float | None

    @property
    def user_level(self) -> bool: ...

    @property
    def is_private(self) -> bool: ...

    def validate(self) -> object: ...


@dataclass(frozen=True)
class Plan:
    """What a configuration costs on N units, as the trainer and the preview both read it.

    ``delta`` and ``noise_multiplier`` are None for a run without a guarantee; ``noise_multiplier`` is
    also None while a σ is still to calibrate (``plan(..., calibrate=False)``).
    """

    sample_rate: float  # q = 1/ceil(N/B)
    steps: int
    delta: float | None
    noise_multiplier: float | None  # σ (Gaussian) or λ (Laplace), in units of the clipping norm
    expected_batch_size: int  # q·N units a step (users or sequences)

    @property
    def epochs(self) -> float:
        """How many times each unit is seen on average: steps × q."""
        return self.steps * self.sample_rate


def plan(config: ConfigLike, num_train: int, *, calibrate: bool = True) -> Plan:
    """Sample rate q = 1/ceil(N/B), steps, δ and noise multiplier for ``config`` on N sequences.

    δ defaults to min(1e-5, 1/(10·N)) and δ ≥ 1/N is refused; σ is calibrated with the run's own
    accountant so that ε over the planned steps is at most the target. ``calibrate=False`` leaves
    a σ still to calibrate as None (the preview, while the exact σ is computed in the background).
    """
    q = sample_rate_for(num_train, config.batch_size)
    steps = config.max_steps if config.max_steps is not None else steps_for_epochs(config.epochs, q)
    out = Plan(sample_rate=q, steps=int(steps), delta=None, noise_multiplier=None,
               expected_batch_size=max(1, int(num_train * q)))
    if config.is_private:
        delta = config.delta if config.delta is not None else default_delta(num_train)
        check_delta(delta, num_train, "users" if config.user_level else "training examples")
        noise = config.noise_multiplier
        if noise is None and calibrate:
            # computed once per key and process, reused from the server's calibration folder when the
            # worker or dashboard set one (checked by one exact evaluation): dpcore.privacy.calcache
            noise = calibrated_noise(calibration_key(config, q, steps, delta))
        out = replace(out, delta=delta, noise_multiplier=noise)
    return out


def calibration_key(config: ConfigLike, sample_rate: float, steps: int, delta: float) -> CalibrationKey:
    """What the calibrated σ of ``config`` depends on, once q, steps and δ are known."""
    return CalibrationKey(config.mechanism, float(config.epsilon), float(delta), float(sample_rate), int(steps),
                          config.accountant)


def accounted_units(config: ConfigLike, summary: dict[str, Any]) -> int:
    """N for the accountant from a data summary: training users (user-level) or training sequences.

    ``summary`` is :meth:`dpcore.data.LMData.summary` (or ``summarize_lm_data``). The trainer counts
    the same users (every training user, even one whose text gave no window).
    """
    key = "num_train_users" if config.user_level else "num_train_examples"
    return int(summary[key])

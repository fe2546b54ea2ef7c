"""What a configuration will cost before anything trains: q, steps, δ and the calibrated noise.

Used by the trainer (at launch) and by the New run preview (on every form change), so both agree
by construction. Torch-free: it needs only the configuration, the number of training sequences N
and the accountant.
"""

from __future__ import annotations

from typing import Any

from dpcore.config import TrainConfig, check_delta, default_delta
from dpcore.privacy.accounting import calibrate_noise, sample_rate_for, steps_for_epochs


def plan(config: TrainConfig, num_train: int) -> dict[str, Any]:
    """Sample rate q = 1/ceil(N/B), steps, δ and noise multiplier for ``config`` on N sequences.

    δ defaults to min(1e-5, 1/(10·N)) and δ ≥ 1/N is refused; σ is calibrated with the run's own
    accountant so that ε over the planned steps is at most the target.
    """
    config.validate()
    q = sample_rate_for(num_train, config.batch_size)
    steps = config.max_steps if config.max_steps is not None else steps_for_epochs(config.epochs, q)
    out: dict[str, Any] = {"sample_rate": q, "steps": steps, "delta": None, "noise_multiplier": None,
                           "expected_batch_size": max(1, int(num_train * q))}
    if config.is_private:
        delta = config.delta if config.delta is not None else default_delta(num_train)
        check_delta(delta, num_train)
        noise = config.noise_multiplier
        if noise is None:
            noise = calibrate_noise(config.mechanism, config.epsilon, delta, q, steps, config.accountant)
        out.update(delta=delta, noise_multiplier=noise)
    return out

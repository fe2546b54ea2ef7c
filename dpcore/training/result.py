"""What a training run reports: :class:`RunResult`, the typed form of ``result.json``.

Built by :func:`dpcore.training.loop.run_training` (and completed by the audit,
:mod:`dpcore.audit.pipeline`), stored as the run's ``result`` in the run store, saved (without its
config) in ``model.pt``. Torch-free, so the views and the dashboard read it without loading torch.

:meth:`RunResult.to_dict` is ``result.json`` exactly as it has always been written;
:meth:`RunResult.from_dict` reads today's files and older ones (a key an older file lacks is None,
a key this version does not know is kept in ``extra``), so a round trip never loses anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from dpcore.records import JsonRecord, extra_field, missing_field


@dataclass(frozen=True)
class RunResult(JsonRecord):
    """One run's result, field for field the keys of its ``result.json`` (in the order they are written).

    Fields that only a private run has (ε, δ, the accountant, the clipping norm, the noise) are None
    for a run without a guarantee; the user-level ones are None for a sequence-level run.
    """

    mechanism: str
    guarantee: str  # "dp" | "none" (non-private baseline) | "no-guarantee" (naive recipe)
    epsilon: float | None  # from the steps actually run
    target_epsilon: float | None  # the ε σ was calibrated to (None when σ was given)
    delta: float | None
    accountant: str | None
    accountant_note: str | None
    neighbours: str | None  # the neighbouring relation ε is stated for
    unit: str | None  # "user" | "sequence" (private runs)
    user_cap: int | None  # k, user-level runs
    num_train_users: int | None
    num_accounted_users: int | None  # N for the accountant, user-level (audit canaries included)
    expected_sequences_per_step: float | None
    epsilon_replace_one: float | None  # ε for replacing one unit (PLD), when finite
    noise_multiplier: float | None
    gradient_noise_multiplier: float | None
    clip_count_noise: float | None
    noise_source: str | None
    sample_rate: float | None
    expected_batch_size: int | None
    steps: int | None  # steps actually run
    planned_steps: int | None
    stopped: bool | None
    clip: float | None
    engine: str | None
    privacy_unit: str | None  # the unit in a few words (dpcore.config.unit_phrase)
    num_train_examples: int | None
    num_accounted_examples: int | None
    num_val_examples: int | None
    vocabulary: str | None  # where the vocabulary comes from (never the records: ε = 0)
    vocabulary_epsilon: float | None
    num_records: int | None
    num_multiwindow_records: int | None
    num_parameters: int | None
    vocab_size: int | None
    train_loss: float | None  # mean of the last 20 steps' losses
    val_loss: float | None
    val_perplexity: float | None
    step_time_median_s: float | None
    wall_time_s: float | None
    device: str | None
    seed: int | None
    samples: list[str] | None
    init: str | None
    learning_rate: float | None
    ema: float | None
    public_model: Mapping[str, Any] | None  # the public model's summary (init public)
    config: Mapping[str, Any] | None  # the run's TrainConfig.to_dict() (absent from model.pt's copy)
    # written by the audit (dpcore.audit.pipeline), only for a run that asked for one
    num_audit_canaries: int | None = None
    audit: Mapping[str, Any] | None = None  # what result.json keeps of audit.json (absent for a stopped run)
    extra: Mapping[str, Any] = extra_field()
    missing: frozenset[str] = missing_field()

    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("num_audit_canaries", "audit")

    def without_config(self) -> dict[str, Any]:
        """:meth:`to_dict` less the config: what ``model.pt`` keeps beside its own copy of the config."""
        return {k: v for k, v in self.to_dict().items() if k != "config"}


def as_result(value: RunResult | Mapping[str, Any] | None) -> RunResult | None:
    """A trainer's return value as a :class:`RunResult` (a plugged-in trainer may return a plain dict)."""
    if value is None or isinstance(value, RunResult):
        return value
    return RunResult.from_dict(value)

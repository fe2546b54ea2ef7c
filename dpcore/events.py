"""Metrics events the trainer emits.

The trainer knows nothing of storage or UI: it reports progress through a
:class:`TrainCallbacks` object. The CLI prints a progress bar from these events, the worker
writes them to the run store, tests collect them in lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from dpcore.records import JsonRecord, extra_field, missing_field


@dataclass(frozen=True)
class RunInfo(JsonRecord):
    """What the trainer decided before the first step (sent once, by ``on_start``).

    Also a stored run's ``info`` (:attr:`dpcore.runs.store.Run.info`): :meth:`from_dict` reads what the
    worker stored, which before the first step may be only ``status_text`` (the other fields None).
    """

    total_steps: int | None
    num_train_examples: int | None
    num_val_examples: int | None
    vocab_size: int | None
    num_parameters: int | None
    sample_rate: float | None
    noise_multiplier: float | None
    delta: float | None
    device: str | None
    privacy_unit: str | None
    guarantee: str | None  # "dp" | "none" (non-private baseline) | "no-guarantee" (naive recipe)
    #: work before the first step (building the public model), stored alone until on_start replaces it
    status_text: str | None = None
    extra: Mapping[str, Any] = extra_field()
    missing: frozenset[str] = missing_field()

    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("status_text",)


@dataclass(frozen=True)
class StepMetrics:
    """One optimizer step. ``train_loss`` is None for an empty Poisson batch (noise still added)."""

    step: int
    train_loss: float | None
    epsilon: float | None
    batch_size: int
    frac_clipped: float | None
    median_grad_norm: float | None
    step_time_s: float
    elapsed_s: float
    #: the private (noised, accounted) fraction clipped; the other statistics are not covered by ε
    noisy_frac_clipped: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EvalMetrics:
    """A validation pass over the held-out users."""

    step: int
    val_loss: float
    val_perplexity: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)



#: The columns of a step's metrics and of a validation pass, in their dataclasses' order: the store's
#: tables and ``metrics.csv`` derive from these, so a new metric is one field.
METRIC_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(StepMetrics))
EVAL_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(EvalMetrics))
#: ``metrics.csv``: one row per step, the validation columns filled on evaluation steps.
CSV_COLUMNS: tuple[str, ...] = METRIC_COLUMNS + EVAL_COLUMNS[1:]

@dataclass(frozen=True)
class SampleEvent:
    """Text generated from the model during or after training. Post-processing: costs no ε."""

    step: int
    kind: str  # "train" (periodic) | "final"
    prompt: str
    texts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TrainCallbacks:
    """Override what you need; every hook is a no-op by default."""

    def on_start(self, info: RunInfo) -> None:  # noqa: D401 - hook
        pass

    def on_step(self, metrics: StepMetrics) -> None:
        pass

    def on_eval(self, metrics: EvalMetrics) -> None:
        pass

    def on_samples(self, event: SampleEvent) -> None:
        pass

    def on_status(self, text: str) -> None:
        """One sentence about work before the first step (building the public model)."""


class RecordingCallbacks(TrainCallbacks):
    """Keeps every event in lists; handy in tests and notebooks."""

    def __init__(self) -> None:
        self.info: RunInfo | None = None
        self.steps: list[StepMetrics] = []
        self.evals: list[EvalMetrics] = []
        self.samples: list[SampleEvent] = []

    def on_start(self, info: RunInfo) -> None:
        self.info = info

    def on_step(self, metrics: StepMetrics) -> None:
        self.steps.append(metrics)

    def on_eval(self, metrics: EvalMetrics) -> None:
        self.evals.append(metrics)

    def on_samples(self, event: SampleEvent) -> None:
        self.samples.append(event)

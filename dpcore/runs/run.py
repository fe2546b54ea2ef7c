"""A run as the store keeps it: its status, its decoded row, and a consistent read of it with its metrics.

One job: the run's record, typed. The store's parts (:mod:`dpcore.runs.store` and the modules it is
composed of) read and write rows; every caller holds these values, never a ``sqlite3.Row``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from enum import Enum
from typing import Any

from dpcore.config import TrainConfig
from dpcore.errors import DPCoreError
from dpcore.events import RunInfo
from dpcore.privacy.registry import Guarantee, mechanism_of
from dpcore.runs.limits import DEFAULT_INFERENCE_BUDGET, DEFAULT_STRANGER_BUDGET
from dpcore.training.result import RunResult


class Status(str, Enum):
    """Where a run is in its life: the ``runs.status`` column, typed.

    A ``str`` enum, so it is stored as (and compares equal to) the plain strings the database and
    every page already hold; executors and workers pass these, never a literal.
    """

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:  # logs and sentences say "failed", not "Status.FAILED"
        return self.value

    @property
    def is_terminal(self) -> bool:
        """A final status: the run will not change any more."""
        return self in (Status.FINISHED, Status.FAILED, Status.CANCELLED)


STATUSES = tuple(s.value for s in Status)
TERMINAL_STATUSES = tuple(s.value for s in Status if s.is_terminal)


class RunNotFound(DPCoreError):
    """No run with that id (or not one of the caller's runs: the message is the same)."""


@dataclass(frozen=True)
class Run:
    """One row of ``runs``, decoded. Timestamps are seconds since the epoch (``time.time()``)."""

    id: str
    owner: str
    status: str
    config: dict[str, Any]
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    heartbeat_at: float | None = None
    cancel_requested_at: float | None = None
    host: str | None = None
    pid: int | None = None
    pid_ident: str | None = None
    gpu: str | None = None
    device: str | None = None
    error: str | None = None
    last_step: int | None = None
    info: RunInfo | None = None  # the trainer's RunInfo, once it has started (or its status text before)
    result: RunResult | None = None  # the trainer's result, once it has returned
    inference_budget: float | None = None  # the owner's ε budget for private decoding (None: the default)
    share_uncovered: bool = False  # the owner's opt-in to show uncovered statistics to link holders
    stop_reason: str | None = None  # set when the server stopped the run (wall-time cap)
    stranger_budget: float | None = None  # the owner's ε budget for everyone else's private decoding (None: default)

    def __post_init__(self) -> None:
        """Info and result given as their JSON objects (``Run(**run.to_dict())``) are read into their records."""
        if isinstance(self.info, Mapping):
            object.__setattr__(self, "info", RunInfo.from_dict(self.info))
        if isinstance(self.result, Mapping):
            object.__setattr__(self, "result", RunResult.from_dict(self.result))

    @property
    def effective_inference_budget(self) -> float:
        """The ε budget for private decoding of this run's model (the owner's, or the default)."""
        return DEFAULT_INFERENCE_BUDGET if self.inference_budget is None else float(self.inference_budget)

    @property
    def effective_stranger_budget(self) -> float:
        """What everyone but the owner may spend together on private decoding (the owner's, or the default)."""
        return DEFAULT_STRANGER_BUDGET if self.stranger_budget is None else float(self.stranger_budget)

    @property
    def guarantee(self) -> Guarantee:
        """What the run reported (dp, none, no-guarantee), else what its registered mechanism implies.

        The one place a stored run's guarantee is worked out; an unknown mechanism raises."""
        for source in (self.result, self.info):
            if source is not None and source.guarantee:
                return Guarantee(str(source.guarantee))
        return mechanism_of(str(self.config.get("mechanism", "gaussian"))).guarantee

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def total_steps(self) -> int | None:
        return (self.info.total_steps if self.info is not None else None) or self.config.get("max_steps")

    @property
    def progress(self) -> float | None:
        """Fraction of steps done (0..1), or None before the total is known."""
        total = self.total_steps
        if not total:
            return None
        return min(1.0, (self.last_step or 0) / total)

    def train_config(self) -> TrainConfig:
        """The run's :class:`~dpcore.config.TrainConfig` (validated)."""
        return TrainConfig.from_dict(self.config)

    def to_dict(self) -> dict[str, Any]:
        """The run as JSON: info and result as the store keeps them (their ``to_dict``)."""
        return {**asdict(replace(self, info=None, result=None)),
                "info": None if self.info is None else self.info.to_dict(),
                "result": None if self.result is None else self.result.to_dict()}


@dataclass(frozen=True)
class RunSnapshot:
    """A run and its metrics read in one transaction, so they always agree."""

    run: Run
    metrics: list[dict[str, Any]]  # rows with step > since_step, by step
    evals: list[dict[str, Any]]
    metric_count: int


def run_from_row(row: sqlite3.Row) -> Run:
    data = dict(row)
    data.pop("seq", None)
    data["config"] = json.loads(data["config"])
    data["info"] = None if data["info"] is None else RunInfo.from_dict(json.loads(data["info"]))
    data["result"] = None if data["result"] is None else RunResult.from_dict(json.loads(data["result"]))
    data["share_uncovered"] = bool(data.get("share_uncovered"))
    return Run(**data)

"""The contract every executor keeps, and what they share: the submission check and the wait loop.

:class:`Executor` is all that pages, the CLI and sweeps may use of an executor, so none of them probes
one with ``getattr``; each executor in :mod:`dpcore.runs.executors.registry` implements all of it.
"""

from __future__ import annotations

import builtins
import time
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from dpcore.config import TrainConfig
from dpcore.errors import DPCoreError
from dpcore.runs.limits import ServerLimits, check_launch
from dpcore.runs.store import Run, RunStore

DEFAULT_GRACE_S = 10.0
PURGE_EVERY_S = 60.0


@dataclass(frozen=True)
class ExecutorOptions:
    """What a caller may ask of whichever executor the registry builds; each takes the options it has.

    ``max_concurrent`` caps a local executor (on Ray, the cluster's resources decide); ``train_fn``
    ("module:function", for tests and other trainers, never user input) replaces ``train_and_audit``;
    ``start_cluster``: an executor that needs a cluster may start one of its own on this machine when
    none answers (the dashboard does; a terminal does not, since its runs would end with it); the local
    executor keeps standby workers (:mod:`dpcore.runs.warm`) only with it, for the same reason.
    """

    max_concurrent: int | None = None
    train_fn: str | None = None
    start_cluster: bool = True


@runtime_checkable
class Executor(Protocol):
    """What the dashboard, the CLI and sweeps need from any executor (local processes, or Ray).

    ``limits`` are the ones it enforces at submit; ``grace_s`` is how long a cancelled run may take to
    stop before it is killed (the CLI waits that long); ``max_concurrent`` is how many runs train at
    once, or None where the cluster's resources decide.
    """

    store: RunStore
    limits: ServerLimits
    grace_s: float
    max_concurrent: int | None

    def submit(self, owner: str, config: TrainConfig, *, allow_local_paths: bool = False) -> str:
        """Queue a run for ``owner``; returns its id."""

    def status(self, run_id: str, owner: str | None = None) -> Run:
        """The run's current row (after the executor has caught up with reality)."""

    def cancel(self, run_id: str, owner: str | None = None) -> Run:
        """Cancel a queued run, or ask a running one to stop (it keeps its metrics)."""

    def list(self, owner: str | None = None) -> builtins.list[Run]:
        """Runs, newest first; only ``owner``'s when given."""

    def poll(self) -> None:
        """Catch up with reality (reap dead workers, start queued runs); pages call it before reading."""

    def wait(self, run_id: str, timeout: float | None = None, *, poll_s: float = 0.5,
             owner: str | None = None) -> Run:
        """Block until the run ends or ``timeout`` seconds pass; the run either way."""

    def describe(self) -> str:
        """Where runs train, in a few words (the dashboard's sidebar shows it)."""


def check_submission(
    store: RunStore, owner: str, config: TrainConfig | dict[str, Any], *, allow_local_paths: bool,
    limits: ServerLimits,
) -> TrainConfig:
    """The validated config of a new run, or one sentence why this server refuses it.

    Every executor calls this before queueing: the corpus (the built-in one or one of ``owner``'s
    uploads, unless a CLI user passes ``allow_local_paths``), the steps and memory budget, and the
    owner's disk quota. The count of the owner's queued and running runs is checked when the row is
    inserted (:meth:`RunStore.create_run`).
    """
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    if config.corpus != "builtin" and not allow_local_paths and store.find_upload_by_path(owner, config.corpus) is None:
        raise DPCoreError("the corpus must be the built-in corpus or one of your uploaded files")
    check_launch(config, limits=limits)
    store.check_disk_quota(owner, limits=limits)
    return config


def wait_for(executor: Executor, run_id: str, timeout: float | None = None, *, poll_s: float = 0.5,
             owner: str | None = None) -> Run:
    """Poll ``executor`` until the run ends or ``timeout`` seconds pass; returns the run either way."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        run = executor.status(run_id, owner)
        if run.is_terminal:
            return run
        if deadline is not None and time.monotonic() >= deadline:
            return run
        pause = poll_s if deadline is None else min(poll_s, max(0.0, deadline - time.monotonic()))
        time.sleep(pause)


class ExecutorClass(Protocol):
    """An executor's class as the registry sees it: built from a store and the caller's options."""

    def from_options(self, store: RunStore, options: ExecutorOptions) -> Executor:
        """The executor over ``store``, taking the options that apply to it."""

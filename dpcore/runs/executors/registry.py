"""Which executor runs the runs: ``DPCORE_EXECUTOR`` (or ``--executor``) picks one by name.

One table of :class:`ExecutorKind` objects, as :mod:`dpcore.training.engines.registry` does for engines: each
names its class as ``"module:Class"``, loaded on first use, so the dashboard never imports Ray (optional
and slow) unless it is chosen, and no executor module imports another. An unknown name raises a
sentence listing the known ones. Adding an executor is its module and one line here.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

from dpcore.errors import DPCoreError
from dpcore.runs.executors.base import Executor, ExecutorClass, ExecutorOptions
from dpcore.runs.store import RunStore

ENV_EXECUTOR = "DPCORE_EXECUTOR"
DEFAULT_EXECUTOR = "local"


@dataclass(frozen=True)
class ExecutorKind:
    """One way of running runs: its name (for ``DPCORE_EXECUTOR`` and ``--executor``) and its class."""

    name: str
    target: str  # "module:Class", imported only when this kind is built
    summary: str

    def load(self) -> ExecutorClass:
        """The executor class (importing its module now, and whatever that needs, such as Ray)."""
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)


EXECUTORS: dict[str, ExecutorKind] = {
    kind.name: kind
    for kind in (
        ExecutorKind("local", "dpcore.runs.executors.local:LocalExecutor", "processes on this server"),
        ExecutorKind("ray", "dpcore.runs.executors.ray:RayExecutor", "actors on a Ray cluster"),
    )
}
EXECUTOR_KINDS = tuple(EXECUTORS)


def executor_kind(explicit: str | None = None) -> str:
    """``explicit``, else ``$DPCORE_EXECUTOR``, else ``local``; anything else is one sentence."""
    kind = (explicit or os.environ.get(ENV_EXECUTOR) or DEFAULT_EXECUTOR).strip().lower()
    if kind not in EXECUTORS:
        raise DPCoreError(f"{ENV_EXECUTOR} must be one of {', '.join(EXECUTOR_KINDS)}, got {kind!r}")
    return kind


def make_executor(
    store: RunStore, kind: str | None = None, *, max_concurrent: int | None = None, train_fn: str | None = None,
    start_ray: bool = True,
) -> Executor:
    """The executor ``kind`` (default :func:`executor_kind`) over ``store``.

    ``ray`` connects to ``$RAY_ADDRESS``, else to a Ray started on this machine with ``ray start``; with
    ``start_ray`` (the dashboard) it starts a local Ray when there is none, which lives as long as this
    process. ``max_concurrent`` caps the local executor only: on Ray, the cluster's resources do.
    """
    options = ExecutorOptions(max_concurrent=max_concurrent, train_fn=train_fn, start_cluster=start_ray)
    return EXECUTORS[executor_kind(kind)].load().from_options(store, options)

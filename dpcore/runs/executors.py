"""Which executor runs the runs: ``DPCORE_EXECUTOR`` (or ``--executor``) picks local processes or Ray.

Its own module so that :mod:`dpcore.runs.executor` (the interface and the local executor) and
:mod:`dpcore.runs.ray_executor` (which builds on it) never import each other: this one imports both,
Ray's only when asked for (it is optional and slow to import).
"""

from __future__ import annotations

import os

from dpcore.errors import DPCoreError
from dpcore.runs.executor import Executor, LocalExecutor
from dpcore.runs.store import RunStore

ENV_EXECUTOR = "DPCORE_EXECUTOR"
EXECUTOR_KINDS = ("local", "ray")


def executor_kind(explicit: str | None = None) -> str:
    """``explicit``, else ``$DPCORE_EXECUTOR``, else ``local``; anything else is one sentence."""
    kind = (explicit or os.environ.get(ENV_EXECUTOR) or "local").strip().lower()
    if kind not in EXECUTOR_KINDS:
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
    if executor_kind(kind) == "ray":
        from dpcore.runs.ray_executor import RayExecutor  # Ray is optional and slow to import

        return RayExecutor(store, train_fn=train_fn, start_local=start_ray)
    return LocalExecutor(store, max_concurrent, train_fn=train_fn)

"""How the server is shared between owners: disk quota, retention and the fair queue.

One job: what each owner may keep and in which order their runs start. An owner's disk (uploads plus
run folders) is checked against :attr:`~dpcore.runs.limits.ServerLimits.disk_quota_bytes` before
anything new is stored; ended runs past the retention period are purged (pinned runs never); queued
runs start in :func:`fair_order`, so owners take turns. :class:`QuotaAndQueue` is the part of
:class:`~dpcore.runs.store.RunStore` that does it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from dpcore.errors import DPCoreError
from dpcore.runs import db
from dpcore.runs.limits import ServerLimits
from dpcore.runs.owners import PINNED_OWNER_PREFIX
from dpcore.runs.run import Run, RunNotFound


class QuotaExceeded(DPCoreError):
    """An owner asked for more than the server allows them (runs at once, disk)."""


class QuotaAndQueue:
    """The run store's disk quota, retention and fair queue (a part of :class:`~dpcore.runs.store.RunStore`).

    Uses the store's ``limits``, ``data_dir``, ``runs_dir``, ``transaction``, ``_reader``, ``list_runs``,
    ``list_uploads`` and ``delete_run``.
    """

    def fair_queue(self, *, conn: sqlite3.Connection | None = None) -> list[Run]:
        """Queued runs in the order the executor will start them (see :func:`fair_order`)."""
        with self.transaction(conn, write=False) as c:
            running = Counter(r[0] for r in c.execute("SELECT owner FROM runs WHERE status = 'running'"))
            last = dict(c.execute(
                "SELECT owner, MAX(started_at) FROM runs WHERE started_at IS NOT NULL GROUP BY owner"
            ).fetchall())
            queued = self.list_runs(status="queued", oldest_first=True, conn=c)
        return fair_order(queued, running, last)

    def queue_position(self, run_id: str) -> int | None:
        """1 for the next run to start, 2 for the one after...; None unless the run is queued.

        The order is the fair one the executor follows: a newcomer's first run goes before the
        second run of someone who already has one running, whoever queued first.
        """
        for position, run in enumerate(self.fair_queue(), start=1):
            if run.id == run_id:
                return position
        return None

    def disk_usage(self, owner: str) -> int:
        """Bytes ``owner`` keeps on the server: their uploads plus their run folders."""
        total = sum(u.size for u in self.list_uploads(owner))
        with self._reader(None) as c:
            ids = [r[0] for r in c.execute("SELECT id FROM runs WHERE owner = ?", (owner,))]
        return total + sum(_folder_size(self.runs_dir / run_id) for run_id in ids)

    def check_disk_quota(self, owner: str, *, adding: int = 0, what: str = "a new run",
                         limits: ServerLimits | None = None) -> None:
        """Raise :class:`QuotaExceeded` if ``owner`` is at their disk quota (or ``adding`` bytes would pass it)."""
        quota = (limits or self.limits).disk_quota_bytes
        if quota is None:
            return
        used = self.disk_usage(owner)
        if (used + adding > quota) if adding else (used >= quota):
            need = f" and {what} needs {_mb(adding)} more" if adding else f", so {what} cannot be stored"
            raise QuotaExceeded(
                f"you are using {_mb(used)} of the {_mb(quota)} of disk this server allows one person "
                f"(uploads and runs){need}: delete old runs or uploads first"
            )

    def purge_expired(self, retention_days: float, *, limit: int = 3, now: float | None = None) -> list[str]:
        """Delete up to ``limit`` finished, failed or cancelled runs that ended over ``retention_days`` ago.

        Pinned runs (owner :data:`PINNED_OWNER_PREFIX`…, the demo gallery) are kept.
        """
        if not retention_days or retention_days <= 0:
            return []
        cutoff = (time.time() if now is None else now) - retention_days * 86400.0
        with self._reader(None) as c:
            ids = [r[0] for r in c.execute(
                "SELECT id FROM runs WHERE status IN ('finished', 'failed', 'cancelled') "
                "AND COALESCE(finished_at, created_at) < ? AND substr(owner, 1, ?) != ? "
                "ORDER BY finished_at LIMIT ?",
                (cutoff, len(PINNED_OWNER_PREFIX), PINNED_OWNER_PREFIX, int(limit)),
            )]

        for run_id in ids:
            with contextlib.suppress(RunNotFound):
                self.delete_run(run_id, None)
        return ids

    def low_on_disk(self) -> bool:
        """Is the data folder's disk (nearly) full? Used to explain a worker that died writing."""
        return db.low_on_disk(self.data_dir)


def fair_order(
    queued: Sequence[Run], running: Mapping[str, int], last_started: Mapping[str, float] | None = None
) -> list[Run]:
    """Queued runs (oldest first) in the order they start when runs are shared fairly by owner.

    A run's round is how many runs of its owner are ahead of it (running, or queued earlier); runs
    start by round, and within a round the owner served longest ago (``last_started``: owner ->
    when their latest run started; never is first) goes first, then the oldest run. So whoever has
    the fewest running runs goes next, and owners take turns: a visitor who queued 30 runs does not
    make the next visitor wait for all 30.
    """
    last_started = last_started or {}
    seen: Counter[str] = Counter()
    keyed = []
    for index, run in enumerate(queued):
        turn = running.get(run.owner, 0) + seen[run.owner]
        keyed.append((turn, last_started.get(run.owner) or float("-inf"), index, run))
        seen[run.owner] += 1
    return [k[-1] for k in sorted(keyed, key=lambda k: k[:3])]


def _folder_size(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _mb(n: float) -> str:
    return f"{n / 2**20:.1f} MB"

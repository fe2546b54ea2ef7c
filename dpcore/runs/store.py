"""The run store: one SQLite file that outlives the dashboard, the CLI and every worker.

Streamlit reruns (and kills) its script at will, so a run can never live in a session: it is a
row here that any session, CLI call or worker can find again. This module holds the ``runs`` table
(:class:`Run`, its :class:`Status` and the lifecycle writes: queue, claim, heartbeat, cancel, stop,
finish, delete) and :class:`RunStore`, the one object callers use, composed of one part per job:

* :mod:`dpcore.runs.db` - the SQLite plumbing: pooled connections, ``BEGIN IMMEDIATE`` transactions,
  migrations, a full disk as :class:`DiskFull` (RunStore *is* a :class:`~dpcore.runs.db.Database`);
* :mod:`dpcore.runs.schema` - the tables of ``runs.sqlite3`` and their versioned migration steps;
* :mod:`dpcore.runs.records` - metrics, evals, samples and artifact paths of each run;
* :mod:`dpcore.runs.ledger` - the inference ledger and the stranger budget;
* :mod:`dpcore.runs.upload_store` - owners' uploaded corpora;
* :mod:`dpcore.runs.quota` - disk quota, retention and the fair queue.

Every name other modules import from here (the errors, ``Upload``, ``LedgerState``, ``fair_order``,
``disk_full``...) is still importable from here.

Design notes:

* :meth:`RunStore.snapshot` reads a run and its new metrics in one read transaction, so the two
  always agree.
* The executor's dispatcher claims queued runs inside one write transaction (methods that take a
  ``conn`` run in the caller's), so two processes never launch the same run.
* Limits (:class:`~dpcore.runs.limits.ServerLimits`): runs per owner are counted in the same
  transaction that queues a new one; uploads and new runs are refused past the owner's disk quota;
  :meth:`RunStore.fair_queue` is the order the executor starts queued runs in.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dpcore.config import TrainConfig
from dpcore.errors import DPCoreError
from dpcore.paths import STORE_FILENAME, resolve_data_dir
from dpcore.runs.db import (  # noqa: F401 - re-exported: callers import these from the store
    BUSY_TIMEOUT_S,
    DISK_FULL_HINT,
    LOW_DISK_BYTES,
    Database,
    DiskFull,
    disk_full,
    is_disk_full,
)
from dpcore.runs.ledger import (  # noqa: F401 - re-exported
    DEFAULT_INFERENCE_BUDGET,
    InferenceBudgetExceeded,
    InferenceLedger,
    LedgerEntry,
    LedgerState,
    StrangerBudgetExceeded,
)
from dpcore.runs.limits import ServerLimits
from dpcore.runs.owners import PINNED_OWNER_PREFIX, check_owner  # noqa: F401 - re-exported
from dpcore.runs.quota import QuotaAndQueue, QuotaExceeded, fair_order  # noqa: F401 - re-exported
from dpcore.runs.records import RunRecords
from dpcore.runs.run import (  # noqa: F401 - re-exported: callers import these from the store
    STATUSES,
    TERMINAL_STATUSES,
    Run,
    RunNotFound,
    RunSnapshot,
    Status,
    run_from_row,
)
from dpcore.runs.schema import MIGRATIONS, SCHEMA_VERSION  # noqa: F401 - re-exported
from dpcore.runs.upload_store import Upload, UploadNotFound, UploadStore, _owner_folder  # noqa: F401 - re-exported

#: version -> statements that bring a file from version-1 to version (the steps of :data:`MIGRATIONS`).
_MIGRATIONS: dict[int, list[str]] = {m.version: list(m.statements) for m in MIGRATIONS}


_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class RunStore(RunRecords, InferenceLedger, UploadStore, QuotaAndQueue, Database):
    """Runs, metrics, samples, artifacts and uploads in ``<data_dir>/runs.sqlite3``.

    ``path`` is the data folder (default: :func:`dpcore.paths.resolve_data_dir`), or a ``.sqlite3``
    / ``.db`` file whose folder then is the data folder. Safe to share between threads.

    The connections, transactions and schema are :class:`~dpcore.runs.db.Database`'s; the run rows
    are this class's; every other job is one of its parts (see the module's docstring).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, limits: ServerLimits | None = None) -> None:
        self.limits = limits or ServerLimits.from_env()
        target = resolve_data_dir(path)
        if target.suffix in (".sqlite3", ".sqlite", ".db"):
            self.data_dir, self.db_path = target.parent, target
        else:
            self.data_dir, self.db_path = target, target / STORE_FILENAME
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as err:
            if is_disk_full(err):
                raise disk_full(f"cannot create the data folder {self.data_dir}") from err
            raise DPCoreError(f"cannot create the data folder {self.data_dir}: {err.strerror}") from err
        self.runs_dir = self.data_dir / "runs"
        self.uploads_dir = self.data_dir / "uploads"
        super().__init__(self.db_path, label="the run store", migrations=MIGRATIONS)

    # ------------------------------------------------------------------ runs
    def run_dir(self, run_id: str) -> Path:
        """The folder for a run's checkpoint, result files and worker log."""
        if not _ID_RE.match(run_id):
            raise RunNotFound(f"{run_id!r} is not a valid run id")
        return self.runs_dir / run_id

    def create_run(
        self, owner: str, config: Mapping[str, Any] | TrainConfig, *, max_runs: int | None = None
    ) -> str:
        """Queue a new run for ``owner`` and return its id. ``config``: a dict or a TrainConfig.

        With ``max_runs``, refuses (:class:`QuotaExceeded`) when the owner already has that many runs
        queued or running; the count and the insert are one transaction, so racing submits cannot
        both slip under the cap.
        """
        owner = check_owner(owner)
        data = config.to_dict() if isinstance(config, TrainConfig) else dict(config)
        text = json.dumps(data, sort_keys=True)
        for _ in range(5):
            run_id = secrets.token_hex(12)
            try:
                with self.transaction() as conn:
                    if max_runs is not None:
                        active = conn.execute(
                            "SELECT COUNT(*) FROM runs WHERE owner = ? AND status IN ('queued', 'running')",
                            (owner,),
                        ).fetchone()[0]
                        if active >= max_runs:
                            raise QuotaExceeded(
                                f"you already have {active} runs queued or running, the most this server "
                                f"allows one person ({max_runs}): wait for one to finish or cancel one"
                            )
                    conn.execute(
                        "INSERT INTO runs (id, owner, config, status, created_at) "
                        "VALUES (?, ?, ?, 'queued', ?)",
                        (run_id, owner, text, time.time()),
                    )
                return run_id
            except sqlite3.IntegrityError:  # id collision: astronomically rare, retry
                continue
        raise RuntimeError("could not allocate a unique run id")

    def get_run(
        self, run_id: str, owner: str | None = None, *, conn: sqlite3.Connection | None = None
    ) -> Run:
        """The run ``run_id``; with ``owner``, only if it is theirs (else :class:`RunNotFound`)."""
        with self._reader(conn) as c:
            row = c.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None or (owner is not None and row["owner"] != owner):
            raise RunNotFound(f"no run with id {run_id!r} in {self.data_dir}")
        return run_from_row(row)

    def list_runs(
        self,
        owner: str | None = None,
        *,
        status: str | Sequence[str] | None = None,
        limit: int | None = None,
        oldest_first: bool = False,
        conn: sqlite3.Connection | None = None,
    ) -> list[Run]:
        """Runs, newest first (or oldest first: queue order), filtered by owner and status."""
        sql, params = "SELECT * FROM runs WHERE 1=1", []
        if owner is not None:
            sql += " AND owner = ?"
            params.append(owner)
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            sql += f" AND status IN ({','.join('?' * len(statuses))})"
            params.extend(statuses)
        sql += " ORDER BY seq" + ("" if oldest_first else " DESC")
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._reader(conn) as c:
            rows = c.execute(sql, params).fetchall()
        return [run_from_row(r) for r in rows]

    # ------------------------------------------------------- lifecycle (executor & worker)
    def claim_run(
        self,
        conn: sqlite3.Connection,
        run_id: str,
        *,
        host: str,
        pid: int,
        pid_ident: str | None,
        gpu: str | None = None,
    ) -> bool:
        """Mark a queued run as running in process ``pid``; False if it was not queued any more."""
        now = time.time()
        cur = conn.execute(
            "UPDATE runs SET status = 'running', started_at = ?, heartbeat_at = ?, host = ?, "
            "pid = ?, pid_ident = ?, gpu = ? WHERE id = ? AND status = 'queued'",
            (now, now, host, pid, pid_ident, gpu, run_id),
        )
        return cur.rowcount == 1

    def mark_dispatched(self, conn: sqlite3.Connection, run_id: str, host: str) -> bool:
        """Mark a queued run as handed to a cluster (``host``), in the caller's write transaction.

        False if it was not queued and undispatched any more: another poller took it a moment ago,
        so the one transaction that both marks and launches it is what keeps a run from starting twice.
        """
        cur = conn.execute(
            "UPDATE runs SET host = ? WHERE id = ? AND status = 'queued' AND host IS NULL", (host, run_id)
        )
        return cur.rowcount == 1

    def finish_run(
        self,
        run_id: str,
        status: Status,
        *,
        error: str | None = None,
        result: Mapping[str, Any] | None = None,
        only_if_running: bool = True,
        conn: sqlite3.Connection | None = None,
    ) -> bool:
        """Give a run its final status. By default only a running run: never overwrite a verdict.

        ``status`` is a :class:`Status` (its plain string is accepted too, as stored); a status that is
        not final raises, so a run can never be "finished" back into the queue.
        """
        if status not in TERMINAL_STATUSES:
            raise ValueError(f"not a final status: {status!r}")
        status = Status(status)
        sql = (
            "UPDATE runs SET status = ?, error = ?, finished_at = ?, "
            "result = COALESCE(?, result) WHERE id = ?"
        )
        if only_if_running:
            sql += " AND status = 'running'"
        else:
            sql += " AND status IN ('queued', 'running')"
        blob = None if result is None else json.dumps(dict(result), default=str)
        with self.transaction(conn) as c:
            cur = c.execute(sql, (status, error, time.time(), blob, run_id))
        return cur.rowcount == 1

    def request_cancel(self, run_id: str, owner: str | None = None) -> Run:
        """Cancel a queued run at once; flag a running one (the executor then signals it)."""
        with self.transaction() as conn:
            run = self.get_run(run_id, owner, conn=conn)
            now = time.time()
            if run.status == "queued":
                conn.execute(
                    "UPDATE runs SET status = 'cancelled', finished_at = ?, cancel_requested_at = ? "
                    "WHERE id = ?",
                    (now, now, run_id),
                )
            elif run.status == "running" and run.cancel_requested_at is None:
                conn.execute("UPDATE runs SET cancel_requested_at = ? WHERE id = ?", (now, run_id))
            return self.get_run(run_id, conn=conn)

    def request_stop(self, run_id: str, reason: str, *, conn: sqlite3.Connection | None = None) -> bool:
        """The server stops a running run (``reason``: one sentence); it then ends "failed" with it."""
        with self.transaction(conn) as c:
            cur = c.execute(
                "UPDATE runs SET stop_reason = COALESCE(stop_reason, ?), "
                "cancel_requested_at = COALESCE(cancel_requested_at, ?) WHERE id = ? AND status = 'running'",
                (reason, time.time(), run_id),
            )
        return cur.rowcount == 1

    def heartbeat(self, run_id: str) -> bool:
        """Record that the worker is alive; returns True when a cancel has been requested."""
        with self.transaction() as conn:
            row = conn.execute(
                "UPDATE runs SET heartbeat_at = ? WHERE id = ? RETURNING cancel_requested_at, status",
                (time.time(), run_id),
            ).fetchone()
        return row is None or row[0] is not None or row[1] != "running"

    def set_run_info(self, run_id: str, info: Mapping[str, Any], device: str | None = None) -> None:
        """Store the trainer's RunInfo (total steps, device, ...) when training starts."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE runs SET info = ?, device = COALESCE(?, device), heartbeat_at = ? WHERE id = ?",
                (json.dumps(dict(info), default=str), device, time.time(), run_id),
            )

    # ------------------------------------------------------------------ views, owner settings, deletion
    def snapshot(self, run_id: str, since_step: int = -1, owner: str | None = None) -> RunSnapshot:
        """The run, its metrics after ``since_step`` and its evals, read as one consistent view."""
        with self.transaction(write=False) as conn:
            run = self.get_run(run_id, owner, conn=conn)
            return RunSnapshot(
                run=run,
                metrics=self.metrics(run_id, since_step, conn=conn),
                evals=self.evals(run_id, conn=conn),
                metric_count=self.metric_count(run_id, conn=conn),
            )

    def set_share_uncovered(self, run_id: str, owner: str, value: bool) -> Run:
        """The owner opts in (or out) to show uncovered statistics to people who open the run by link."""
        return self._owner_update(run_id, owner, "share_uncovered", 1 if value else 0)

    def _owner_update(self, run_id: str, owner: str, column: str, value: Any) -> Run:
        with self.transaction() as conn:
            cur = conn.execute(f"UPDATE runs SET {column} = ? WHERE id = ? AND owner = ?", (value, run_id, owner))
            if cur.rowcount != 1:  # another owner's run looks exactly like an unknown one
                raise RunNotFound(f"no run with id {run_id!r} in {self.data_dir}")
            return self.get_run(run_id, conn=conn)

    def delete_run(self, run_id: str, owner: str | None) -> None:
        """Delete a run: its row (metrics, evals, samples, artifacts and ledger cascade) and folder.

        ``owner`` must own it (None: any owner, for the operator). A running run is refused: cancel
        it and let it stop first.
        """
        folder = self.run_dir(run_id)
        with self.transaction() as conn:
            run = self.get_run(run_id, owner, conn=conn)
            if run.status == "running":
                raise DPCoreError(f"run {run_id} is still running: cancel it and let it stop, then delete it")
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        shutil.rmtree(folder, ignore_errors=True)

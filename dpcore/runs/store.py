"""The run store: one SQLite file that outlives the dashboard, the CLI and every worker.

Streamlit reruns (and kills) its script at will, so a run can never live in a session: it is a
row here that any session, CLI call or worker can find again. The store holds

* ``runs`` - id, owner key, config (JSON), status, timestamps, pid/host/heartbeat of the worker,
  device, error message, the trainer's RunInfo and result (JSON);
* ``metrics`` (one row per optimizer step), ``evals``, ``samples`` and ``artifacts`` of each run;
* ``uploads`` - corpora uploaded by an owner, stored under ``uploads/<hash of owner>/``;
* ``inference_ledger`` (schema v2) - every text privately decoded from a run's model: who asked
  (owner key), the decoder, tokens, ε per token and the text's ε; ``runs.inference_budget`` caps
  their basic-composition total, and ``runs.share_uncovered`` is the owner's opt-in to show
  statistics that the DP guarantee does not cover to people who open the run by link;
  ``runs.stranger_budget`` (schema v4) caps what everyone but the owner spends together on a model
  whose text is for its owner only (:mod:`dpcore.runs.access`).

Design notes:

* WAL journal mode, so readers (30 dashboard sessions polling) never block the one writer per run
  and never see half a transaction; :meth:`RunStore.snapshot` reads a run and its new metrics in
  one read transaction, so the two always agree.
* Every write is a short ``BEGIN IMMEDIATE`` transaction; ``busy_timeout`` makes concurrent writers
  queue instead of failing. The executor's dispatcher claims queued runs inside such a transaction,
  so two processes never launch the same run.
* ``PRAGMA user_version`` is the schema version; :data:`_MIGRATIONS` upgrades older files in place
  and a file from a newer release is refused with a clear message instead of being damaged.
* WAL needs a local file system (not NFS): keep the data folder on a local disk.
* Connections are pooled and never shared between threads at the same time (Streamlit runs each
  script run in a fresh thread); a forked child drops the parent's pool.
* Private files: ``runs.sqlite3`` is created 0600 (SQLite gives ``-wal`` and ``-shm`` the same mode),
  folders 0700, uploads 0600.
* A full disk is :class:`DiskFull` (a :class:`~dpcore.errors.DPCoreError`: "the server's disk is full:
  ...") from every read and write, never a bare ``sqlite3.OperationalError`` or ``OSError``.
* Limits (:class:`~dpcore.runs.limits.ServerLimits`): runs per owner are counted in the same
  transaction that queues a new one; uploads and new runs are refused past the owner's disk quota;
  :meth:`RunStore.fair_queue` is the order the executor starts queued runs in.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

from dpcore.config import TrainConfig
from dpcore.errors import DPCoreError
from dpcore.events import EVAL_COLUMNS, METRIC_COLUMNS, RunInfo
from dpcore.paths import STORE_FILENAME, resolve_data_dir
from dpcore.privacy.registry import Guarantee, mechanism_of
from dpcore.runs import access
from dpcore.runs.limits import DEFAULT_STRANGER_BUDGET, ServerLimits
from dpcore.training.result import RunResult

SCHEMA_VERSION = 4
#: The ε budget for private decoding of one model when its owner has not set one, over all texts and
#: viewers together. It was 20, which cannot buy one readable text: private prediction pays for every
#: token, and readable text needs ε ≈ 8 per character (measured, ``bench/decoding_points.py``), so the
#: Samples page's "readable" point (``dpcore.privacy.decoders.READABLE``: 16 characters) costs up to 128 for
#: ONE text. 160 affords exactly one such text (a newcomer sees the trade-off at its true price, and
#: that ε = 128 is a promise in name only), then 32 texts at the "private" point (ε ≤ 1 each), and
#: never a second readable one: more is a choice the owner makes and sees (``set_inference_budget``);
#: an owner who wants private decoding to mean something sets it low (e.g. 8, the training ε).
DEFAULT_INFERENCE_BUDGET = 160.0
#: Owner keys that start with this are the server's own pinned runs (the demo gallery): no browser
#: or CLI user holds one, and retention never deletes them.
PINNED_OWNER_PREFIX = "pinned:"


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
BUSY_TIMEOUT_S = 30.0
_POOL_SIZE = 8
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

_SCHEMA_V1 = [
    """CREATE TABLE IF NOT EXISTS runs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        owner TEXT NOT NULL,
        config TEXT NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('queued', 'running', 'finished', 'failed', 'cancelled')),
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        heartbeat_at REAL,
        cancel_requested_at REAL,
        host TEXT,
        pid INTEGER,
        pid_ident TEXT,
        gpu TEXT,
        device TEXT,
        error TEXT,
        last_step INTEGER,
        info TEXT,
        result TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS runs_owner ON runs (owner, seq)",
    "CREATE INDEX IF NOT EXISTS runs_status ON runs (status, seq)",
    """CREATE TABLE IF NOT EXISTS metrics (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step INTEGER NOT NULL,
        train_loss REAL, epsilon REAL, batch_size INTEGER, frac_clipped REAL,
        median_grad_norm REAL, step_time_s REAL, elapsed_s REAL,
        ts REAL NOT NULL,
        PRIMARY KEY (run_id, step)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS evals (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step INTEGER NOT NULL,
        val_loss REAL, val_perplexity REAL,
        ts REAL NOT NULL,
        PRIMARY KEY (run_id, step)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS samples (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step INTEGER NOT NULL,
        kind TEXT NOT NULL,
        prompt TEXT NOT NULL,
        text TEXT NOT NULL,
        ts REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS samples_run ON samples (run_id, id)",
    """CREATE TABLE IF NOT EXISTS artifacts (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        path TEXT NOT NULL,
        ts REAL NOT NULL,
        PRIMARY KEY (run_id, name)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS uploads (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        filename TEXT NOT NULL,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        created_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS uploads_owner ON uploads (owner, created_at)",
]

_SCHEMA_V2 = [
    # the private (noised, accounted) fraction of clipped examples; frac_clipped is the exact one
    "ALTER TABLE metrics ADD COLUMN noisy_frac_clipped REAL",
    "ALTER TABLE runs ADD COLUMN inference_budget REAL",
    "ALTER TABLE runs ADD COLUMN share_uncovered INTEGER NOT NULL DEFAULT 0",
    """CREATE TABLE IF NOT EXISTS inference_ledger (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        ts REAL NOT NULL,
        viewer TEXT NOT NULL,
        decoder TEXT NOT NULL,
        tokens INTEGER NOT NULL CHECK (tokens >= 0),
        epsilon_per_token REAL NOT NULL CHECK (epsilon_per_token > 0),
        epsilon REAL NOT NULL CHECK (epsilon >= 0)
    )""",
    "CREATE INDEX IF NOT EXISTS inference_ledger_run ON inference_ledger (run_id, id)",
]

_SCHEMA_V3 = [
    # why the server stopped a run (wall-time cap): the worker then ends it "failed" with this sentence
    "ALTER TABLE runs ADD COLUMN stop_reason TEXT",
]

_SCHEMA_V4 = [
    # the owner's raise (or cut) of what everyone else may spend on private decoding (None: the default)
    "ALTER TABLE runs ADD COLUMN stranger_budget REAL",
]

#: version -> statements that bring a file from version-1 to version. Append, never edit.
_MIGRATIONS: dict[int, list[str]] = {1: _SCHEMA_V1, 2: _SCHEMA_V2, 3: _SCHEMA_V3, 4: _SCHEMA_V4}
#: Below this much free space in the data folder a failed write is blamed on a full disk.
LOW_DISK_BYTES = 64 * 2**20
DISK_FULL_HINT = (
    "delete old runs or uploads (the dashboard, or python -m dpcore runs delete / delete-upload), "
    "or ask whoever runs the server to free space"
)


class RunNotFound(DPCoreError):
    """No run with that id (or not one of the caller's runs: the message is the same)."""


class UploadNotFound(DPCoreError):
    """No upload with that id among the caller's uploads."""


class InferenceBudgetExceeded(DPCoreError):
    """A private decoding charge that would take a model's inference ledger past its budget."""


class StrangerBudgetExceeded(InferenceBudgetExceeded):
    """A non-owner's private decoding charge past what everyone but the owner may spend on the model."""


class DiskFull(DPCoreError):
    """The disk under the data folder is full; the message says so and what to do."""


class QuotaExceeded(DPCoreError):
    """An owner asked for more than the server allows them (runs at once, disk)."""


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


@dataclass(frozen=True)
class Upload:
    """A corpus file uploaded by one owner. ``path`` is what a run's ``corpus`` points at."""

    id: str
    owner: str
    filename: str
    path: str
    size: int
    sha256: str
    created_at: float


@dataclass(frozen=True)
class LedgerEntry:
    """One privately decoded text: ``epsilon`` = ``tokens`` × ``epsilon_per_token`` (basic composition)."""

    id: int
    run_id: str
    ts: float
    viewer: str  # the owner key of whoever asked (never shown)
    decoder: str
    tokens: int
    epsilon_per_token: float
    epsilon: float


@dataclass(frozen=True)
class LedgerState:
    """A run's inference ledger read in one transaction. ``spent`` is the basic-composition total."""

    run_id: str
    budget: float
    budget_is_default: bool
    entries: tuple[LedgerEntry, ...]
    charged: LedgerEntry | None = None  # the entry :meth:`RunStore.charge_inference` just wrote
    owner: str = ""
    strangers_capped: bool = False  # the model's text is for its owner only: the stranger budget applies
    stranger_budget: float = DEFAULT_STRANGER_BUDGET
    stranger_budget_is_default: bool = True

    @property
    def spent(self) -> float:
        return math.fsum(e.epsilon for e in self.entries)

    @property
    def remaining(self) -> float:
        return max(0.0, self.budget - self.spent)

    @property
    def stranger_spent(self) -> float:
        """The basic-composition total of every text decoded by someone other than the owner."""
        return math.fsum(e.epsilon for e in self.entries if e.viewer != self.owner)

    @property
    def stranger_remaining(self) -> float:
        return max(0.0, self.stranger_budget - self.stranger_spent)

    @property
    def strangers(self) -> access.StrangerBudget | None:
        """The stranger budget and what it has left; None when the model's text is not for its owner only."""
        if not self.strangers_capped:
            return None
        return access.StrangerBudget(self.stranger_budget, self.stranger_budget_is_default, self.stranger_spent,
                                     DEFAULT_STRANGER_BUDGET)

    @property
    def tokens(self) -> int:
        return sum(e.tokens for e in self.entries)


class RunStore:
    """Runs, metrics, samples, artifacts and uploads in ``<data_dir>/runs.sqlite3``.

    ``path`` is the data folder (default: :func:`dpcore.paths.resolve_data_dir`), or a ``.sqlite3``
    / ``.db`` file whose folder then is the data folder. Safe to share between threads.
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
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._init_schema()

    # ------------------------------------------------------------------ connections
    def _open(self) -> sqlite3.Connection:
        try:
            _create_private(self.db_path)
            conn = sqlite3.connect(
                self.db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except (sqlite3.Error, OSError) as err:
            if is_disk_full(err):
                raise disk_full(f"cannot open the run store {self.db_path}") from err
            raise DPCoreError(f"cannot open the run store {self.db_path}: {err}") from err
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across crashes of any process
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @contextlib.contextmanager
    def _pooled(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's connections must not be used
                self._idle, self._pid = [], os.getpid()
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._open()
        try:
            yield conn
        except (sqlite3.OperationalError, OSError) as err:
            if is_disk_full(err):
                raise disk_full(f"the run store {self.db_path} cannot be written") from err
            raise
        finally:
            if conn.in_transaction:
                conn.rollback()
            with self._lock:
                keep = len(self._idle) < _POOL_SIZE and self._pid == os.getpid()
                if keep:
                    self._idle.append(conn)
            if not keep:
                conn.close()

    @contextlib.contextmanager
    def transaction(
        self, conn: sqlite3.Connection | None = None, *, write: bool = True
    ) -> Iterator[sqlite3.Connection]:
        """A write (``BEGIN IMMEDIATE``) or read (snapshot) transaction.

        Given ``conn`` (already inside a transaction), runs in that transaction instead, so
        store methods compose into one atomic step (the dispatcher uses this).
        """
        if conn is not None:
            yield conn
            return
        with self._pooled() as own:
            own.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield own
            except BaseException:
                own.rollback()
                raise
            own.execute("COMMIT")

    def close(self) -> None:
        """Close idle connections; the store stays usable (new ones are opened on demand)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _init_schema(self) -> None:
        for suffix in ("", "-wal", "-shm"):  # files of an older release were created 0644
            with contextlib.suppress(OSError):
                os.chmod(f"{self.db_path}{suffix}", 0o600)
        with self._pooled() as conn:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise DPCoreError(
                    f"the run store {self.db_path} cannot use write-ahead logging (journal mode "
                    f"{mode!r}); put the data folder on a local disk"
                )
        with self.transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise DPCoreError(
                    f"the run store {self.db_path} was written by a newer dp-rnn-lab (schema "
                    f"v{version}, this one knows v{SCHEMA_VERSION}); upgrade dp-rnn-lab or use "
                    f"another data folder"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[target]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")

    def schema_version(self) -> int:
        with self._pooled() as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def integrity_check(self) -> str:
        """SQLite's own check of the file: ``"ok"`` when intact."""
        with self._pooled() as conn:
            return str(conn.execute("PRAGMA integrity_check").fetchone()[0])

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
        owner = _check_owner(owner)
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
        return _run_from_row(row)

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
        return [_run_from_row(r) for r in rows]

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

    @contextlib.contextmanager
    def _reader(self, conn: sqlite3.Connection | None) -> Iterator[sqlite3.Connection]:
        if conn is not None:
            yield conn
        else:
            with self._pooled() as own:
                yield own

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

    # ------------------------------------------------------------------ metrics
    def add_metrics(self, run_id: str, rows: Iterable[Mapping[str, Any]]) -> int:
        """Append step metrics (StepMetrics dicts) in one transaction; returns rows written."""
        now = time.time()
        values = [tuple(_num(r.get(c)) for c in METRIC_COLUMNS) + (now,) for r in rows]
        if not values:
            return 0
        cols = ", ".join(METRIC_COLUMNS)
        with self.transaction() as conn:
            conn.executemany(
                f"INSERT OR REPLACE INTO metrics (run_id, {cols}, ts) "
                f"VALUES (?, {', '.join('?' * (len(METRIC_COLUMNS) + 1))})",
                [(run_id, *v) for v in values],
            )
            conn.execute(
                "UPDATE runs SET last_step = MAX(COALESCE(last_step, -1), ?), heartbeat_at = ? "
                "WHERE id = ?",
                (max(v[0] for v in values), now, run_id),
            )
        return len(values)

    def add_eval(self, run_id: str, row: Mapping[str, Any]) -> None:
        """Append one validation pass (EvalMetrics dict)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO evals (run_id, step, val_loss, val_perplexity, ts) "
                "VALUES (?, ?, ?, ?, ?)",
                (run_id, *(_num(row.get(c)) for c in EVAL_COLUMNS), time.time()),
            )

    def add_samples(self, run_id: str, step: int, kind: str, prompt: str, texts: Sequence[str]) -> None:
        """Append generated texts (one row each)."""
        now = time.time()
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO samples (run_id, step, kind, prompt, text, ts) VALUES (?, ?, ?, ?, ?, ?)",
                [(run_id, step, kind, prompt, text, now) for text in texts],
            )

    def add_artifact(self, run_id: str, name: str, path: str | os.PathLike[str]) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO artifacts (run_id, name, path, ts) VALUES (?, ?, ?, ?)",
                (run_id, name, str(path), time.time()),
            )

    def metrics(
        self, run_id: str, since_step: int = -1, *, conn: sqlite3.Connection | None = None
    ) -> list[dict[str, Any]]:
        """Step metrics with ``step > since_step``, by step: poll with the last step you have."""
        with self._reader(conn) as c:
            rows = c.execute(
                f"SELECT {', '.join(METRIC_COLUMNS)}, ts FROM metrics "
                "WHERE run_id = ? AND step > ? ORDER BY step",
                (run_id, since_step),
            ).fetchall()
        return [dict(r) for r in rows]

    def metric_count(self, run_id: str, *, conn: sqlite3.Connection | None = None) -> int:
        with self._reader(conn) as c:
            return int(c.execute("SELECT COUNT(*) FROM metrics WHERE run_id = ?", (run_id,)).fetchone()[0])

    def latest_metrics(
        self, run_id: str, *, conn: sqlite3.Connection | None = None
    ) -> dict[str, Any] | None:
        with self._reader(conn) as c:
            row = c.execute(
                f"SELECT {', '.join(METRIC_COLUMNS)}, ts FROM metrics WHERE run_id = ? "
                "ORDER BY step DESC LIMIT 1",
                (run_id,),
            ).fetchone()
        return None if row is None else dict(row)

    def evals(
        self, run_id: str, since_step: int = -1, *, conn: sqlite3.Connection | None = None
    ) -> list[dict[str, Any]]:
        with self._reader(conn) as c:
            rows = c.execute(
                "SELECT step, val_loss, val_perplexity, ts FROM evals "
                "WHERE run_id = ? AND step > ? ORDER BY step",
                (run_id, since_step),
            ).fetchall()
        return [dict(r) for r in rows]

    def samples(self, run_id: str, since_id: int = 0) -> list[dict[str, Any]]:
        """Generated texts (id, step, kind, prompt, text, ts), oldest first."""
        with self._reader(None) as c:
            rows = c.execute(
                "SELECT id, step, kind, prompt, text, ts FROM samples "
                "WHERE run_id = ? AND id > ? ORDER BY id",
                (run_id, since_id),
            ).fetchall()
        return [dict(r) for r in rows]

    def artifacts(self, run_id: str) -> dict[str, str]:
        """Artifact name -> path (``checkpoint``, ``result``, ``metrics_csv``, ``log``)."""
        with self._reader(None) as c:
            rows = c.execute("SELECT name, path FROM artifacts WHERE run_id = ?", (run_id,)).fetchall()
        return {r["name"]: r["path"] for r in rows}

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

    # ------------------------------------------------------------------ inference ledger
    def charge_inference(self, run_id: str, viewer: str, decoder: str, epsilon_per_token: float,
                         tokens: int) -> LedgerState:
        """Record that ``viewer`` decodes up to ``tokens`` tokens privately, if the budget allows.

        The budget check and the insert are ONE write transaction (``BEGIN IMMEDIATE`` serialises
        writers across threads and processes), so concurrent viewers can never overspend. Raises
        :class:`InferenceBudgetExceeded` (and records nothing) when the charge would take the
        basic-composition total past the run's budget, and :class:`StrangerBudgetExceeded` when
        ``viewer`` is not the owner of a model whose text is for its owner only
        (:func:`dpcore.runs.access.owner_only`) and the charge would take everyone-but-the-owner's
        total past the stranger budget: the same transaction checks both. Charge the most a text may
        spend *before* decoding it, then :meth:`settle_inference` down to what it used.
        """
        viewer = _check_owner(viewer)
        eps0, tokens = float(epsilon_per_token), int(tokens)
        if not (math.isfinite(eps0) and eps0 > 0):
            raise DPCoreError(f"ε per token must be a positive number, got {epsilon_per_token!r}")
        if tokens < 0:
            raise DPCoreError(f"a text cannot spend a negative number of tokens ({tokens})")
        cost = eps0 * tokens
        with self.transaction() as conn:
            run = self.get_run(run_id, conn=conn)
            state = self._ledger(conn, run)
            if (state.strangers_capped and viewer != run.owner
                    and state.stranger_spent + cost > state.stranger_budget * (1 + 1e-12)):
                raise StrangerBudgetExceeded(
                    f"this text may spend ε = {cost:.3g} ({tokens} tokens × {eps0:.3g}), but everyone other than "
                    f"the owner may spend ε = {state.stranger_budget:.3g} in total on this model (its stranger "
                    f"budget, {'the default' if state.stranger_budget_is_default else 'set by its owner'}) and "
                    f"{state.stranger_remaining:.3g} is left: the model has no privacy guarantee of its own, so "
                    f"ask for fewer tokens or a smaller ε per token, or ask the run's owner"
                )
            if state.spent + cost > state.budget * (1 + 1e-12):
                raise InferenceBudgetExceeded(
                    f"this text may spend ε = {cost:.3g} ({tokens} tokens × {eps0:.3g}), but the model's "
                    f"private-decoding budget of ε = {state.budget:.3g} has {state.remaining:.3g} left: ask for "
                    f"fewer tokens or a smaller ε per token, or ask the run's owner to raise the budget"
                )
            row = conn.execute(
                "INSERT INTO inference_ledger (run_id, ts, viewer, decoder, tokens, epsilon_per_token, epsilon) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *",
                (run_id, time.time(), viewer, str(decoder), tokens, eps0, cost),
            ).fetchone()
            entry = LedgerEntry(**dict(row))
            return replace(state, entries=(*state.entries, entry), charged=entry)

    def settle_inference(self, entry_id: int, tokens: int) -> None:
        """Lower a charged entry to the ``tokens`` a text really used (never raises a charge)."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE inference_ledger SET tokens = ?, epsilon = ? * epsilon_per_token "
                "WHERE id = ? AND tokens >= ?",
                (int(tokens), int(tokens), int(entry_id), int(tokens)),
            )

    def ledger(self, run_id: str) -> LedgerState:
        """The run's inference ledger: every private text's charge, its budget and totals."""
        with self.transaction(write=False) as conn:
            return self._ledger(conn, self.get_run(run_id, conn=conn))

    def _ledger(self, conn: sqlite3.Connection, run: Run) -> LedgerState:
        rows = conn.execute("SELECT * FROM inference_ledger WHERE run_id = ? ORDER BY id", (run.id,)).fetchall()
        return LedgerState(run.id, run.effective_inference_budget, run.inference_budget is None,
                           tuple(LedgerEntry(**dict(r)) for r in rows), owner=run.owner,
                           strangers_capped=access.owner_only(run), stranger_budget=run.effective_stranger_budget,
                           stranger_budget_is_default=run.stranger_budget is None)

    def set_inference_budget(self, run_id: str, owner: str, epsilon: float | None) -> Run:
        """The owner sets the ε budget for private decoding of their run's model (None: the default)."""
        if epsilon is not None:
            epsilon = float(epsilon)
            if not (math.isfinite(epsilon) and epsilon >= 0):
                raise DPCoreError(f"the inference budget must be a number ≥ 0, got {epsilon!r}")
        return self._owner_update(run_id, owner, "inference_budget", epsilon)

    def set_stranger_budget(self, run_id: str, owner: str, epsilon: float | None) -> Run:
        """The owner raises (or cuts) what everyone else may spend on private decoding of their model.

        A deliberate choice, kept on the run and named in its privacy statement; None goes back to
        :data:`~dpcore.runs.limits.DEFAULT_STRANGER_BUDGET`. Anyone but the owner is refused with
        :class:`RunNotFound`, as every owner-only change is.
        """
        if epsilon is not None:
            epsilon = float(epsilon)
            if not (math.isfinite(epsilon) and epsilon >= 0):
                raise DPCoreError(f"the stranger budget must be a number ≥ 0, got {epsilon!r}")
        return self._owner_update(run_id, owner, "stranger_budget", epsilon)

    def set_share_uncovered(self, run_id: str, owner: str, value: bool) -> Run:
        """The owner opts in (or out) to show uncovered statistics to people who open the run by link."""
        return self._owner_update(run_id, owner, "share_uncovered", 1 if value else 0)

    def _owner_update(self, run_id: str, owner: str, column: str, value: Any) -> Run:
        with self.transaction() as conn:
            cur = conn.execute(f"UPDATE runs SET {column} = ? WHERE id = ? AND owner = ?", (value, run_id, owner))
            if cur.rowcount != 1:  # another owner's run looks exactly like an unknown one
                raise RunNotFound(f"no run with id {run_id!r} in {self.data_dir}")
            return self.get_run(run_id, conn=conn)

    # ------------------------------------------------------------------ uploads
    def save_upload(self, owner: str, filename: str, data: bytes) -> Upload:
        """Store an uploaded corpus privately for ``owner``; the returned ``path`` goes in a config.

        Refused past the owner's disk quota; on a full disk raises :class:`DiskFull` and leaves no
        partial file behind.
        """
        from dpcore.data.upload import MAX_UPLOAD_BYTES  # the data layer owns the limit

        owner = _check_owner(owner)
        if not data:
            raise DPCoreError(f"the uploaded file {filename!r} is empty")
        if len(data) > MAX_UPLOAD_BYTES:
            raise DPCoreError(
                f"the uploaded file {filename!r} is {len(data) / 2**20:.1f} MiB; the limit is "
                f"{MAX_UPLOAD_BYTES // 2**20} MiB"
            )
        self.check_disk_quota(owner, adding=len(data), what=f"the upload {filename!r}")
        upload_id = secrets.token_hex(8)
        folder = self.uploads_dir / _owner_folder(owner) / upload_id
        path = folder / _safe_filename(filename)
        tmp = path.with_name(path.name + ".part")
        try:
            for level in (self.uploads_dir, folder.parent):
                level.mkdir(mode=0o700, exist_ok=True)
            folder.mkdir(mode=0o700)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as err:
            _remove_upload_files(tmp, path)
            if is_disk_full(err):
                raise disk_full(f"the upload {filename!r} could not be stored") from err
            raise DPCoreError(f"the upload {filename!r} could not be stored: {err.strerror or err}") from err
        upload = Upload(
            id=upload_id, owner=owner, filename=str(filename), path=str(path), size=len(data),
            sha256=hashlib.sha256(data).hexdigest(), created_at=time.time(),
        )
        try:
            with self.transaction() as conn:
                conn.execute(
                    "INSERT INTO uploads (id, owner, filename, path, size, sha256, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    tuple(asdict(upload).values()),
                )
        except BaseException:
            _remove_upload_files(tmp, path)
            raise
        return upload

    def list_uploads(self, owner: str) -> list[Upload]:
        """``owner``'s uploads, newest first. Nobody else's, ever."""
        with self._reader(None) as c:
            rows = c.execute(
                "SELECT * FROM uploads WHERE owner = ? ORDER BY created_at DESC", (owner,)
            ).fetchall()
        return [Upload(**dict(r)) for r in rows]

    def get_upload(self, owner: str, upload_id: str) -> Upload:
        """One of ``owner``'s uploads; another owner's id is reported as unknown."""
        with self._reader(None) as c:
            row = c.execute(
                "SELECT * FROM uploads WHERE id = ? AND owner = ?", (upload_id, owner)
            ).fetchone()
        if row is None:
            raise UploadNotFound(f"no uploaded corpus with id {upload_id!r}")
        return Upload(**dict(row))

    def find_upload_by_path(self, owner: str, path: str | os.PathLike[str]) -> Upload | None:
        """The upload of ``owner`` stored at ``path``, if any (used to vet a run's corpus)."""
        wanted = os.path.realpath(path)
        for upload in self.list_uploads(owner):
            if os.path.realpath(upload.path) == wanted:
                return upload
        return None

    def runs_using_upload(self, owner: str, upload_id: str) -> list[Run]:
        """``owner``'s runs trained (or queued to train) on the upload, newest first."""
        wanted = os.path.realpath(self.get_upload(owner, upload_id).path)
        return [r for r in self.list_runs(owner)
                if os.path.realpath(str(r.config.get("corpus", ""))) == wanted]

    def delete_upload(self, owner: str, upload_id: str, delete_runs: bool = False) -> list[str]:
        """Delete one of ``owner``'s uploads; with ``delete_runs`` also the runs trained on it.

        Refused while a run still needs the file: a running one (cancel it first), or, without
        ``delete_runs``, a queued one. Returns the ids of the runs deleted with it.
        """
        upload = self.get_upload(owner, upload_id)
        users = self.runs_using_upload(owner, upload_id)
        blocking = [r for r in users if r.status == "running" or (r.status == "queued" and not delete_runs)]
        if blocking:
            run = blocking[0]
            raise DPCoreError(
                f"run {run.id} is {run.status} on {upload.filename!r}: cancel it first, then delete the file"
            )
        deleted = []
        if delete_runs:
            for run in users:
                self.delete_run(run.id, owner)
                deleted.append(run.id)
        with self.transaction() as conn:
            conn.execute("DELETE FROM uploads WHERE id = ? AND owner = ?", (upload_id, owner))
        _remove_upload_files(Path(upload.path + ".part"), Path(upload.path))
        return deleted

    # ------------------------------------------------------------------ deletion, disk, retention
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
        try:
            return shutil.disk_usage(self.data_dir).free < LOW_DISK_BYTES
        except OSError:
            return False


# ---------------------------------------------------------------------- helpers
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


def is_disk_full(err: BaseException) -> bool:
    """Is ``err`` a full disk (ENOSPC, a quota, or SQLite's "database or disk is full")?"""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return True
    if isinstance(err, sqlite3.Error):
        return getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(err)
    return False


def disk_full(what: str) -> DiskFull:
    """The one sentence for a full disk: what could not be written, and what to do."""
    return DiskFull(f"the server's disk is full: {what}; {DISK_FULL_HINT}")


def _create_private(path: Path) -> None:
    """Create the store file 0600 before SQLite does (it would follow the umask: 0644)."""
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))


def _remove_upload_files(tmp: Path, path: Path) -> None:
    for leftover in (tmp, path):
        with contextlib.suppress(OSError):
            leftover.unlink()
    with contextlib.suppress(OSError):
        path.parent.rmdir()


def _folder_size(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _mb(n: float) -> str:
    return f"{n / 2**20:.1f} MB"


def _run_from_row(row: sqlite3.Row) -> Run:
    data = dict(row)
    data.pop("seq", None)
    data["config"] = json.loads(data["config"])
    data["info"] = None if data["info"] is None else RunInfo.from_dict(json.loads(data["info"]))
    data["result"] = None if data["result"] is None else RunResult.from_dict(json.loads(data["result"]))
    data["share_uncovered"] = bool(data.get("share_uncovered"))
    return Run(**data)


def _num(value: Any) -> Any:
    """NaN is stored as NULL by SQLite anyway; say so explicitly and keep ints as ints."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _check_owner(owner: str) -> str:
    if not isinstance(owner, str) or not owner.strip() or len(owner) > 200:
        raise DPCoreError("a run or upload needs an owner key (1 to 200 characters)")
    return owner


def _owner_folder(owner: str) -> str:
    """A folder name for an owner that cannot escape ``uploads/`` nor reveal the key."""
    return hashlib.sha256(owner.encode()).hexdigest()[:20]


def _safe_filename(filename: str) -> str:
    name = str(filename).replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:120]
    if not name or name.startswith("."):
        name = "upload" + (name if name.startswith(".") else "")
    return name

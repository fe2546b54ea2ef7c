"""SQLite plumbing for the data folder's files: connections, transactions and schema migrations.

One job: open a SQLite file the way every store of dp-rnn-lab wants it, and keep its schema current.
The run store (:class:`dpcore.runs.store.RunStore`, which is a :class:`Database`) and the rooms file
(:class:`dpcore.runs.rooms.RoomStore`, which holds one) both go through this; neither holds SQL
plumbing of its own. Nothing here knows a table.

* WAL journal mode, so readers (30 dashboard sessions polling) never block the one writer and never
  see half a transaction; WAL needs a local file system (not NFS), and a file that cannot use it is
  refused with a sentence saying so.
* Every write is a short ``BEGIN IMMEDIATE`` transaction (:meth:`Database.transaction`);
  ``busy_timeout`` makes concurrent writers queue instead of failing.
* ``PRAGMA user_version`` is the schema version: :class:`Migration` steps (data, appended and never
  edited) upgrade older files in place, in order, recording each version, and a file from a newer
  release is refused with a clear message instead of being damaged.
* Connections are pooled and never shared between threads at the same time (Streamlit runs each
  script run in a fresh thread); a forked child drops the parent's pool.
* Private files: the database is created 0600 before SQLite sees it (SQLite gives ``-wal`` and
  ``-shm`` the same mode), and the files of an older release are set to 0600 when opened.
* A full disk is :class:`DiskFull` (a :class:`~dpcore.errors.DPCoreError`: "the server's disk is full:
  ..."), never a bare ``sqlite3.OperationalError`` or ``OSError``: :func:`is_disk_full` recognises
  one and :func:`disk_full` says it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from dpcore.errors import DPCoreError

BUSY_TIMEOUT_S = 30.0
POOL_SIZE = 8
#: Below this much free space in the data folder a failed write is blamed on a full disk.
LOW_DISK_BYTES = 64 * 2**20
DISK_FULL_HINT = (
    "delete old runs or uploads (the dashboard, or python -m dpcore runs delete / delete-upload), "
    "or ask whoever runs the server to free space"
)


class DiskFull(DPCoreError):
    """The disk under the data folder is full; the message says so and what to do."""


@dataclass(frozen=True)
class Migration:
    """One schema step: the statements that bring a file from ``version - 1`` to ``version``."""

    version: int
    statements: tuple[str, ...]


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


def low_on_disk(folder: str | os.PathLike[str]) -> bool:
    """Is the disk under ``folder`` (nearly) full? Used to explain a worker that died writing."""
    try:
        return shutil.disk_usage(folder).free < LOW_DISK_BYTES
    except OSError:
        return False


def create_private(path: Path) -> None:
    """Create the file 0600 before SQLite does (it would follow the umask: 0644)."""
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))


class Database:
    """One SQLite file: pooled connections, transactions, and its schema brought up to date on opening.

    ``label`` names the file in every sentence ("the run store", "the rooms file"); ``migrations``
    are the file's schema steps, versions 1, 2, ... in order (the last one is :attr:`latest_version`).
    Safe to share between threads.
    """

    def __init__(self, db_path: Path, *, label: str, migrations: Sequence[Migration]) -> None:
        versions = [m.version for m in migrations]
        if versions != list(range(1, len(versions) + 1)):
            raise ValueError(f"migrations must be versions 1, 2, ... in order, got {versions}")
        self.db_path = Path(db_path)
        self.label = label
        self.migrations = tuple(migrations)
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._init_schema()

    @property
    def latest_version(self) -> int:
        """The schema version this release writes."""
        return self.migrations[-1].version if self.migrations else 0

    # ------------------------------------------------------------------ connections
    def _open(self) -> sqlite3.Connection:
        try:
            create_private(self.db_path)
            conn = sqlite3.connect(
                self.db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except (sqlite3.Error, OSError) as err:
            if is_disk_full(err):
                raise disk_full(f"cannot open {self.label} {self.db_path}") from err
            raise DPCoreError(f"cannot open {self.label} {self.db_path}: {err}") from err
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
                raise disk_full(f"{self.label} {self.db_path} cannot be written") from err
            raise
        finally:
            if conn.in_transaction:
                conn.rollback()
            with self._lock:
                keep = len(self._idle) < POOL_SIZE and self._pid == os.getpid()
                if keep:
                    self._idle.append(conn)
            if not keep:
                conn.close()

    @contextlib.contextmanager
    def _reader(self, conn: sqlite3.Connection | None) -> Iterator[sqlite3.Connection]:
        """``conn`` (the caller's transaction), else a pooled connection in autocommit: one statement."""
        if conn is not None:
            yield conn
        else:
            with self._pooled() as own:
                yield own

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
        """Close idle connections; the file stays usable (new ones are opened on demand)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # ------------------------------------------------------------------ schema
    def _init_schema(self) -> None:
        for suffix in ("", "-wal", "-shm"):  # files of an older release were created 0644
            with contextlib.suppress(OSError):
                os.chmod(f"{self.db_path}{suffix}", 0o600)
        with self._pooled() as conn:  # WAL cannot be switched on inside a transaction
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise DPCoreError(
                    f"{self.label} {self.db_path} cannot use write-ahead logging (journal mode "
                    f"{mode!r}); put the data folder on a local disk"
                )
        latest = self.latest_version
        with self.transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > latest:
                raise DPCoreError(
                    f"{self.label} {self.db_path} was written by a newer dp-rnn-lab (schema "
                    f"v{version}, this one knows v{latest}); upgrade dp-rnn-lab or use "
                    f"another data folder"
                )
            for step in self.migrations[version:]:
                for statement in step.statements:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {int(step.version)}")

    def schema_version(self) -> int:
        with self._pooled() as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def integrity_check(self) -> str:
        """SQLite's own check of the file: ``"ok"`` when intact."""
        with self._pooled() as conn:
            return str(conn.execute("PRAGMA integrity_check").fetchone()[0])

"""Standby workers: a worker process started before its run, so that a launch skips the start-up.

A run's worker spends seconds before its first step (importing torch, the trainer and Opacus, cutting
the built-in corpus into windows, the public corpus for a run that starts from the public model). A
*standby* is the same ``python -m dpcore.runs.worker`` started ahead with ``--standby``: it does that
work, then waits until an executor hands it a run; from then on it is that run's worker, exactly as
one started for it (its own process and process group, the dispatcher's claim of its pid, a heartbeat,
the memory cap set after the warm-up and before training, the same final status), and it exits after
that one run. So a crash, kill -9 or out-of-memory still fails only that run (the executor's reaper
sees its pid gone), and the limits and quotas are checked where they always were (submit, claim).

The pool is a folder of the data folder, ``warm/``, private to the server's user, one entry per
standby (its pid):

* ``<pid>.json``: written by the executor that started it (its *keeper*): pid, process identity, the
  keeper's pid and profile (the Python, project and trainer it runs: an executor only hands runs to
  a standby of its own profile);
* ``<pid>.fifo``: the standby reads its run from this named pipe (one JSON line: the run id, and the
  handing executor's limits, which the standby takes on before it claims and caps its memory);
* ``<pid>.claimed``: created (``O_EXCL``) by whoever gets the standby first: an executor taking it
  for a run ("taken"), or the standby or its keeper sending it away ("leaving": idle too long,
  keeper gone, SIGTERM, :meth:`~dpcore.runs.executors.local.LocalExecutor.close`);
* ``<pid>.log``: its output until it takes a run (then copied to the run's ``worker.log``); the log
  of one that died unused is kept as ``last-died.log``.

Keepers are long-lived processes (the dashboard's executor, ``DPCORE_WARM_WORKERS`` standbys, default
1, 0 turns them off); any local executor, the CLI's and an exiting worker's hand-over included, hands
runs to a waiting standby of its profile. A standby leaves when its keeper's process is gone, after
``DPCORE_WARM_IDLE_S`` unused (default an hour), or when its entry disappears. GPU servers keep none
(a worker's GPU is chosen when its run starts, and CUDA reads it once).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import select
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpcore.config import TrainConfig
from dpcore.errors import DPCoreError
from dpcore.runs.lifecycle import load_train_fn

ENV_WARM_WORKERS = "DPCORE_WARM_WORKERS"
ENV_WARM_IDLE_S = "DPCORE_WARM_IDLE_S"
DEFAULT_WARM_WORKERS = 1
DEFAULT_IDLE_S = 3600.0
FOLDER = "warm"
WAIT_S = 1.0  # how often a waiting standby looks at its keeper and its entry
TAKEN_WAIT_S = 30.0  # a standby claimed by an executor waits this long for its run, then leaves
HOLD_S = 120.0  # a standby started beside a starting run holds its warm-up at most this long for it

Alive = Callable[[int, "str | None"], bool]


def resolve_warm_workers(explicit: int | None = None) -> int:
    """How many standbys a keeper keeps: ``explicit``, else ``$DPCORE_WARM_WORKERS``, else 1."""
    value: Any = explicit
    if value is None:
        value = os.environ.get(ENV_WARM_WORKERS, "").strip() or DEFAULT_WARM_WORKERS
    try:
        count = int(value)
    except (TypeError, ValueError):
        count = -1
    if count < 0:
        raise DPCoreError(f"{ENV_WARM_WORKERS} must be a whole number ≥ 0 (0: no standby workers), got {value!r}")
    return count


def idle_seconds() -> float:
    """How long a standby waits unused before it leaves (``$DPCORE_WARM_IDLE_S``)."""
    try:
        return max(1.0, float(os.environ.get(ENV_WARM_IDLE_S, "") or DEFAULT_IDLE_S))
    except ValueError:
        return DEFAULT_IDLE_S


# ---------------------------------------------------------------------------------------- the pool
@dataclass(frozen=True)
class Entry:
    """One standby of the pool, as its keeper registered it."""

    pid: int
    ident: str | None
    profile: dict[str, Any]
    claimed: bool
    keeper: int | None = None


class Pool:
    """The ``warm/`` folder of a data folder: who waits, who was taken (see the module's docstring)."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(data_dir) / FOLDER

    def file(self, pid: int, suffix: str) -> Path:
        return self.dir / f"{pid}{suffix}"

    def ensure(self) -> Path:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.dir

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive ``flock`` while a keeper counts and starts standbys (released if it dies)."""
        fd = os.open(self.ensure() / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def register(self, pid: int, ident: str | None, profile: dict[str, Any]) -> None:
        """The keeper's record of a standby it just started (the keeper: this process)."""
        _write_atomic(self.file(pid, ".json"), {"pid": pid, "ident": ident, "profile": profile,
                                                 "keeper": os.getpid(), "started_at": time.time()})

    def entries(self) -> list[Entry]:
        """Every registered standby, oldest first (the furthest in its warm-up)."""
        found: list[tuple[float, Entry]] = []
        with contextlib.suppress(FileNotFoundError):
            for path in self.dir.glob("*.json"):
                try:
                    info = json.loads(path.read_text(encoding="utf-8"))
                    pid = int(info["pid"])
                except (OSError, ValueError, KeyError, TypeError):
                    continue
                claimed = self.file(pid, ".claimed").exists()
                keeper = info.get("keeper")
                entry = Entry(pid, info.get("ident"), dict(info.get("profile") or {}), claimed,
                              keeper if isinstance(keeper, int) else None)
                found.append((float(info.get("started_at") or 0), entry))
        return [entry for _, entry in sorted(found, key=lambda item: item[0])]

    def sweep(self, alive: Alive) -> list[Entry]:
        """The live entries; a dead one's files are removed (its log kept as ``last-died.log``)."""
        live = []
        for entry in self.entries():
            if alive(entry.pid, entry.ident):
                live.append(entry)
            else:
                self.discard(entry.pid, keep_log=not entry.claimed)
        return live

    def take(self, profile: dict[str, Any], alive: Alive) -> Entry | None:
        """A waiting standby of ``profile``, now this caller's (its ``.claimed`` created first), or None."""
        for entry in self.entries():
            if entry.claimed or entry.profile != profile or not alive(entry.pid, entry.ident):
                continue
            if claim_file(self.file(entry.pid, ".claimed"), "taken"):
                return entry
        return None

    def hand(self, entry: Entry, message: dict[str, Any]) -> bool:
        """Write the run to the standby's pipe (one line, atomic); False if nobody reads it any more."""
        line = (json.dumps(message) + "\n").encode()
        try:
            fd = os.open(self.file(entry.pid, ".fifo"), os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader (it died); ENOENT: it left
            return False
        try:
            return os.write(fd, line) == len(line)
        except OSError:
            return False
        finally:
            os.close(fd)

    def send_away(self, pid: int) -> bool:
        """Claim a waiting standby as "leaving" (its keeper closing): True if no executor had taken it."""
        return claim_file(self.file(pid, ".claimed"), "leaving")

    def discard(self, pid: int, *, keep_log: bool = False) -> None:
        """Remove a standby's files (a dead one's, or its own as it takes a run or leaves)."""
        if keep_log:
            with contextlib.suppress(OSError):
                os.replace(self.file(pid, ".log"), self.dir / "last-died.log")
        for suffix in (".json", ".fifo", ".claimed", ".log"):
            with contextlib.suppress(OSError):
                self.file(pid, suffix).unlink()


def claim_file(path: Path, word: str) -> bool:
    """Create ``path`` if nobody has: True for the one caller that did."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    except OSError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(word)
    return True


def _write_atomic(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(payload, fh)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------- the standby's side
class Standby:
    """The standby worker's end of its pool entry: the pipe it waits on, and leaving cleanly."""

    def __init__(self, pool: Pool, pid: int | None = None) -> None:
        self.pool, self.pid = pool, os.getpid() if pid is None else pid
        self._fd: int | None = None
        self._buffer = b""

    def open(self) -> None:
        """Create and open its pipe (read-write, so it never reads end-of-file while nobody writes)."""
        fifo = self.pool.file(self.pid, ".fifo")
        with contextlib.suppress(FileNotFoundError):
            fifo.unlink()
        os.mkfifo(fifo, 0o600)
        self._fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)

    def wait(self, *, keeper_alive: Callable[[], bool], stopping: Callable[[], bool],
             idle_s: float) -> dict[str, Any] | None:
        """The run an executor handed over, or None once this standby left the pool."""
        deadline = time.monotonic() + idle_s
        taken_deadline: float | None = None
        registered = self.pool.file(self.pid, ".json")
        first_check = time.monotonic() + WAIT_S  # its keeper registers it just after starting it
        while True:
            message = self._read(WAIT_S)
            if message is not None:
                return message
            now = time.monotonic()
            claimed = self.claimed_as()
            if claimed == "taken":
                taken_deadline = taken_deadline or now + TAKEN_WAIT_S  # its run is on the way
                if now > taken_deadline:
                    return None  # the executor that took it gave up (its transaction failed)
                continue
            if claimed == "leaving":
                return None  # its keeper sent it away
            leave = stopping() or now > deadline or not keeper_alive() or (
                now > first_check and not registered.exists())
            if leave and self.withdraw():
                return None

    def claimed_as(self) -> str | None:
        """"taken", "leaving", or None while nobody has claimed this standby."""
        try:
            return self.pool.file(self.pid, ".claimed").read_text(encoding="utf-8") or "taken"
        except FileNotFoundError:
            return None
        except OSError:
            return "leaving"

    def withdraw(self) -> bool:
        """Leave the pool unless an executor took this standby first: True if it is out now."""
        return claim_file(self.pool.file(self.pid, ".claimed"), "leaving") or self.claimed_as() != "taken"

    def _read(self, timeout: float) -> dict[str, Any] | None:
        assert self._fd is not None, "open() first"
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if ready:
            try:
                self._buffer += os.read(self._fd, 4096)
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                    raise
        line, sep, rest = self._buffer.partition(b"\n")
        if not sep:
            return None
        self._buffer = rest
        try:
            message = json.loads(line)
        except ValueError:
            return None
        return message if isinstance(message, dict) and isinstance(message.get("run_id"), str) else None

    def leave(self) -> None:
        """Close the pipe and remove its entry (as it takes its run, or goes)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.pool.discard(self.pid)


# ------------------------------------------------------------------------------------------ the warm-up
def data_key(config: TrainConfig) -> tuple[Any, ...] | None:
    """What the windows of ``config``'s corpus depend on (built-in corpus only), else None."""
    if config.corpus != "builtin":
        return None  # an upload is read when its run starts
    return (config.corpus, config.builtin_users, config.tokenizer, config.seq_len, config.val_fraction,
            config.max_vocab)


@dataclass
class Prepared:
    """What a standby made ahead: the trainer function, and corpora already cut into windows."""

    fn: Callable[..., dict[str, Any]] | None = None
    data: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    seconds: float = 0.0

    def data_for(self, config: TrainConfig) -> Any:
        """The windows for ``config`` if made ahead for exactly its corpus settings, else None."""
        key = data_key(config)
        return None if key is None else self.data.pop(key, None)  # one run per process: hand it over once


def prepare(train_fn: str, default_train_fn: str, configs: tuple[TrainConfig, ...] = ()) -> Prepared:
    """Do ahead what a run's worker does before its first step: imports and, for the default trainer,
    the built-in corpus's windows (the default config's, and ``configs``'), the public corpus's.
    """
    started = time.monotonic()
    prepared = Prepared(fn=load_train_fn(train_fn))
    if train_fn == default_train_fn:
        # slow imports, paid here rather than at a run's start: torch (with the trainer) and Opacus,
        # which the engines import when they build their loader
        import opacus.data_loader  # noqa: F401
        import torch

        from dpcore.data.prior import public_log_prior
        from dpcore.data.tokenizer import PAD_ID
        from dpcore.training.loop import load_data
        from dpcore.training.model import GRULanguageModel, ModelConfig, sequence_losses
        from dpcore.training.pretrain import public_data

        # the optimizers import torch._dynamo on first use (~1 s), the GRU's kernels load on first use
        model = GRULanguageModel(ModelConfig(vocab_size=8, embed_dim=4, hidden_size=4))
        for optimizer in (torch.optim.Adam(model.parameters()), torch.optim.SGD(model.parameters(), lr=0.1)):
            batch = torch.ones(2, 5, dtype=torch.long)
            logits, _ = model(batch[:, :-1])
            sequence_losses(logits, batch[:, 1:], PAD_ID).mean().backward()
            optimizer.step()
        for config in (TrainConfig(), *configs):
            key = data_key(config)
            if key is not None and key not in prepared.data:
                prepared.data[key] = load_data(config)
                public_data(config)  # cached in this process: a run from the public model needs it
                public_log_prior(prepared.data[key].tokenizer)  # the output layer's public prior, cached too
    prepared.seconds = time.monotonic() - started
    return prepared

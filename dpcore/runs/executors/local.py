"""The local executor: each run in its own process on this server, through a fair queue.

It keeps the contract of :class:`~dpcore.runs.executors.base.Executor` (``DPCORE_EXECUTOR=local``, the
default: it needs nothing; :mod:`dpcore.runs.executors.registry`). :class:`LocalExecutor` runs each run
as ``python -m dpcore.runs.worker`` in its own OS process and process group. There is no daemon: the
queue is the ``queued`` rows of the store, and every ``poll()`` (called by ``submit``, ``status``,
``list``, ``wait`` and by each worker as it exits) does the supervisor's work inside one SQLite write transaction:

* reap - a ``running`` row whose process is gone (kill -9, out of memory, reboot: checked by pid
  plus the process start time, so a reused pid does not count) becomes ``failed`` with
  :data:`~dpcore.runs.lifecycle.DIED_MESSAGE` (``DISK_FULL_MESSAGE`` when its disk is full), or
  ``cancelled`` if a cancel was requested; its metrics stay;
* unstick - a local run whose process lives but has sent no heartbeat for ``stale_after_s``
  (SIGSTOP, a hang) is SIGKILLed with its process group and fails with ``STUCK_MESSAGE``;
* time out - a run older than ``max_run_seconds`` is asked to stop (SIGTERM) with a reason, and
  ends ``failed`` with a sentence naming the cap;
* escalate - a run still alive :attr:`LocalExecutor.grace_s` after its stop request gets SIGKILL;
* dispatch - queued runs start in the fair order of :meth:`RunStore.fair_queue` (the owner with
  the fewest running runs first, oldest first among equals), never more than
  ``max_active_per_owner`` of one owner, while fewer than ``max_concurrent`` run;
* retention - a few runs that ended more than ``retention_days`` ago are deleted (once a minute);
* keep warm - a keeper (``warm_workers`` > 0: the dashboard's executor) keeps that many standby
  workers waiting (:mod:`dpcore.runs.warm`), replacing each one taken or dead at once (its warm-up
  waits for a run still before its first step to have one); dispatch hands a
  run to a waiting standby of its profile when there is one (any executor does), else starts a
  worker for it as before. A standby is no run: it counts toward ``max_concurrent`` only once it
  trains one, and is claimed, supervised and reaped as any worker.

Limits come from :class:`~dpcore.runs.limits.ServerLimits` (environment variables), and travel to
the workers in their environment.

Because the transaction serializes these steps across processes, the dashboard and any number
of CLI calls may poll at once without launching a run twice or exceeding the cap. What each verdict
means for the run (status and sentence) is :func:`dpcore.runs.lifecycle.settle`, shared with Ray.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from dpcore.config import TrainConfig
from dpcore.errors import DPCoreError
from dpcore.runs import warm
from dpcore.runs.executors.base import DEFAULT_GRACE_S, PURGE_EVERY_S, ExecutorOptions, check_submission, wait_for
from dpcore.runs.lifecycle import (
    DEFAULT_TRAIN_FN,
    DIED_MESSAGE,
    DISK_FULL_MESSAGE,
    ENV_HEARTBEAT_S,
    Verdict,
    live_verdict,
    settle,
)
from dpcore.runs.limits import ServerLimits
from dpcore.runs.store import Run, RunStore, Status

_DISK_FULL_LOG_MARKERS = (b"No space left on device", b"database or disk is full", b"the server's disk is full")
ENV_MAX_CONCURRENT = "DPCORE_MAX_CONCURRENT"
_PROJECT_ROOT = str(Path(__file__).resolve().parents[3])  # the folder holding dpcore/
WARM_CHECK_S = 1.0  # a keeper looks at its standbys at most this often


class LocalExecutor:
    """Runs on this machine, one subprocess each, through a fair queue with a concurrency cap.

    ``max_concurrent`` defaults to ``$DPCORE_MAX_CONCURRENT``, else one run per visible GPU, else
    half the usable CPU cores (each run then gets ``cores // max_concurrent`` torch threads).
    ``train_fn`` ("module:function" or "file.py:function") replaces ``train_and_audit`` in the
    worker; it is for tests and other trainers, never taken from user input. ``limits`` default
    to the store's (:meth:`ServerLimits.from_env`); ``stale_after_s`` overrides their staleness limit.
    ``warm_workers`` standby workers are kept waiting for the next run (default ``$DPCORE_WARM_WORKERS``,
    else 1; none on a GPU server): only long-lived callers should keep them (the registry gives a
    terminal's executor none); :meth:`close` sends this process's away.
    """

    def __init__(
        self,
        store: RunStore,
        max_concurrent: int | None = None,
        *,
        gpus: list[str] | None = None,
        grace_s: float = DEFAULT_GRACE_S,
        stale_after_s: float | None = None,
        train_fn: str | None = None,
        python: str | None = None,
        limits: ServerLimits | None = None,
        warm_workers: int | None = None,
    ) -> None:
        if os.name != "posix":  # pragma: no cover
            raise DPCoreError("the local executor needs Linux or macOS (process groups and signals)")
        self.store = store
        self.gpus = detect_gpus() if gpus is None else [str(g) for g in gpus]
        self.max_concurrent = resolve_max_concurrent(max_concurrent, self.gpus)
        self.grace_s = float(grace_s)
        self.limits = limits or store.limits
        self.stale_after_s = float(self.limits.stale_after_s if stale_after_s is None else stale_after_s)
        self._next_purge = 0.0
        self.train_fn = train_fn
        self.python = python or sys.executable
        self.host = socket.gethostname()
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._children_lock = threading.Lock()
        self.warm_workers = 0 if self.gpus else warm.resolve_warm_workers(warm_workers)
        self._pool = warm.Pool(store.data_dir)
        self._profile = {"python": self.python, "root": _PROJECT_ROOT, "train_fn": train_fn or DEFAULT_TRAIN_FN}
        self._standbys: list[subprocess.Popen[bytes]] = []
        self._next_warm_check = 0.0

    @classmethod
    def from_options(cls, store: RunStore, options: ExecutorOptions) -> LocalExecutor:
        """The registry's way in (:func:`dpcore.runs.executors.registry.make_executor`).

        A caller that may start helpers of its own (``start_cluster``: the dashboard) keeps standby
        workers; a terminal's executor keeps none (they would outlive it for nothing) but uses the
        dashboard's.
        """
        return cls(store, options.max_concurrent, train_fn=options.train_fn,
                   warm_workers=None if options.start_cluster else 0)

    # ------------------------------------------------------------------ contract
    def submit(
        self, owner: str, config: TrainConfig | dict[str, Any], *, allow_local_paths: bool = False
    ) -> str:
        """Queue a run and start it if a slot is free.

        Through the app (``allow_local_paths=False``) the corpus must be ``builtin`` or one of
        ``owner``'s uploads: a browser user must not read files of the server. CLI users pass
        ``allow_local_paths=True`` to train on their own files. Refused (one sentence) past the
        server's limits: steps or memory of the config, the owner's runs queued or running, the
        owner's disk quota.
        """
        config = check_submission(self.store, owner, config, allow_local_paths=allow_local_paths, limits=self.limits)
        run_id = self.store.create_run(owner, config.to_dict(), max_runs=self.limits.max_runs_per_owner)
        self.poll()
        return run_id

    def describe(self) -> str:
        """Where runs train, in a few words (the dashboard's sidebar shows it)."""
        where = f"{len(self.gpus)} GPU(s)" if self.gpus else "CPU"
        return f"local processes on this server ({where}, {self.max_concurrent} at a time)"

    def status(self, run_id: str, owner: str | None = None) -> Run:
        self.poll()
        return self.store.get_run(run_id, owner)

    def cancel(self, run_id: str, owner: str | None = None) -> Run:
        """Queued: cancelled at once. Running: SIGTERM to its group now, SIGKILL after grace_s."""
        run = self.store.request_cancel(run_id, owner)
        if run.status == Status.RUNNING and self._is_local(run) and process_alive(run.pid, run.pid_ident):
            signal_group(run.pid, signal.SIGTERM)
        self.poll()
        return self.store.get_run(run_id)

    def list(self, owner: str | None = None) -> builtins.list[Run]:
        self.poll()
        return self.store.list_runs(owner)

    def wait(
        self, run_id: str, timeout: float | None = None, *, poll_s: float = 0.5, owner: str | None = None
    ) -> Run:
        """Poll until the run ends or ``timeout`` seconds pass; returns the run either way."""
        return wait_for(self, run_id, timeout, poll_s=poll_s, owner=owner)

    # ------------------------------------------------------------------ supervision
    def poll(self) -> None:
        """Reap dead or stuck workers, stop overdue runs, start queued runs fairly, keep standbys. Cheap when idle."""
        try:
            self._supervise()
        finally:
            self._keep_warm()

    def close(self) -> None:
        """Keep no standbys any more, and send away those this process started that wait for a run.

        Runs go on, standbys training one included; a waiting standby leaves within a second.
        """
        self.warm_workers = 0
        mine = {p.pid: p for p in self._standbys}
        leaving = [e for e in self._pool.entries() if e.keeper == os.getpid() and not e.claimed
                   and process_alive(e.pid, e.ident) and self._pool.send_away(e.pid)]
        for entry in leaving:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(entry.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for entry in leaving:
            while process_alive(entry.pid, entry.ident) and time.monotonic() < deadline:
                if entry.pid in mine and mine[entry.pid].poll() is not None:
                    break
                time.sleep(0.05)
            self._pool.discard(entry.pid)
        self._reap_children()

    def _supervise(self) -> None:
        self._reap_children()
        self._purge()
        now = time.time()
        active = self.store.list_runs(status=(Status.QUEUED, Status.RUNNING))
        running = [r for r in active if r.status == Status.RUNNING]
        has_queued = len(running) < len(active)
        needs_sweep = any(self._verdict(r, now) for r in running)
        if not needs_sweep and not (has_queued and len(running) < self.max_concurrent):
            return
        with self.store.transaction() as conn:  # re-read under the write lock: the truth now
            running = self.store.list_runs(status=Status.RUNNING, conn=conn)
            for run in running:
                verdict = self._verdict(run, time.time())
                if verdict:
                    self._settle(conn, run, verdict)
            running = self.store.list_runs(status=Status.RUNNING, conn=conn)
            free = self.max_concurrent - len(running)
            if free <= 0:
                return
            busy_gpus = {r.gpu for r in running}
            per_owner = Counter(r.owner for r in running)
            for run in self.store.fair_queue(conn=conn):
                if free <= 0:
                    break
                if per_owner[run.owner] >= self.limits.max_active_per_owner:
                    continue  # this owner waits for one of their runs to end; others go first
                gpu = next((g for g in self.gpus if g not in busy_gpus), None)
                if self._launch(conn, run, gpu):
                    busy_gpus.add(gpu)
                    per_owner[run.owner] += 1
                    free -= 1

    def _purge(self) -> None:
        """Retention: delete a few runs that ended more than ``retention_days`` ago (once a minute)."""
        if not self.limits.retention_days or time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + PURGE_EVERY_S
        self.store.purge_expired(self.limits.retention_days, limit=3)

    def _verdict(self, run: Run, now: float) -> Verdict | None:
        """None if the run is fine; DEAD, STALE (silent on another host), STUCK (alive but silent
        here), KILL (overdue stop request) or OVERTIME (past the wall-time cap)."""
        silent = run.heartbeat_at is None or now - run.heartbeat_at > self.stale_after_s
        if not self._is_local(run):
            return Verdict.STALE if silent else None
        if not process_alive(run.pid, run.pid_ident):
            return Verdict.DEAD
        # without /proc a reused pid cannot be told apart: fall back on the heartbeat
        if run.pid_ident is None and silent and run.heartbeat_at is not None:
            return Verdict.DEAD
        return live_verdict(run, now, silent, self.grace_s, self.limits)

    def _settle(self, conn: sqlite3.Connection, run: Run, verdict: Verdict) -> None:
        """Carry out the lifecycle's outcome: signal the worker's group, then write the final status."""
        died = self._death_message(run) if verdict is Verdict.DEAD else DIED_MESSAGE
        outcome = settle(run, verdict, grace_s=self.grace_s, stale_after_s=self.stale_after_s, limits=self.limits,
                         died=died)
        if outcome.status is None:  # a stop request: the worker ends itself, SIGKILL follows after grace_s
            if outcome.stop_reason and self.store.request_stop(run.id, outcome.stop_reason, conn=conn):
                signal_group(run.pid, signal.SIGTERM)
            return
        if outcome.kill:
            signal_group(run.pid, signal.SIGKILL)
        self.store.finish_run(run.id, outcome.status, error=outcome.error, conn=conn)

    def _death_message(self, run: Run) -> str:
        """Why a worker vanished, where it can be known: a full disk, else :data:`DIED_MESSAGE`."""
        if self.store.low_on_disk():
            return DISK_FULL_MESSAGE
        try:
            with open(self.store.run_dir(run.id) / "worker.log", "rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 8192))
                tail = log.read()
        except OSError:
            return DIED_MESSAGE
        return DISK_FULL_MESSAGE if any(m in tail for m in _DISK_FULL_LOG_MARKERS) else DIED_MESSAGE

    def _launch(self, conn: sqlite3.Connection, run: Run, gpu: str | None) -> bool:
        out_dir = self.store.run_dir(run.id)
        if gpu is None and not self.gpus:
            handed = self._hand_to_standby(conn, run)
            if handed is not None:
                return handed
        cmd = [
            self.python, "-m", "dpcore.runs.worker", "--data-dir", str(self.store.data_dir),
            "--run-id", run.id, "--max-concurrent", str(self.max_concurrent),
            "--gpus", ",".join(self.gpus), "--grace", str(self.grace_s),
        ]
        if self.train_fn:
            cmd += ["--train-fn", self.train_fn]
        try:
            self.store.runs_dir.mkdir(mode=0o700, exist_ok=True)
            out_dir.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(out_dir / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "ab") as log:
                proc = subprocess.Popen(
                    cmd, cwd=out_dir, env=self._child_env(gpu), stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )
        except OSError as err:
            self.store.finish_run(
                run.id, Status.FAILED, error=f"could not start the worker process: {err}",
                only_if_running=False, conn=conn,
            )
            return False
        with self._children_lock:
            self._children[run.id] = proc
        return self.store.claim_run(
            conn, run.id, host=self.host, pid=proc.pid, pid_ident=process_identity(proc.pid), gpu=gpu
        )

    def _hand_to_standby(self, conn: sqlite3.Connection, run: Run) -> bool | None:
        """Give ``run`` to a waiting standby of this profile (claimed in ``conn``); None if none took it."""
        try:
            self.store.runs_dir.mkdir(mode=0o700, exist_ok=True)
            self.store.run_dir(run.id).mkdir(mode=0o700, exist_ok=True)
        except OSError:
            return None  # the cold path below says why
        message = {"run_id": run.id, "max_concurrent": self.max_concurrent, "gpus": ",".join(self.gpus),
                   "grace": self.grace_s, "env": self._run_env()}
        while (entry := self._pool.take(self._profile, process_alive)) is not None:
            if self._pool.hand(entry, message):
                return self.store.claim_run(conn, run.id, host=self.host, pid=entry.pid, pid_ident=entry.ident)
            self._pool.discard(entry.pid)  # it died or left as it was taken: try the next, else start one
        return None

    def _keep_warm(self) -> None:
        """Keep ``warm_workers`` standbys of this profile waiting; a dead one is replaced (looked at once a second).

        One started beside a run that has no first step yet holds its warm-up until that run has one
        (``--after-run``), so a launch never shares the CPU with the next launch's warm-up.
        """
        if self.warm_workers <= 0 or time.monotonic() < self._next_warm_check:
            return
        self._next_warm_check = time.monotonic() + WARM_CHECK_S
        try:
            with self._pool.lock():
                live = self._pool.sweep(process_alive)
                waiting = [e for e in live if not e.claimed and e.profile == self._profile]
                for _ in range(self.warm_workers - len(waiting)):
                    self._start_standby(after_run=self._starting_run())
        except OSError as err:  # a full or read-only disk: runs start cold, as before
            print(f"dp-rnn-lab: no standby worker ({err})", file=sys.stderr)

    def _starting_run(self) -> str | None:
        """The newest run of this host still before its first step, if any (young enough to wait for)."""
        now = time.time()
        for r in self.store.list_runs(status=Status.RUNNING):
            if self._is_local(r) and not r.last_step and r.started_at and now - r.started_at < warm.HOLD_S:
                return r.id
        return None

    def _start_standby(self, after_run: str | None = None) -> None:
        pool_dir = self._pool.ensure()
        tmp_log = pool_dir / f".spawn-{os.getpid()}-{time.monotonic_ns()}.log"
        me = f"{os.getpid()}:{process_identity(os.getpid()) or ''}"
        cmd = [self.python, "-m", "dpcore.runs.worker", "--data-dir", str(self.store.data_dir), "--standby",
               "--keeper", me]
        if self.train_fn:
            cmd += ["--train-fn", self.train_fn]
        if after_run:
            cmd += ["--after-run", after_run]
        fd = os.open(tmp_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            with os.fdopen(fd, "ab") as log:
                proc = subprocess.Popen(
                    cmd, cwd=pool_dir, env=self._child_env(None), stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )
        except OSError:
            tmp_log.unlink(missing_ok=True)
            raise
        os.replace(tmp_log, self._pool.file(proc.pid, ".log"))
        self._pool.register(proc.pid, process_identity(proc.pid), self._profile)
        self._standbys.append(proc)

    def _run_env(self) -> dict[str, str]:
        """What a standby takes on from the executor that hands it a run: its limits, its heartbeat."""
        env = dict(self.limits.to_env())
        if os.environ.get(ENV_HEARTBEAT_S):
            env[ENV_HEARTBEAT_S] = os.environ[ENV_HEARTBEAT_S]
        return env

    def _child_env(self, gpu: str | None) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PROJECT_ROOT, env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.limits.to_env())  # the worker and its hand-over poll obey the same limits
        # One math thread per worker unless the operator set one: the models are small, and a
        # 2-thread worker sharing a 2-core machine with anything else (the dashboard, another run)
        # measured 6-30x slower per step than a 1-thread one, as OpenMP threads spin-wait.
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, "1")
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        return env

    def _is_local(self, run: Run) -> bool:
        return run.host is None or run.host == self.host

    def _reap_children(self) -> None:
        """Collect exit statuses of workers this process started, so none lingers as a zombie."""
        with self._children_lock:
            for run_id, proc in list(self._children.items()):
                if proc.poll() is not None:
                    del self._children[run_id]
            self._standbys = [p for p in self._standbys if p.poll() is None]


# -------------------------------------------------------------------------- helpers
def usable_cpus() -> int:
    """The CPU cores this process may use (its affinity), which sizes the default concurrency."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def detect_gpus() -> list[str]:
    """Visible NVIDIA GPUs, without importing torch: ``$CUDA_VISIBLE_DEVICES`` or /dev/nvidiaN."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        ids: list[str] = []
        for item in (x.strip() for x in env.split(",")):
            if not item or item.startswith("-"):  # CUDA stops at the first invalid entry
                break
            ids.append(item)
        return ids
    nums = [p.name[len("nvidia"):] for p in Path("/dev").glob("nvidia[0-9]*")]
    return sorted((n for n in nums if n.isdigit()), key=int)


def resolve_max_concurrent(explicit: int | None, gpus: list[str]) -> int:
    """The concurrency cap: explicit, else $DPCORE_MAX_CONCURRENT, else GPUs, else cores // 2."""
    value: Any = explicit
    if value is None and os.environ.get(ENV_MAX_CONCURRENT):
        value = os.environ[ENV_MAX_CONCURRENT]
    if value is None:
        return len(gpus) if gpus else max(1, usable_cpus() // 2)
    try:
        cap = int(value)
    except (TypeError, ValueError):
        cap = 0
    if cap < 1:
        raise DPCoreError(f"the number of concurrent runs must be a whole number ≥ 1, got {value!r}")
    return min(cap, len(gpus)) if gpus else cap


_BOOT_ID: str | None = None


def process_identity(pid: int | None) -> str | None:
    """``<boot id>:<start time>`` of a live process (Linux), None where /proc cannot tell.

    A pid alone is not an identity: after a reboot or a long time it names another process.
    """
    global _BOOT_ID
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if _BOOT_ID is None:
            _BOOT_ID = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return f"{_BOOT_ID}:{fields[19]}"


def process_alive(pid: int | None, ident: str | None = None) -> bool:
    """Is ``pid`` a running (not zombie) process, and the same one as recorded in ``ident``?"""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, belongs to someone else: cannot be our worker
        return ident is None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return not Path("/proc/self/stat").exists()  # no /proc (macOS): trust kill(0)
    except OSError:
        return True
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
        return False
    return ident is None or process_identity(pid) == ident


def signal_group(pid: int | None, sig: int) -> None:
    """Signal the worker's whole process group (it leads its own session: pgid == pid)."""
    if not pid:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)

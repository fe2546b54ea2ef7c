"""RayExecutor: runs as Ray actors on a cluster, with the same store, cancel and crash guarantees.

``DPCORE_EXECUTOR=ray`` (or ``--executor ray``) swaps the local process executor for this one; pages
and the CLI see the same :class:`~dpcore.runs.executors.base.Executor` contract and the same run store.
Ray is an optional dependency (``requirements-ray.txt``) and is imported only here, in functions.

What runs where:

* **The run store stays on the app's server** (SQLite wants a local disk). One small
  :class:`StoreWriter` actor per store machine, pinned to it (node affinity), named and detached, is
  the only way workers write: claim, heartbeat, metrics in the trainer's batches (at most one write per
  0.5 s), evals, samples, artifacts and the final status. Workers need no shared disk and no path to
  the data folder.
* **Each run is one detached, named Ray actor** (:class:`RunWorker`, ``dpcore-run-<id>``) asking for
  ``num_cpus`` (``$DPCORE_RAY_CPUS_PER_RUN``, default 1), ``num_gpus=1`` when the run asks for CUDA
  (or ``auto`` on a cluster that has GPUs) and ``memory`` = the run's memory estimate, so Ray places
  runs where they fit and queues the rest. Detached, because a CLI ``runs submit`` returns at once:
  its run must not die with the command. The actor trains in a thread started by its constructor
  (the constructor is the one call that Ray delivers even after its caller exited) and ends itself.
* **Artifacts** (checkpoint, result, metrics CSV, log, audit) are written in place when the worker is
  on the store's machine, else sent back through Ray or the ``DPCORE_ARTIFACTS`` location
  (:mod:`dpcore.runs.artifacts`); either way the run's folder on the app's server ends up holding
  them, so every page and command reads them as before.

Quotas apply at submit exactly as locally (corpus, steps, memory, disk, runs queued or running per
owner; :func:`~dpcore.runs.executors.base.check_submission`); then every queued run goes to Ray at once
and Ray's resources decide how many train together. ``poll()`` does the supervisor's work:

* a ``running`` row whose actor is gone (SIGKILL, out of memory, node lost) ends ``failed`` with
  :data:`~dpcore.runs.lifecycle.DIED_MESSAGE` (``cancelled`` if a cancel was asked); its metrics stay;
* a cancel is seen by the worker's heartbeat within ``DPCORE_HEARTBEAT_S`` (2 s) on any node, and the
  actor is killed (``ray.kill``) if the run has not stopped ``grace_s`` later;
* a silent worker (no heartbeat for ``stale_after_s``: stopped, hung) is killed and fails; a run past
  ``max_run_seconds`` is asked to stop and fails with the cap's sentence;
* a queued run is handed to Ray once (its row is marked ``ray:pending`` in the same transaction that
  creates the actor, so two pollers never launch it twice); one whose actor died before it started
  fails with :data:`NOT_STARTED_MESSAGE`.

Every verdict becomes a status and sentence through :func:`dpcore.runs.lifecycle.settle`, the local
executor's table too, and the worker's final word through :func:`dpcore.runs.lifecycle.conclude`.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import functools
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from dpcore.config import TrainConfig
from dpcore.errors import DPCoreError
from dpcore.runs import artifacts
from dpcore.runs.db import low_on_disk
from dpcore.runs.executors.base import DEFAULT_GRACE_S, PURGE_EVERY_S, ExecutorOptions, check_submission, wait_for
from dpcore.runs.lifecycle import (  # the worker's loop, as the local worker runs it
    ARTIFACT_FILES,
    DEFAULT_TRAIN_FN,
    ENV_HEARTBEAT_S,
    Heartbeat,
    Verdict,
    claim,
    conclude,
    live_verdict,
    settle,
    train,
)
from dpcore.runs.limits import ServerLimits, estimate_config_memory
from dpcore.runs.store import Run, RunNotFound, RunStore, Status

NAMESPACE = "dpcore"
RUN_PREFIX = "dpcore-run-"
WRITER_PREFIX = "dpcore-store-"
HOST_PREFIX = "ray:"
PENDING_HOST = "ray:pending"
ENV_CPUS_PER_RUN = "DPCORE_RAY_CPUS_PER_RUN"
#: Below this many seconds between two polls the cluster is not asked again (30 visitors poll at once).
MIN_POLL_S = 0.5
DESCRIBE_EVERY_S = 30.0
NOT_STARTED_MESSAGE = (
    "the Ray worker for this run ended before it started training (its node was lost, it was killed, "
    "or dp-rnn-lab could not be imported there: see the Ray logs)"
)
OUTSIDE_MESSAGE = "stopped from outside dp-rnn-lab before it finished"
INSTALL_HINT = "install it with: pip install -r requirements-ray.txt"


# ---------------------------------------------------------------------------------- connecting
def _ray() -> Any:
    try:
        import ray  # optional and slow to import: only the Ray executor needs it
    except ImportError as err:
        raise DPCoreError(f"DPCORE_EXECUTOR=ray needs the ray package; {INSTALL_HINT}") from err
    return ray


def connect(address: str | None = None, *, start_local: bool = True) -> Any:
    """The ``ray`` module, connected: to ``address`` or ``$RAY_ADDRESS``, else to a Ray started with
    ``ray start`` on this machine, else (``start_local``) to a new local Ray living as long as this process.

    An address that does not answer is one sentence within seconds (Ray itself retries for minutes).
    """
    ray = _ray()
    if ray.is_initialized():
        return ray
    addr = (address or os.environ.get("RAY_ADDRESS") or "").strip() or None
    if addr and not addr.startswith(("ray://", "auto", "local")):
        _check_reachable(addr)
    try:
        ray.init(address=addr if addr or start_local else "auto", namespace=NAMESPACE, log_to_driver=False,
                 include_dashboard=False, logging_level="WARNING")
    except ConnectionError as err:
        raise DPCoreError(
            "there is no Ray cluster to run on: start one with `ray start --head` (or set RAY_ADDRESS); "
            "the command line does not start a Ray of its own, since its runs would end when it returns"
        ) from err
    except (RuntimeError, ValueError) as err:
        raise DPCoreError(f"could not connect to Ray at {addr or 'this machine'}: {err}") from err
    return ray


def _check_reachable(addr: str, timeout_s: float = 3.0) -> None:
    host, _, port = addr.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            return
    except (OSError, ValueError) as err:
        raise DPCoreError(
            f"cannot reach the Ray cluster at RAY_ADDRESS={addr} ({err}): start it with `ray start --head`, "
            f"fix the address, or run locally with DPCORE_EXECUTOR=local"
        ) from err


@functools.cache
def _remote_class(cls: type) -> Any:
    """``ray.remote(cls)``, once per process (the classes stay importable, so Ray ships them by name)."""
    return _ray().remote(cls)


def run_actor_name(run_id: str) -> str:
    return RUN_PREFIX + run_id


def store_writer(data_dir: str | os.PathLike[str]) -> tuple[Any, str]:
    """(handle, node id) of the store writer on this process's machine, created once per machine."""
    ray = connect()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # part of Ray, imported with it

    node = ray.get_runtime_context().get_node_id()
    actor = _remote_class(StoreWriter).options(
        name=WRITER_PREFIX + node[:16], namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
        num_cpus=0, max_concurrency=16, max_restarts=-1,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False),
    ).remote()
    return actor, node


# ---------------------------------------------------------------------------------- the store side
class StoreWriter:
    """Writes the run store for workers anywhere in the cluster; lives on the store's machine.

    One per machine and shared by every data folder on it (``data_dir`` travels with each call), so
    tests with many temporary stores still start one process. Threaded (``max_concurrency``): the
    store is thread-safe and SQLite serialises the writes.
    """

    #: The RunStore methods a worker may call; nothing that reads other owners' data or deletes.
    CALLS = frozenset({"heartbeat", "set_run_info", "add_metrics", "add_eval", "add_samples", "get_run",
                       "finish_run", "add_artifact"})

    def __init__(self) -> None:
        self._stores: dict[str, RunStore] = {}
        self._lock = threading.Lock()

    def _store(self, data_dir: str) -> RunStore:
        with self._lock:
            if data_dir not in self._stores:
                self._stores[data_dir] = RunStore(data_dir, limits=ServerLimits())
            return self._stores[data_dir]

    def ping(self) -> int:
        return os.getpid()

    def call(self, data_dir: str, method: str, *args: Any, **kwargs: Any) -> Any:
        if method not in self.CALLS:
            raise DPCoreError(f"the store writer does not offer {method!r}")
        return getattr(self._store(data_dir), method)(*args, **kwargs)

    def claim(self, data_dir: str, run_id: str, host: str, pid: int, gpu: str | None) -> Run | None:
        """The run if this worker should train it (it was queued or is already this pid's), else None."""
        return claim(self._store(data_dir), run_id, pid, host=host, gpu=gpu)  # another machine's pid: no identity

    def corpus(self, data_dir: str, run_id: str) -> bytes:
        """The text file a running run trains on (vetted at submit: one of its owner's uploads, or a CLI
        user's own file), for a worker whose machine does not have it. Nothing else can be read."""
        run = self._store(data_dir).get_run(run_id)
        corpus = str(run.config.get("corpus", "builtin"))
        if run.status != "running" or corpus == "builtin":
            raise DPCoreError(f"run {run_id} has no corpus file to send")
        return Path(corpus).read_bytes()

    def put_file(self, data_dir: str, run_id: str, name: str, filename: str, data: bytes) -> str:
        """Write a worker's artifact into the run's folder and record it; returns its path."""
        store = self._store(data_dir)
        path = self._artifact_path(store, run_id, filename)
        part = path.with_name(path.name + ".part")
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(part, path)
        store.add_artifact(run_id, name, path)
        return str(path)

    def fetch_file(self, data_dir: str, run_id: str, name: str, filename: str, uri: str) -> str:
        """Fetch an artifact a worker uploaded to ``DPCORE_ARTIFACTS`` into the run's folder."""
        store = self._store(data_dir)
        path = artifacts.fetch(uri, self._artifact_path(store, run_id, filename))
        store.add_artifact(run_id, name, path)
        return str(path)

    @staticmethod
    def _artifact_path(store: RunStore, run_id: str, filename: str) -> Path:
        if filename not in ARTIFACT_FILES.values():
            raise DPCoreError(f"{filename!r} is not a run artifact")
        folder = store.run_dir(run_id)
        store.runs_dir.mkdir(mode=0o700, exist_ok=True)
        folder.mkdir(mode=0o700, exist_ok=True)
        return folder / filename


class RemoteStore:
    """The part of :class:`RunStore` a worker uses, forwarded to the :class:`StoreWriter`.

    ``run_dir`` is the worker's own folder (on its machine), so the worker's trainer, callbacks and
    heartbeat (:mod:`dpcore.runs.lifecycle`) run unchanged against it.
    """

    def __init__(self, writer: Any, data_dir: str, limits: ServerLimits, out_dir: Path) -> None:
        self.writer, self.data_dir, self.limits, self.out_dir = writer, data_dir, limits, out_dir

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _ray().get(self.writer.call.remote(self.data_dir, method, *args, **kwargs))

    def run_dir(self, run_id: str) -> Path:
        return self.out_dir

    def low_on_disk(self) -> bool:
        return low_on_disk(self.out_dir)

    def heartbeat(self, run_id: str) -> bool:
        return bool(self._call("heartbeat", run_id))

    def set_run_info(self, run_id: str, info: dict[str, Any], device: str | None = None) -> None:
        self._call("set_run_info", run_id, dict(info), device=device)

    def add_metrics(self, run_id: str, rows: list[dict[str, Any]]) -> int:
        return int(self._call("add_metrics", run_id, list(rows)))

    def add_eval(self, run_id: str, row: dict[str, Any]) -> None:
        self._call("add_eval", run_id, dict(row))

    def add_samples(self, run_id: str, step: int, kind: str, prompt: str, texts: list[str]) -> None:
        self._call("add_samples", run_id, step, kind, prompt, list(texts))

    def get_run(self, run_id: str) -> Run:
        return self._call("get_run", run_id)

    def finish_run(self, run_id: str, status: Status, *, error: str | None = None,
                   result: dict[str, Any] | None = None) -> bool:
        return bool(self._call("finish_run", run_id, Status(status).value, error=error, result=result))


# ---------------------------------------------------------------------------------- the worker side
class RunWorker:
    """One run on whatever node Ray chose: trains in a thread, reports to the store writer, then exits."""

    def __init__(self, spec: dict[str, Any]) -> None:
        os.environ.update(spec["env"])  # limits, heartbeat, thread counts: before torch is imported
        self._thread = threading.Thread(target=self._main, args=(spec,), name="dpcore-run", daemon=True)
        self._thread.start()

    def pid(self) -> int:
        return os.getpid()

    def shutdown(self) -> None:
        _ray().actor.exit_actor()

    def _main(self, spec: dict[str, Any]) -> None:
        try:
            train_on_ray(spec)
        except BaseException:  # noqa: BLE001 - the executor settles the run; the actor must still end
            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                _ray().get_runtime_context().current_actor.shutdown.remote()


def train_on_ray(spec: dict[str, Any]) -> Status | None:
    """The worker's whole life in the actor: claim, train with a heartbeat, deliver files, final status.

    Mirrors ``python -m dpcore.runs.worker`` (the same loop of :mod:`dpcore.runs.lifecycle`), except
    that the store is remote and there is no address-space cap: a Ray worker maps the object store,
    so ``RLIMIT_AS`` would fail it at once; Ray's memory monitor and ``memory=`` placement stand in.
    """
    ray = _ray()
    os.umask(0o077)
    run_id, data_dir, writer = spec["run_id"], spec["data_dir"], spec["writer"]
    location = spec["artifacts"]
    in_place = (spec["in_place_ok"] and not location
                and ray.get_runtime_context().get_node_id() == spec["writer_node"])
    head_dir = Path(data_dir) / "runs" / run_id
    out_dir = head_dir if in_place else Path(tempfile.mkdtemp(prefix=f"dpcore-{run_id[:12]}-"))
    out_dir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    out_dir.mkdir(mode=0o700, exist_ok=True)
    remote = RemoteStore(writer, data_dir, ServerLimits.from_env(spec["limits"]), out_dir)
    fd = os.open(out_dir / ARTIFACT_FILES["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    status = None
    try:
        with os.fdopen(fd, "a", buffering=1) as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            gpu = ",".join(str(g) for g in ray.get_gpu_ids()) or None
            run = _ray().get(writer.claim.remote(data_dir, run_id, HOST_PREFIX + socket.gethostname(),
                                                 os.getpid(), gpu))
            if run is None:
                print(f"run {run_id} is not this worker's to train; exiting", file=sys.stderr)
                return None
            print(f"ray worker {os.getpid()} on {socket.gethostname()} training run {run_id}", file=sys.stderr)
            run = _local_corpus(run, writer, data_dir, out_dir, in_place)
            stop = threading.Event()
            beat = Heartbeat(remote, run_id, stop, float(spec["heartbeat_s"]))
            beat.start()
            try:
                ending = train(remote, run, stop, spec["train_fn"])
            finally:
                beat.halt.set()
            if ending.error and not in_place:
                ending = dataclasses.replace(ending, error=ending.error.replace(str(out_dir), str(head_dir)))
            ending = conclude(ending, remote.get_run(run_id), outside=OUTSIDE_MESSAGE)
            print(f"run {run_id}: {ending.status}" + (f": {ending.error}" if ending.error else ""), file=sys.stderr)
            log.flush()
            try:
                _deliver(spec, writer, out_dir, in_place)
            except Exception as err:  # noqa: BLE001 - a run whose files are lost must not say "finished"
                traceback.print_exc()
                if ending.status is Status.FINISHED:
                    ending = dataclasses.replace(ending, status=Status.FAILED, error=(
                        f"the run's files could not be stored on the app's server: {err}"))
            remote.finish_run(run_id, ending.status, error=ending.error, result=ending.stored_result)
            status = ending.status
    finally:
        if not in_place:
            shutil.rmtree(out_dir, ignore_errors=True)
    return status


def _local_corpus(run: Run, writer: Any, data_dir: str, out_dir: Path, in_place: bool) -> Run:
    """The run, training on a copy of its corpus file in the worker's own folder when the worker is elsewhere.

    An uploaded corpus lives in the app's data folder; a worker on another machine gets its bytes from
    the store writer (the run's own file only) and keeps them in its private folder, deleted at the end.
    """
    corpus = str(run.config.get("corpus", "builtin"))
    if corpus == "builtin" or (in_place and Path(corpus).is_file()):
        return run
    folder = out_dir / "input"
    folder.mkdir(mode=0o700, exist_ok=True)
    copy = folder / Path(corpus).name  # the suffix (.txt, .csv) tells the reader the format
    fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(_ray().get(writer.corpus.remote(data_dir, run.id)))
    return dataclasses.replace(run, config={**run.config, "corpus": str(copy)})


def _deliver(spec: dict[str, Any], writer: Any, out_dir: Path, in_place: bool) -> None:
    """Every artifact file into the run's folder on the store's machine (see :mod:`dpcore.runs.artifacts`)."""
    ray = _ray()
    run_id, data_dir, location = spec["run_id"], spec["data_dir"], spec["artifacts"]
    for name, filename in ARTIFACT_FILES.items():
        path = out_dir / filename
        if not path.exists():
            continue
        if in_place:
            ray.get(writer.call.remote(data_dir, "add_artifact", run_id, name, str(path)))
        elif location:
            uri = artifacts.upload(path, location, run_id)
            ray.get(writer.fetch_file.remote(data_dir, run_id, name, filename, uri))
        else:
            ray.get(writer.put_file.remote(data_dir, run_id, name, filename, path.read_bytes()))


# ---------------------------------------------------------------------------------- the executor
class RayExecutor:
    """Runs on a Ray cluster (or a local Ray), reporting to this process's run store.

    ``train_fn`` ("module:function" or "file.py:function", for tests and other trainers, never user
    input) replaces ``train_and_audit``. ``cpus_per_run`` defaults to ``$DPCORE_RAY_CPUS_PER_RUN`` or 1.
    ``start_local``: start a Ray on this machine when none is reachable (the dashboard); the CLI
    refuses instead, since its runs would end with the command.
    """

    kind = "ray"

    def __init__(
        self,
        store: RunStore,
        *,
        address: str | None = None,
        start_local: bool = True,
        cpus_per_run: float | None = None,
        grace_s: float = DEFAULT_GRACE_S,
        stale_after_s: float | None = None,
        train_fn: str | None = None,
        limits: ServerLimits | None = None,
    ) -> None:
        self.ray = connect(address, start_local=start_local)
        self.store = store
        self.limits = limits or store.limits
        self.grace_s = float(grace_s)
        self.stale_after_s = float(self.limits.stale_after_s if stale_after_s is None else stale_after_s)
        self.train_fn = train_fn or DEFAULT_TRAIN_FN
        self.cpus_per_run = float(cpus_per_run or os.environ.get(ENV_CPUS_PER_RUN) or 1)
        if not self.cpus_per_run > 0:
            raise DPCoreError(f"{ENV_CPUS_PER_RUN} must be a positive number of CPUs")
        self.writer, self.writer_node = store_writer(store.data_dir)
        self.max_concurrent = None  # Ray's resources decide; the CLI prints this
        #: False: every worker sends its files back as if it were on another machine (tests; nodes whose
        #: data folders are not the app's even on the same machine).
        self.files_in_place = True
        self._last_poll = 0.0
        self._next_purge = 0.0
        self._described = (float("-inf"), "")
        self._lock = threading.Lock()

    @classmethod
    def from_options(cls, store: RunStore, options: ExecutorOptions) -> RayExecutor:
        """The registry's way in: ``max_concurrent`` does not apply (the cluster's resources decide)."""
        return cls(store, train_fn=options.train_fn, start_local=options.start_cluster)

    # ------------------------------------------------------------------ contract
    def submit(self, owner: str, config: TrainConfig | dict[str, Any], *, allow_local_paths: bool = False) -> str:
        """Queue a run (refused past the same limits as locally) and hand it to Ray at once."""
        config = check_submission(self.store, owner, config, allow_local_paths=allow_local_paths, limits=self.limits)
        run_id = self.store.create_run(owner, config.to_dict(), max_runs=self.limits.max_runs_per_owner)
        self.poll(force=True)
        return run_id

    def status(self, run_id: str, owner: str | None = None) -> Run:
        self.poll()
        return self.store.get_run(run_id, owner)

    def cancel(self, run_id: str, owner: str | None = None) -> Run:
        """Queued (in dp-rnn-lab or waiting in Ray): cancelled at once. Running: its heartbeat sees the
        request on whatever node it is on; after ``grace_s`` the actor is killed."""
        run = self.store.request_cancel(run_id, owner)
        if run.status == Status.CANCELLED:
            self._kill(run_id)  # an actor still waiting for resources in Ray
        self.poll(force=True)
        return self.store.get_run(run_id)

    def list(self, owner: str | None = None) -> builtins.list[Run]:
        self.poll()
        return self.store.list_runs(owner)

    def wait(self, run_id: str, timeout: float | None = None, *, poll_s: float = 0.5,
             owner: str | None = None) -> Run:
        return wait_for(self, run_id, timeout, poll_s=poll_s, owner=owner)

    def describe(self) -> str:
        """The cluster in a few words (asked at most every :data:`DESCRIBE_EVERY_S`: every page shows it)."""
        at, text = self._described
        if time.monotonic() - at < DESCRIBE_EVERY_S:
            return text
        try:
            res = self.ray.cluster_resources()
            nodes = sum(1 for n in self.ray.nodes() if n.get("Alive"))
        except Exception:  # noqa: BLE001 - a label must not break a page
            return "a Ray cluster (not answering now)"
        gpus = int(res.get("GPU", 0))
        text = (f"a Ray cluster of {nodes} node(s), {res.get('CPU', 0):g} CPUs" + (f", {gpus} GPU(s)" if gpus else "")
                + f" ({self.cpus_per_run:g} CPU per run)")
        self._described = (time.monotonic(), text)
        return text

    # ------------------------------------------------------------------ supervision
    def poll(self, force: bool = False) -> None:
        """Settle runs whose actors died, stop overdue or cancelled ones, hand queued runs to Ray."""
        self._purge()
        active = self.store.list_runs(status=(Status.QUEUED, Status.RUNNING))
        if not active:
            return
        undispatched = any(r.status == Status.QUEUED and r.host is None for r in active)
        with self._lock:
            if not (force or undispatched) and time.monotonic() - self._last_poll < MIN_POLL_S:
                return
            self._last_poll = time.monotonic()
        kill: list[str] = []
        with self.store.transaction() as conn:  # the cluster's state is read under the write lock: no race
            try:
                live = self._live_runs()
            except Exception as err:  # noqa: BLE001 - Ray not answering: judge nothing now, pages still read
                print(f"dp-rnn-lab: the Ray cluster did not answer ({err}); runs are settled at the next poll",
                      file=sys.stderr)
                return
            now = time.time()
            for run in self.store.list_runs(status=Status.RUNNING, conn=conn):
                verdict = self._verdict(run, live, now)
                if verdict:
                    kill += self._settle(conn, run, verdict)
            for run in self.store.fair_queue(conn=conn):
                if run.host is None:
                    self._launch(conn, run)
                elif run.host == PENDING_HOST and run.id not in live:
                    self.store.finish_run(run.id, Status.FAILED, error=NOT_STARTED_MESSAGE, only_if_running=False,
                                          conn=conn)
            active_ids = {r.id for r in self.store.list_runs(status=(Status.QUEUED, Status.RUNNING), conn=conn)}
        kill += [run_id for run_id in live - active_ids if self._ended_here(run_id)]  # stragglers
        for run_id in kill:
            self._kill(run_id)

    def _verdict(self, run: Run, live: set[str], now: float) -> Verdict | None:
        silent = run.heartbeat_at is None or now - run.heartbeat_at > self.stale_after_s
        if not (run.host or "").startswith(HOST_PREFIX):
            return Verdict.STALE if silent else None  # a local executor's run: only its heartbeat tells
        if run.id not in live:
            return Verdict.DEAD
        return live_verdict(run, now, silent, self.grace_s, self.limits)

    def _settle(self, conn: Any, run: Run, verdict: Verdict) -> list[str]:
        """Write the lifecycle's outcome for the run; returns the runs whose actors must be killed.

        A stop request (wall-time cap) reaches the actor through its heartbeat, on whatever node.
        """
        outcome = settle(run, verdict, grace_s=self.grace_s, stale_after_s=self.stale_after_s, limits=self.limits)
        if outcome.status is None:
            if outcome.stop_reason:
                self.store.request_stop(run.id, outcome.stop_reason, conn=conn)
            return []
        self.store.finish_run(run.id, outcome.status, error=outcome.error, conn=conn)
        return [run.id] if outcome.kill else []

    def _launch(self, conn: Any, run: Run) -> None:
        """Mark the row as handed to Ray and create its actor, in the caller's write transaction."""
        if not self.store.mark_dispatched(conn, run.id, PENDING_HOST):
            return
        try:
            config = run.train_config()
            options = self._resources(config)
            _remote_class(RunWorker).options(
                name=run_actor_name(run.id), namespace=NAMESPACE, lifetime="detached", max_restarts=0,
                max_task_retries=0, **options,
            ).remote(self._spec(run, options))
        except ValueError as err:  # the name exists: another process launched it a moment ago
            if "already" not in str(err).lower():
                self.store.finish_run(run.id, Status.FAILED, error=f"Ray refused the run: {err}",
                                      only_if_running=False, conn=conn)
        except DPCoreError as err:
            self.store.finish_run(run.id, Status.FAILED, error=str(err), only_if_running=False, conn=conn)

    def _resources(self, config: TrainConfig) -> dict[str, Any]:
        gpus = 0
        if config.device == "cuda":
            gpus = 1
        elif config.device == "auto":
            gpus = 1 if self.ray.cluster_resources().get("GPU", 0) >= 1 else 0
        return {"num_cpus": self.cpus_per_run, "num_gpus": gpus, "memory": estimate_config_memory(config)}

    def _spec(self, run: Run, options: dict[str, Any]) -> dict[str, Any]:
        threads = str(max(1, int(self.cpus_per_run)))
        env = {k: v for k, v in os.environ.items() if k.startswith("DPCORE_")}
        env.update(self.limits.to_env())
        env.update({"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "PYTHONUNBUFFERED": "1"})
        return {
            "run_id": run.id, "data_dir": str(self.store.data_dir), "writer": self.writer,
            "writer_node": self.writer_node, "train_fn": self.train_fn, "limits": self.limits.to_env(),
            "heartbeat_s": float(os.environ.get(ENV_HEARTBEAT_S, "2")), "env": env,
            "artifacts": artifacts.artifacts_location(), "num_gpus": options["num_gpus"],
            "in_place_ok": self.files_in_place,
        }

    def _live_runs(self) -> set[str]:
        """Ids of runs that have an actor in the cluster now (alive, or waiting for resources)."""
        return {a["name"][len(RUN_PREFIX):] for a in self.ray.util.list_named_actors(all_namespaces=True)
                if a.get("namespace") == NAMESPACE and a["name"].startswith(RUN_PREFIX)}

    def _ended_here(self, run_id: str) -> bool:
        """Is ``run_id`` a run of this store that has ended (its actor may go)? Others' actors are left alone."""
        try:
            return self.store.get_run(run_id).is_terminal
        except RunNotFound:
            return False

    def _kill(self, run_id: str) -> None:
        with contextlib.suppress(ValueError):  # already gone
            self.ray.kill(self.ray.get_actor(run_actor_name(run_id), namespace=NAMESPACE), no_restart=True)

    def _purge(self) -> None:
        if not self.limits.retention_days or time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + PURGE_EVERY_S
        self.store.purge_expired(self.limits.retention_days, limit=3)

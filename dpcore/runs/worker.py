"""One run in its own process: ``python -m dpcore.runs.worker --data-dir D --run-id R``.

The executor starts this in a new process group with stdout/stderr going to the run's
``worker.log``. The worker

0. sets its umask to 0o077, so everything it writes (checkpoints, result.json, metrics.csv,
   audit.json) is private to the server's user;
1. claims its row (only if the row names this pid, or is still queued when started by hand);
2. beats a heartbeat from a thread every few seconds, which also notices a cancel request; caps
   its own address space (``RLIMIT_AS``, CPU runs) at min(the memory budget, 2 × the estimate)
   plus slack (:func:`dpcore.runs.limits.memory_limit_bytes`), so a run that outgrows it fails
   "out of memory" alone instead of taking the server down;
3. calls ``train_and_audit`` (:mod:`dpcore.audit.pipeline`: the trainer, then the audit when asked)
   with callbacks that write metrics in short batched transactions, and a
   ``should_stop`` that turns True on SIGTERM / cancel / a non-finite loss, so the trainer ends
   its step, saves a checkpoint and returns;
4. always writes a final status: finished, cancelled, or failed with a sentence the user can act
   on (a :class:`~dpcore.errors.DPCoreError` message, out of memory, a full disk, NaN loss, a run
   past the server's steps or time limit, or a crash whose traceback is in the log; the last
   word is :func:`dpcore.runs.lifecycle.conclude`, shared with the Ray worker). Metrics
   written so far are kept in every case;
5. hands its slot to the next queued run (``LocalExecutor.poll``), so queues drain without a daemon.

With ``--standby`` (no ``--run-id``) it is a standby worker (:mod:`dpcore.runs.warm`): it warms up
(imports, the built-in corpus's windows) while a thread waits on its pipe in the pool, and the run
handed to it goes through the same steps 1-5 (the claim only as the dispatcher made it, never a
queued row of its own choosing), its output then going to the run's ``worker.log``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from dpcore.errors import DPCoreError
from dpcore.paths import ENV_DATA_DIR
from dpcore.privacy import calcache
from dpcore.runs import warm
from dpcore.runs.executors.base import DEFAULT_GRACE_S
from dpcore.runs.executors.local import LocalExecutor, process_alive, process_identity
from dpcore.runs.lifecycle import (
    ARTIFACT_FILES,
    DEFAULT_TRAIN_FN,
    ENV_HEARTBEAT_S,
    Heartbeat,
    claim,
    conclude,
    restart_clock,
    train,
)
from dpcore.runs.limits import ServerLimits, estimate_config_memory, memory_limit_bytes
from dpcore.runs.store import Run, RunStore, Status


def main(argv: list[str] | None = None) -> int:
    """The worker process: claim, train with a heartbeat, store the files and the final status, hand over."""
    parser = argparse.ArgumentParser(prog="python -m dpcore.runs.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--run-id", default=None, help="the run to train (a standby waits for one instead)")
    parser.add_argument("--train-fn", default=DEFAULT_TRAIN_FN)
    parser.add_argument("--max-concurrent", type=int, default=None)
    parser.add_argument("--gpus", default=None, help="comma-separated GPU ids the executor manages")
    parser.add_argument("--grace", type=float, default=None)
    parser.add_argument("--standby", action="store_true", help="warm up, then wait for a run (dpcore.runs.warm)")
    parser.add_argument("--keeper", default=None, help="PID:IDENT of the process that keeps this standby")
    parser.add_argument("--after-run", default=None, help="a standby warms up once this run has its first step")
    args = parser.parse_args(argv)
    if not args.standby and not args.run_id:
        parser.error("--run-id is required (or --standby)")

    os.umask(0o077)  # before anything is written: checkpoints, results and logs are the server's alone
    stop = threading.Event()
    signals: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        signals.append(signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.standby:
        return _standby(args, stop, signals)

    store = RunStore(args.data_dir)
    # Everything the run caches (public models) goes to the server's data folder, not $HOME.
    os.environ[ENV_DATA_DIR] = str(store.data_dir)
    _use_calibration_folder(store)
    run = claim(store, args.run_id, os.getpid(), pid_ident=process_identity(os.getpid()))
    if run is None:
        print(f"run {args.run_id} is not this process's to train; exiting", file=sys.stderr)
        return 0
    print(f"worker {os.getpid()} training run {run.id}", file=sys.stderr)
    beat = Heartbeat(store, run.id, stop, float(os.environ.get(ENV_HEARTBEAT_S, "2")))
    beat.start()
    return _serve(store, run, beat, stop, signals, args, args.train_fn)


def _serve(store: RunStore, run: Run, beat: Heartbeat, stop: threading.Event, signals: list[int],
           args: argparse.Namespace, train_fn: Any, data: Any = None) -> int:
    """Train the claimed ``run`` (heartbeat beating), store its files and final status, hand over."""
    previous = _cap_memory(run)
    try:
        ending = train(store, run, stop, train_fn, data=data)
    finally:
        beat.halt.set()
        if previous is not None:  # the hand-over below starts workers that set their own cap
            resource.setrlimit(resource.RLIMIT_AS, previous)
    names = ", ".join(signal.Signals(s).name for s in signals) or "a stop request"
    outside = f"stopped by {names} from outside dp-rnn-lab before it finished"
    ending = conclude(ending, store.get_run(run.id), outside=outside)
    run_dir = store.run_dir(run.id)
    for name, filename in ARTIFACT_FILES.items():  # before the final status, which readers wait for
        if (run_dir / filename).exists():
            store.add_artifact(run.id, name, run_dir / filename)
    store.finish_run(run.id, ending.status, error=ending.error, result=ending.stored_result)
    print(f"run {run.id}: {ending.status}" + (f": {ending.error}" if ending.error else ""), file=sys.stderr)
    _hand_over(store, args)
    return 1 if ending.status is Status.FAILED else 0


def _standby(args: argparse.Namespace, stop: threading.Event, signals: list[int]) -> int:
    """A standby worker (:mod:`dpcore.runs.warm`): warm up, take one run from an executor, train it, exit.

    The warm-up runs in the main thread while a second thread waits on the pool's pipe, so a run
    handed over mid-warm-up is claimed (and heartbeats) at once and trains as soon as the warm-up ends.
    """
    data_dir = os.path.abspath(args.data_dir)
    os.environ[ENV_DATA_DIR] = data_dir  # public models are cached in the server's data folder
    pool = warm.Pool(data_dir)
    standby = warm.Standby(pool)
    standby.open()
    keeper_pid, _, keeper_ident = (args.keeper or "").partition(":")
    handed = threading.Event()  # set once the listener is done: a run claimed (in ``got``) or none
    got: dict[str, Any] = {}

    def on_term(signum: int, _frame: Any) -> None:
        signals.append(signum)
        stop.set()
        if not handed.is_set() and standby.withdraw():
            raise SystemExit(0)  # no run yet: nothing to stop but the warm-up

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    def keeper_alive() -> bool:
        return not keeper_pid or process_alive(int(keeper_pid), keeper_ident or None)

    def listen() -> None:
        try:
            message = standby.wait(keeper_alive=keeper_alive, stopping=stop.is_set, idle_s=warm.idle_seconds())
            if message is not None:
                got.update(_take(pool, standby, args, message, stop))
        except Exception:  # noqa: BLE001 - a broken pool entry: leave; a claimed run is reaped as dead
            traceback.print_exc()
        finally:
            handed.set()

    listener = threading.Thread(target=listen, name="dpcore-standby", daemon=True)
    listener.start()
    try:
        if args.after_run:
            _hold_warm_up(data_dir, args.after_run, handed, stop)
        try:
            prepared = warm.prepare(args.train_fn, DEFAULT_TRAIN_FN)
            print(f"standby worker {os.getpid()}: warmed up in {prepared.seconds:.2f} s", file=sys.stderr)
        except Exception:  # noqa: BLE001 - a run handed over still trains, started as a cold worker would
            traceback.print_exc()
            prepared = warm.Prepared()
        handed.wait()
    finally:
        if not got:
            standby.leave()
    run: Run | None = got.get("run")
    if run is None:
        return 0
    os.chdir(got["store"].run_dir(run.id))
    data = None
    with contextlib.suppress(DPCoreError):  # a bad config: the trainer says why
        data = prepared.data_for(run.train_config())
    return _serve(got["store"], run, got["beat"], stop, signals, args, prepared.fn or args.train_fn, data)


def _hold_warm_up(data_dir: str, run_id: str, handed: threading.Event, stop: threading.Event) -> None:
    """Wait, reading the store 5 times a second, until ``run_id`` has its first step or ended (at most
    :data:`~dpcore.runs.warm.HOLD_S`): its start-up should not share the CPU with this warm-up. A run
    handed to this standby meanwhile ends the wait at once.
    """
    deadline = time.monotonic() + warm.HOLD_S
    try:
        store = RunStore(data_dir)
        while time.monotonic() < deadline and not handed.is_set() and not stop.is_set():
            run = store.get_run(run_id)
            if run.is_terminal or (run.last_step or 0) >= 1:
                break
            handed.wait(0.2)
        store.close()
    except Exception:  # noqa: BLE001 - a run gone or a busy store: warm up now
        traceback.print_exc()


def _take(pool: warm.Pool, standby: warm.Standby, args: argparse.Namespace, message: dict[str, Any],
          stop: threading.Event) -> dict[str, Any]:
    """Become the worker of the run in ``message``: its log, its limits, its claim, its heartbeat."""
    restart_clock("the run was handed to this standby worker")
    run_id = str(message["run_id"])
    os.environ.update({str(k): str(v) for k, v in (message.get("env") or {}).items()})
    args.max_concurrent = message.get("max_concurrent")
    args.gpus = message.get("gpus")
    args.grace = message.get("grace")
    store = RunStore(args.data_dir)  # after the environment: the taker's limits
    _redirect_output(pool, store.run_dir(run_id))
    standby.leave()
    _use_calibration_folder(store)
    run = claim(store, run_id, os.getpid(), pid_ident=process_identity(os.getpid()), adopt=False)
    if run is None:
        print(f"run {run_id} is not this process's to train; exiting", file=sys.stderr)
        return {}
    print(f"standby worker {os.getpid()} training run {run.id}", file=sys.stderr)
    beat = Heartbeat(store, run.id, stop, float(os.environ.get(ENV_HEARTBEAT_S, "2")))
    beat.start()
    return {"store": store, "run": run, "beat": beat}


def _redirect_output(pool: warm.Pool, run_dir: Path) -> None:
    """From now on stdout and stderr go to the run's ``worker.log``, which starts with the warm-up's."""
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # the executor made it; a hand-run may not have
    fd = os.open(run_dir / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        with contextlib.suppress(OSError), open(pool.file(os.getpid(), ".log"), "rb") as warm_log:
            os.write(fd, warm_log.read())
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)


def _use_calibration_folder(store: RunStore) -> None:
    """Reuse the σ the dashboard calibrated at launch (checked by one exact evaluation before use).

    The trainer's ``plan`` asks :mod:`dpcore.privacy.calcache`, which looks in the server's data
    folder; without it (unwritable) the worker calibrates, as before.
    """
    try:
        calcache.use_folder(calcache.folder_in(store.data_dir))
    except OSError as err:
        print(f"no calibration cache ({err}); calibrating in the worker", file=sys.stderr)


def _cap_memory(run: Run) -> tuple[int, int] | None:
    """Lower this process's soft RLIMIT_AS to the run's memory limit; returns the old limits.

    CPU runs only: CUDA maps far more address space than it uses, so a GPU run is not capped.
    The hard limit stays, so the cap can be lifted again for the hand-over.
    """
    try:
        config = run.train_config()
    except DPCoreError:
        return None  # the trainer reports the bad config
    uses_gpu = config.device in ("cuda", "auto") and bool(os.environ.get("CUDA_VISIBLE_DEVICES", "").strip())
    if uses_gpu or config.device == "mps":
        return None
    limits = ServerLimits.from_env()
    wanted = memory_limit_bytes(estimate_config_memory(config), limits)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft <= wanted:
        return None
    resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))
    print(f"memory cap: {wanted / 2**20:.0f} MiB of address space", file=sys.stderr)
    return soft, hard


def _hand_over(store: RunStore, args: argparse.Namespace) -> None:
    """Start the next queued run in the slot this worker frees (same cap as its launcher)."""
    gpus = None if args.gpus is None else [g for g in args.gpus.split(",") if g]
    try:
        LocalExecutor(
            store, args.max_concurrent, gpus=gpus, grace_s=args.grace or DEFAULT_GRACE_S,
            train_fn=None if args.train_fn == DEFAULT_TRAIN_FN else args.train_fn,
            warm_workers=0,  # it exits now: it may hand the next run to a standby, never keep one
        ).poll()
    except Exception:  # noqa: BLE001 - the run is already settled; the next poll retries
        traceback.print_exc()


if __name__ == "__main__":
    sys.exit(main())

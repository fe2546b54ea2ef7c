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
   past the server's steps or time limit, or a crash whose traceback is in the log). Metrics
   written so far are kept in every case;
5. hands its slot to the next queued run (``LocalExecutor.poll``), so queues drain without a daemon.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import resource
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dpcore.errors import DPCoreError
from dpcore.events import EvalMetrics, RunInfo, SampleEvent, StepMetrics, TrainCallbacks
from dpcore.paths import ENV_DATA_DIR
from dpcore.privacy import calcache
from dpcore.runs.executor import DEFAULT_GRACE_S, LocalExecutor, process_identity
from dpcore.runs.limits import ServerLimits, check_steps, estimate_config_memory, memory_limit_bytes
from dpcore.runs.store import Run, RunStore, disk_full, is_disk_full

DEFAULT_TRAIN_FN = "dpcore.audit.pipeline:train_and_audit"
ENV_HEARTBEAT_S = "DPCORE_HEARTBEAT_S"
FLUSH_S = 0.5  # buffered metrics reach the store at most this late (plus one step)
ARTIFACT_FILES = {"checkpoint": "model.pt", "result": "result.json", "metrics_csv": "metrics.csv",
                  "log": "worker.log", "audit": "audit.json"}


#: When this module was imported: the worker's start-up times in its log count from here.
_STARTED = time.monotonic()


class StoreCallbacks(TrainCallbacks):
    """Writes trainer events to the store; step metrics are batched to at most one write per FLUSH_S."""

    def __init__(self, store: RunStore, run_id: str, flush_s: float = FLUSH_S,
                 limits: ServerLimits | None = None) -> None:
        self.store, self.run_id, self.flush_s = store, run_id, flush_s
        self.limits = limits or store.limits
        self.device: str | None = None
        self._buffer: list[dict[str, Any]] = []
        self._last_flush = 0.0  # so the first step is written at once
        self._ready_s: float | None = None

    def on_start(self, info: RunInfo) -> None:
        check_steps(info.total_steps, self.limits)  # epochs become steps only now that N is known
        self.device = info.device
        self.store.set_run_info(self.run_id, info.to_dict(), device=info.device)
        self._ready_s = time.monotonic() - _STARTED

    def on_status(self, text: str) -> None:
        """Work before the first step (building the public model): shown as the run's status line."""
        self.store.set_run_info(self.run_id, {"status_text": text})  # on_start replaces it with the real info

    def on_step(self, metrics: StepMetrics) -> None:
        self._buffer.append(metrics.to_dict())
        if time.monotonic() - self._last_flush >= self.flush_s:
            self.flush()
        if metrics.step == 1 and self._ready_s is not None:  # where start-up time goes (bench/bench_launch.py)
            print(f"start-up: trainer ready {self._ready_s:.2f} s, first step stored "
                  f"{time.monotonic() - _STARTED:.2f} s after the worker started", file=sys.stderr)

    def on_eval(self, metrics: EvalMetrics) -> None:
        self.flush()
        self.store.add_eval(self.run_id, metrics.to_dict())

    def on_samples(self, event: SampleEvent) -> None:
        self.flush()
        self.store.add_samples(self.run_id, event.step, event.kind, event.prompt, event.texts)

    def flush(self) -> None:
        if self._buffer:
            rows, self._buffer = self._buffer, []
            self.store.add_metrics(self.run_id, rows)
        self._last_flush = time.monotonic()


class _Heartbeat(threading.Thread):
    """Tells the store this worker lives; sets ``stop`` when the store says cancel."""

    def __init__(self, store: RunStore, run_id: str, stop: threading.Event, interval: float) -> None:
        super().__init__(name="dpcore-heartbeat", daemon=True)
        self.store, self.run_id, self.stop, self.interval = store, run_id, stop, interval
        self.halt = threading.Event()

    def run(self) -> None:
        while True:  # beat at once, then every interval
            try:
                if self.store.heartbeat(self.run_id):
                    self.stop.set()
            except Exception as err:  # noqa: BLE001 - a busy store must not kill the run; try again next beat
                print(f"heartbeat failed: {err}", file=sys.stderr)
            if self.halt.wait(self.interval):
                return


def claim(store: RunStore, run_id: str, pid: int, *, host: str | None = None, local: bool = True,
          gpu: str | None = None) -> Run | None:
    """The run if this process should train it; None if it belongs to another process or ended.

    Runs in a write transaction, so it sees the dispatcher's committed claim (pid) or none.
    ``local=False`` (a Ray worker on another machine, claimed through the store writer): the pid
    is not this machine's, so no process identity is recorded.
    """
    with store.transaction() as conn:
        run = store.get_run(run_id, conn=conn)
        if run.status == "queued":  # started by hand or by another executor: claim it ourselves
            store.claim_run(conn, run_id, host=host or socket.gethostname(), pid=pid,
                            pid_ident=process_identity(pid) if local else None, gpu=gpu)
        elif run.status != "running" or run.pid not in (None, pid):
            return None
        if run.cancel_requested_at is not None:
            store.finish_run(run_id, "cancelled", conn=conn)
            return None
        return store.get_run(run_id, conn=conn)


def load_train_fn(spec: str) -> Callable[..., dict[str, Any]]:
    """``"package.module:function"`` or ``"/path/to/file.py:function"``."""
    target, _, name = spec.rpartition(":")
    if target.endswith(".py"):
        module_spec = importlib.util.spec_from_file_location(Path(target).stem, target)
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"cannot load {target}")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    return getattr(module, name)


def train(store: RunStore, run: Run, stop: threading.Event, train_fn: str) -> tuple[str, str | None, Any]:
    """Run the trainer; returns (final status, error message or None, result dict or None)."""
    callbacks = StoreCallbacks(store, run.id)
    try:
        config = run.train_config()
        fn = load_train_fn(train_fn)
        result = fn(
            config, store.run_dir(run.id), callbacks=callbacks,
            should_stop=stop.is_set,
        )
    except DPCoreError as err:
        return "failed", str(err), None
    except Exception as err:  # noqa: BLE001 - any crash must end as "failed", never a hang
        traceback.print_exc()
        if is_disk_full(err) or store.low_on_disk():
            return "failed", str(disk_full("the run could not write its files and stopped")), None
        if _is_out_of_memory(err):
            where = callbacks.device or run.device or "this device"
            return "failed", (
                f"ran out of memory on {where}: lower the batch size, hidden size or sequence "
                f"length, or run fewer runs at once"
            ), None
        return "failed", (
            f"training crashed with {type(err).__name__}: {err} (a bug in dp-rnn-lab; the full "
            f"traceback is in {store.run_dir(run.id) / 'worker.log'})"
        ), None
    finally:
        try:
            callbacks.flush()
        except Exception:  # noqa: BLE001 - the final status below matters more than the last few rows
            traceback.print_exc()
    if isinstance(result, dict) and result.get("stopped"):
        return "cancelled", None, result
    return "finished", None, result


def _is_out_of_memory(err: BaseException) -> bool:
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dpcore.runs.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--train-fn", default=DEFAULT_TRAIN_FN)
    parser.add_argument("--max-concurrent", type=int, default=None)
    parser.add_argument("--gpus", default=None, help="comma-separated GPU ids the executor manages")
    parser.add_argument("--grace", type=float, default=None)
    args = parser.parse_args(argv)

    os.umask(0o077)  # before anything is written: checkpoints, results and logs are the server's alone
    stop = threading.Event()
    signals: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        signals.append(signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    store = RunStore(args.data_dir)
    # Everything the run caches (public models) goes to the server's data folder, not $HOME.
    os.environ[ENV_DATA_DIR] = str(store.data_dir)
    _use_calibration_folder(store)
    run = claim(store, args.run_id, os.getpid())
    if run is None:
        print(f"run {args.run_id} is not this process's to train; exiting", file=sys.stderr)
        return 0
    print(f"worker {os.getpid()} training run {run.id}", file=sys.stderr)
    beat = _Heartbeat(store, run.id, stop, float(os.environ.get(ENV_HEARTBEAT_S, "2")))
    beat.start()
    previous = _cap_memory(run)
    try:
        status, error, result = train(store, run, stop, args.train_fn)
    finally:
        beat.halt.set()
        if previous is not None:  # the hand-over below starts workers that set their own cap
            resource.setrlimit(resource.RLIMIT_AS, previous)
    now = store.get_run(run.id)
    if now.stop_reason and status != "finished":  # the server stopped it (wall-time cap)
        status, error = "failed", now.stop_reason
    elif status == "cancelled" and now.cancel_requested_at is None:
        names = ", ".join(signal.Signals(s).name for s in signals) or "a stop request"
        error = f"stopped by {names} from outside dp-rnn-lab before it finished"
    run_dir = store.run_dir(run.id)
    for name, filename in ARTIFACT_FILES.items():  # before the final status, which readers wait for
        if (run_dir / filename).exists():
            store.add_artifact(run.id, name, run_dir / filename)
    store.finish_run(run.id, status, error=error, result=result)
    print(f"run {run.id}: {status}" + (f": {error}" if error else ""), file=sys.stderr)
    _hand_over(store, args)
    return 1 if status == "failed" else 0


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
        ).poll()
    except Exception:  # noqa: BLE001 - the run is already settled; the next poll retries
        traceback.print_exc()


if __name__ == "__main__":
    sys.exit(main())

"""How a run ends: the one table from what the supervisor or the worker saw to the run's final status.

Both executors (:mod:`dpcore.runs.executors.local`, :mod:`dpcore.runs.executors.ray`) and both workers
(the local process, :mod:`dpcore.runs.worker`, and the Ray actor) settle runs here, so a run killed by
the OOM killer, a silent worker, an overdue cancel or the wall-time cap reads the same sentence
whatever ran it. The executors only carry the outcome out: write it, and signal or kill what it says.

* :func:`live_verdict` and the executors' own checks give a :class:`Verdict` for a running row;
* :func:`settle` turns it into an :class:`Outcome` (final status and message, or a stop request);
* :func:`conclude` is the worker's side: what it trained, corrected by what the server asked since.

The worker's loop itself is here too, as both workers run it unchanged (the local process against the
store, the Ray actor against its remote store): :func:`claim` the row, beat a :class:`Heartbeat`,
:func:`train` with :class:`StoreCallbacks`, each turning every way training can end into an
:class:`Ending`. So no executor imports the other's worker, and the worker process
(:mod:`dpcore.runs.worker`) is only what is local: signals, the memory cap, the hand-over.
"""

from __future__ import annotations

import importlib
import importlib.util
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

from dpcore.errors import DPCoreError
from dpcore.events import EvalMetrics, RunInfo, SampleEvent, StepMetrics, TrainCallbacks
from dpcore.runs.limits import ServerLimits, check_steps
from dpcore.runs.store import DISK_FULL_HINT, Run, RunStore, Status, disk_full, is_disk_full
from dpcore.training.result import RunResult, as_result

DIED_MESSAGE = "the worker process exited unexpectedly (killed, out of memory, or machine restart)"
DISK_FULL_MESSAGE = f"the server's disk is full: the worker could not write its files and stopped; {DISK_FULL_HINT}"
STUCK_MESSAGE = (
    "the worker stopped responding (no heartbeat for over {seconds:g} s: stopped or hung), so it was "
    "killed; the metrics it had written are kept"
)
OVERTIME_MESSAGE = (
    "the run reached this server's limit of {limit} of wall time per run and was stopped; its "
    "metrics are kept: run fewer steps or a smaller model"
)
KILLED_AFTER_CANCEL_MESSAGE = "did not stop within {seconds:g} s of the cancel request, so it was killed"
SILENT_HOST_MESSAGE = "the worker on {host} stopped sending heartbeats (none for over {seconds:g} s)"


class Verdict(str, Enum):
    """What the supervisor found about a running run whose row says ``running``.

    A ``str`` enum, like :class:`~dpcore.runs.store.Status`, so logs and tests read the plain word.
    """

    DEAD = "dead"  # its worker is gone (kill -9, out of memory, node lost, reboot)
    STALE = "stale"  # silent, and run by a worker this executor cannot see (another host or executor)
    STUCK = "stuck"  # its worker lives but has sent no heartbeat for too long (stopped, hung)
    KILL = "kill"  # it was asked to stop longer than the grace period ago
    OVERTIME = "overtime"  # past the server's wall-time cap: ask it to stop

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Outcome:
    """What to do with a run: end it (``status`` and ``error``), or ask it to stop (``stop_reason``).

    ``kill``: its worker must be killed now (SIGKILL to the process group, or ``ray.kill``).
    """

    status: Status | None
    error: str | None = None
    kill: bool = False
    stop_reason: str | None = None


def duration_text(seconds: float) -> str:
    """``seconds`` as the shortest exact unit ("2 h", "90 min", "45 s"), for the wall-time cap's sentence."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def overtime_reason(limits: ServerLimits) -> str:
    """The sentence a run stopped at the wall-time cap ends with."""
    return OVERTIME_MESSAGE.format(limit=duration_text(limits.max_run_seconds))


def live_verdict(run: Run, now: float, silent: bool, grace_s: float, limits: ServerLimits) -> Verdict | None:
    """What to do with a run whose worker is alive, whatever executor runs it.

    KILL (cancelled longer than the grace period ago), STUCK (no heartbeat), OVERTIME (past the
    server's wall-time cap), or None (leave it be).
    """
    if run.cancel_requested_at is not None and now - run.cancel_requested_at > grace_s:
        return Verdict.KILL
    if silent:
        return Verdict.STUCK
    cap = limits.max_run_seconds
    if cap and run.stop_reason is None and run.started_at is not None and now - run.started_at > cap:
        return Verdict.OVERTIME
    return None


def settle(run: Run, verdict: Verdict, *, grace_s: float, stale_after_s: float, limits: ServerLimits,
           died: str = DIED_MESSAGE) -> Outcome:
    """The one table from a supervisor's verdict to the run's end.

    In order: a run the server stopped (wall-time cap) fails with that reason; a stuck one fails as
    stuck; a cancelled one is cancelled (saying so when it had to be killed); a silent one elsewhere
    fails naming its host; a dead one fails with ``died`` (the executor's best word on why: a full
    disk, else :data:`DIED_MESSAGE`). Metrics are never touched: they stay in every case.
    """
    if verdict is Verdict.OVERTIME:
        return Outcome(None, stop_reason=overtime_reason(limits))
    kill = verdict in (Verdict.KILL, Verdict.STUCK)
    if run.stop_reason:
        return Outcome(Status.FAILED, run.stop_reason, kill)
    if verdict is Verdict.STUCK:
        return Outcome(Status.FAILED, STUCK_MESSAGE.format(seconds=stale_after_s), kill)
    if run.cancel_requested_at is not None:
        error = KILLED_AFTER_CANCEL_MESSAGE.format(seconds=grace_s) if verdict is Verdict.KILL else None
        return Outcome(Status.CANCELLED, error, kill)
    if verdict is Verdict.STALE:
        return Outcome(Status.FAILED, SILENT_HOST_MESSAGE.format(host=run.host, seconds=stale_after_s), kill)
    return Outcome(Status.FAILED, died, kill)


@dataclass(frozen=True)
class Ending:
    """How a worker's training ended: the status it will write, why (one sentence), and the trainer's result."""

    status: Status
    error: str | None = None
    result: RunResult | None = None

    @classmethod
    def failed(cls, error: str) -> Ending:
        """A failure with the sentence the user reads."""
        return cls(Status.FAILED, error)

    @property
    def stored_result(self) -> dict[str, Any] | None:
        """The result as the store keeps it (``result.json``'s object), None when there is none."""
        return None if self.result is None else self.result.to_dict()


def conclude(ending: Ending, now: Run, *, outside: str) -> Ending:
    """The worker's final word: its ``ending``, corrected by the run's row ``now``.

    A run the server stopped (wall-time cap) fails with that reason unless it finished anyway; a run
    that stopped without anyone in dp-rnn-lab asking was stopped from ``outside`` (a signal, Ray).
    """
    if now.stop_reason and ending.status is not Status.FINISHED:
        return replace(ending, status=Status.FAILED, error=now.stop_reason)
    if ending.status is Status.CANCELLED and now.cancel_requested_at is None:
        return replace(ending, error=outside)
    return ending


# ---------------------------------------------------------------------------------- the worker's loop
DEFAULT_TRAIN_FN = "dpcore.audit.pipeline:train_and_audit"
ENV_HEARTBEAT_S = "DPCORE_HEARTBEAT_S"
FLUSH_S = 0.5  # buffered metrics reach the store at most this late (plus one step)
ARTIFACT_FILES = {"checkpoint": "model.pt", "result": "result.json", "metrics_csv": "metrics.csv",
                  "log": "worker.log", "audit": "audit.json", "lab": "lab_canaries.npz"}


#: When this module was imported: the worker's start-up times in its log count from here (a standby
#: worker restarts the clock when it is handed its run: :func:`restart_clock`).
_STARTED = time.monotonic()
_SINCE = "the worker started"


def restart_clock(since: str) -> None:
    """Count the start-up times in the log from now, "after ``since``" (a standby worker taking a run)."""
    global _STARTED, _SINCE
    _STARTED, _SINCE = time.monotonic(), since


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
        # on_start replaces it with the real info
        self.store.set_run_info(self.run_id, replace(RunInfo.empty(), status_text=text).to_dict())

    def on_step(self, metrics: StepMetrics) -> None:
        self._buffer.append(metrics.to_dict())
        if time.monotonic() - self._last_flush >= self.flush_s:
            self.flush()
        if metrics.step == 1 and self._ready_s is not None:  # where start-up time goes (bench/bench_launch.py)
            print(f"start-up: trainer ready {self._ready_s:.2f} s, first step stored "
                  f"{time.monotonic() - _STARTED:.2f} s after {_SINCE}", file=sys.stderr)

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


class Heartbeat(threading.Thread):
    """Tells the store this worker lives; sets ``stop`` when the store says cancel.

    Public because both workers beat it: this process's, and the Ray actor's against its remote store.
    ``halt`` ends it; a store that fails one beat is tried again at the next.
    """

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


def claim(store: RunStore, run_id: str, pid: int, *, host: str | None = None, pid_ident: str | None = None,
          gpu: str | None = None, adopt: bool = True) -> Run | None:
    """The run if this process should train it; None if it belongs to another process or ended.

    Runs in a write transaction, so it sees the dispatcher's committed claim (pid) or none. A queued
    row is claimed here only with ``adopt`` (a worker started by hand); a standby worker
    (:mod:`dpcore.runs.warm`) passes False, so it trains only a run the dispatcher gave it.
    ``pid_ident`` is the local process's identity (:func:`~dpcore.runs.executors.local.process_identity`);
    a Ray worker on another machine, claimed through the store writer, has none: its pid is not this
    machine's.
    """
    with store.transaction() as conn:
        run = store.get_run(run_id, conn=conn)
        if run.status == Status.QUEUED and adopt:  # started by hand or by another executor: claim it ourselves
            store.claim_run(conn, run_id, host=host or socket.gethostname(), pid=pid,
                            pid_ident=pid_ident, gpu=gpu)
        elif run.status != Status.RUNNING or run.pid not in ((pid,) if not adopt else (None, pid)):
            return None
        if run.cancel_requested_at is not None:
            store.finish_run(run_id, Status.CANCELLED, conn=conn)
            return None
        return store.get_run(run_id, conn=conn)


def load_train_fn(spec: str) -> Callable[..., RunResult | dict[str, Any]]:
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


def train(store: RunStore, run: Run, stop: threading.Event, train_fn: str | Callable[..., dict[str, Any]],
          *, data: Any = None) -> Ending:
    """Run the trainer; returns how it ended (status, the user's sentence for a failure, the result).

    ``train_fn`` is a spec (``"module:function"``) or the function itself (a standby worker loaded it
    ahead); ``data``, when given, is the run's corpus already cut into windows (a standby worker's,
    built for exactly this config's corpus settings), passed on as the trainer's ``data=``.
    Every exception becomes a failure with a sentence the user can act on, never a hang.
    """
    callbacks = StoreCallbacks(store, run.id)
    try:
        config = run.train_config()
        fn = load_train_fn(train_fn) if isinstance(train_fn, str) else train_fn
        extra = {} if data is None else {"data": data}
        result = as_result(fn(
            config, store.run_dir(run.id), callbacks=callbacks,
            should_stop=stop.is_set, **extra,
        ))
    except DPCoreError as err:
        return Ending.failed(str(err))
    except Exception as err:  # noqa: BLE001 - any crash must end as "failed", never a hang
        traceback.print_exc()
        if is_disk_full(err) or store.low_on_disk():
            return Ending.failed(str(disk_full("the run could not write its files and stopped")))
        if _is_out_of_memory(err):
            where = callbacks.device or run.device or "this device"
            return Ending.failed(
                f"ran out of memory on {where}: lower the batch size, hidden size or sequence "
                f"length, or run fewer runs at once"
            )
        return Ending.failed(
            f"training crashed with {type(err).__name__}: {err} (a bug in dp-rnn-lab; the full "
            f"traceback is in {store.run_dir(run.id) / 'worker.log'})"
        )
    finally:
        try:
            callbacks.flush()
        except Exception:  # noqa: BLE001 - the final status below matters more than the last few rows
            traceback.print_exc()
    if result is not None and result.stopped:
        return Ending(Status.CANCELLED, None, result)
    return Ending(Status.FINISHED, None, result)


def _is_out_of_memory(err: BaseException) -> bool:
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)

"""One read of a run per tick for every tab that watches it, and its figures built once per new step.

(Also what tabs share that is no run's tick: :meth:`RunTicker.shared`, e.g. Home's gallery figures.)

A room of thirty watching two runs used to cost sixty store reads and sixty sets of Plotly figures a
second. The ticker keeps, per run and per server process, the run's rows read so far; a tab's tick
asks it for the run, and the store is read again only when the last read is older than
``min_interval_s`` (new rows only: metrics after the last step, samples after the last id). Figures and
anything else a page derives from a tick are memoised by :meth:`RunTicker.derived` under the tick's
version and the viewer-specific inputs the page names, so tabs that see the same thing share one copy.
What a viewer may see is still decided per tab, from the shared rows (never the other way round).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from dpcore.runs.store import Run, RunStore

#: Derived values kept per run (a few viewer variants of the latest version are enough).
MAX_DERIVED = 16


@dataclass(frozen=True)
class Tick:
    """A run as last read: the run, every metric and sample row so far, the evals, and a version."""

    run: Run
    metrics: tuple[dict[str, Any], ...]
    evals: tuple[dict[str, Any], ...]
    samples: tuple[dict[str, Any], ...]
    version: tuple[Any, ...]


@dataclass
class _Watched:
    lock: threading.Lock = field(default_factory=threading.Lock)
    read_at: float = -1e9
    last_step: int = -1
    sample_id: int = 0
    metrics: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    tick: Tick | None = None
    derived: dict[Hashable, Any] = field(default_factory=dict)


class RunTicker:
    """Shared, incremental reads of runs from one store (one per server process)."""

    def __init__(self, store: RunStore, *, min_interval_s: float = 0.5) -> None:
        self.store = store
        self.min_interval_s = min_interval_s
        self._lock = threading.Lock()
        self._runs: dict[str, _Watched] = {}
        self.reads = 0  # store reads made, for tests and benches
        self._last_call: dict[str, float] = {}
        self._shared: dict[Hashable, Any] = {}

    def _watched(self, run_id: str) -> _Watched:
        with self._lock:
            return self._runs.setdefault(run_id, _Watched())

    def read(self, run_id: str, *, max_age_s: float | None = None, now: float | None = None) -> Tick:
        """The run's latest tick; the store is read only if the last read is older than ``max_age_s``
        (default: the ticker's interval; 0: read now, as a tab opening the page does)."""
        w = self._watched(run_id)
        max_age = self.min_interval_s if max_age_s is None else max_age_s
        with w.lock:
            now = time.monotonic() if now is None else now
            if w.tick is not None and now - w.read_at < max_age:
                return w.tick
            fresh = self.store.samples(run_id, since_id=w.sample_id)  # before the snapshot: never newer
            snap = self.store.snapshot(run_id, since_step=w.last_step)
            self.reads += 1
            if snap.metric_count < len(w.metrics):  # the store was rebuilt under us: start again
                w.metrics, w.samples, w.last_step, w.sample_id = [], [], -1, 0
                fresh = self.store.samples(run_id)
                snap = self.store.snapshot(run_id)
            if snap.metrics:
                w.metrics.extend(snap.metrics)
                w.last_step = snap.metrics[-1]["step"]
            if fresh:
                w.samples.extend(fresh)
                w.sample_id = fresh[-1]["id"]
            version = (w.last_step, len(snap.evals), w.sample_id, snap.run.status, snap.run.last_step)
            if w.tick is None or w.tick.version != version:
                w.derived.clear()
                w.tick = Tick(run=snap.run, metrics=tuple(w.metrics), evals=tuple(snap.evals),
                              samples=tuple(w.samples), version=version)
            w.read_at = now
            return w.tick

    def derived(self, tick: Tick, key: Hashable, build: Callable[[], Any]) -> Any:
        """``build()`` once per (run, tick version, key): what every tab seeing the same thing shares."""
        w = self._watched(tick.run.id)
        full = (tick.version, key)
        with w.lock:
            if full in w.derived:
                return w.derived[full]
        value = build()  # outside the lock: another tab may build the same value meanwhile, harmlessly
        with w.lock:
            if len(w.derived) >= MAX_DERIVED:
                w.derived.clear()
            return w.derived.setdefault(full, value)

    def throttled(self, name: str, interval_s: float, fn: Callable[[], Any], *, now: float | None = None) -> bool:
        """Call ``fn`` unless some tab called it less than ``interval_s`` ago (e.g. the executor's poll, which
        every watching tab used to run on every tick); True when it was called."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if now - self._last_call.get(name, -1e9) < interval_s:
                return False
            self._last_call[name] = now
        fn()
        return True

    def shared(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """``build()`` once per ``key`` in this process (e.g. Home's gallery figures, keyed by its finished runs)."""
        with self._lock:
            if key in self._shared:
                return self._shared[key]
        value = build()
        with self._lock:
            if len(self._shared) >= MAX_DERIVED:
                self._shared.clear()
            return self._shared.setdefault(key, value)

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._runs.pop(run_id, None)

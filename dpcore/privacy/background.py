"""Accounting that takes seconds, computed on a few shared threads so that a page can answer at once.

Why here and not in the views: calibrating σ and drawing an ε curve with PRV or PLD costs seconds,
and the dashboard must not stall on it. The views stay pure functions of their inputs (no threads,
no files); they hand such a computation to a :class:`Jobs` table, which runs each key once, keeps
what finished for the next rerun, and drops work nobody waits for any more (a slider dragged across
many values wants the last one). Writing the calibrated σ for a worker is
:func:`dpcore.privacy.calcache.hand_over`'s; :func:`start_once` runs a warm-up once per process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class Jobs:
    """Computations by key on a small thread pool: one run per key, finished ones kept or forgotten.

    ``keep``: finished results remembered (0: a key is forgotten once done, so the next request
    computes again, as a time-limited shared pool wants). ``queued``: at most this many jobs wait for
    a thread; the oldest waiting ones are cancelled past it (None: no limit).
    """

    def __init__(self, name: str, workers: int, *, keep: int, queued: int | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self.keep, self.queued = keep, queued
        #: Futures by key, oldest first; read it under :attr:`lock`.
        self.jobs: OrderedDict[Hashable, Future] = OrderedDict()
        self.lock = threading.Lock()

    def job(self, key: Hashable, fn: Callable[..., Any], *args: Any) -> Future:
        """The computation of ``key`` (``fn(*args)``), started unless it is running or done (not cancelled)."""
        fresh = False
        with self.lock:
            job = self.jobs.get(key)
            if job is not None and not job.cancelled():
                self.jobs.move_to_end(key)
                return job
            job = self._pool.submit(fn, *args)
            self.jobs[key] = job
            fresh = True
            if self.queued is not None:
                waiting = [k for k, f in self.jobs.items() if not f.done() and not f.running() and k != key]
                for old in waiting[: max(0, len(waiting) - (self.queued - 1))]:
                    if self.jobs[old].cancel():
                        del self.jobs[old]
            if self.keep:
                finished = [k for k, f in self.jobs.items() if f.done()]
                for old in finished[: max(0, len(self.jobs) - self.keep)]:
                    del self.jobs[old]
        if fresh and not self.keep:  # outside the lock: a future already done runs its callback right here
            job.add_done_callback(lambda _f: self.forget(key, job))
        return job

    def get(self, key: Hashable) -> Future | None:
        """The computation of ``key`` if one was started and not dropped (nothing is started)."""
        with self.lock:
            return self.jobs.get(key)

    def forget(self, key: Hashable, job: Future | None = None) -> None:
        """Drop ``key`` (only if it is still ``job``, when given)."""
        with self.lock:
            if job is None or self.jobs.get(key) is job:
                self.jobs.pop(key, None)

    def clear(self) -> None:
        """Forget every key (running computations finish unobserved)."""
        with self.lock:
            self.jobs.clear()


#: Exact previews of accountants that are not instant (PRV, PLD): kept for reruns, stale ones dropped.
SLOW = Jobs("dpcore-exact-preview", 2, keep=128, queued=3)
#: Everything else a page computes with a time limit, shared by every session (requests wait their turn).
QUICK = Jobs("dpcore-preview", 2, keep=0)

_started: set[str] = set()
_started_lock = threading.Lock()


def start_once(name: str, work: Callable[[], None]) -> bool:
    """Run ``work`` in a daemon thread the first time ``name`` is asked for in this process; False after."""
    with _started_lock:
        if name in _started:
            return False
        _started.add(name)
    threading.Thread(target=work, name=name, daemon=True).start()
    return True

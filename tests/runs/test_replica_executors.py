"""Two dashboard replicas over one data folder: two executors, each with its own store connection.

What README's "Two app replicas behind nginx" promises, at the executor level (the real servers behind a
real nginx are tests/browser/test_replicas.py): both replicas drain one queue, a run starts once however
the two poll, the concurrency cap counts every running run of the store (a machine-wide cap, not one per
replica), and a run's owner can cancel it through either replica. Real worker processes, driven by
tests/fake_training.py.
"""

from __future__ import annotations

import threading
import time

from dpcore.runs.executors.local import LocalExecutor, process_alive
from dpcore.runs.limits import ServerLimits
from dpcore.runs.store import RunStore
from tests.runs.test_executor import FAKE, LONG, config, until, wait_done


def _workers_started(store: RunStore, run_id: str) -> int:
    """Worker processes started for a run, by anyone (a replica, or an exiting worker's hand-over poll).

    Each writes one line to the run's worker.log: "training run …", or, if another process has the
    run, "… is not this process's to train; exiting".
    """
    log = (store.run_dir(run_id) / "worker.log").read_text(errors="replace")
    return log.count(f"training run {run_id}") + log.count(f"run {run_id} is not this process's to train")


def _replicas(store: RunStore, max_concurrent: int, host_b: str | None = None):
    """Replica A on the fixture's store, replica B on a store of its own over the same folder."""
    limits = ServerLimits(max_active_per_owner=4)
    a = LocalExecutor(store, max_concurrent, gpus=[], train_fn=FAKE, grace_s=2.0, limits=limits)
    other = RunStore(store.data_dir)
    b = LocalExecutor(other, max_concurrent, gpus=[], train_fn=FAKE, grace_s=2.0, limits=limits)
    if host_b is not None:
        b.host = host_b  # as if B ran on another machine (or container): it cannot signal A's workers
    return a, b, other


def test_two_replicas_drain_one_queue_once_each_under_one_shared_cap(store: RunStore) -> None:
    a, b, other = _replicas(store, max_concurrent=2)
    try:
        ids = [(a if i % 2 == 0 else b).submit(f"owner-{i}", config("step_s=0.05", steps=6)) for i in range(6)]
        most, stop = [0], threading.Event()

        def hammer(ex: LocalExecutor) -> None:  # both replicas poll as fast as they can, as 30 open tabs would
            while not stop.is_set():
                ex.poll()
                most[0] = max(most[0], len(ex.store.list_runs(status="running")))

        threads = [threading.Thread(target=hammer, args=(ex,)) for ex in (a, b, a, b)]
        for t in threads:
            t.start()
        try:
            until(lambda: all(store.get_run(i).is_terminal for i in ids), what="the queue to drain")
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        runs = [store.get_run(i) for i in ids]
        assert [r.status for r in runs] == ["finished"] * 6, [(r.status, r.error) for r in runs]
        assert [_workers_started(store, i) for i in ids] == [1] * 6  # one worker each, whoever started it
        assert most[0] <= 2  # the cap held across both replicas: it counts the store's running runs
    finally:
        other.close()


def test_the_cap_is_the_store_wide_count_not_one_per_replica(store: RunStore) -> None:
    a, b, other = _replicas(store, max_concurrent=1)
    try:
        first = a.submit("alice", LONG)
        second = b.submit("bob", LONG)  # B has no run of its own, but the machine's one slot is taken
        assert store.get_run(first).status == "running" and store.get_run(second).status == "queued"
        b.poll()
        assert store.get_run(second).status == "queued" and not store.run_dir(second).exists()  # never launched
        b.cancel(first, "alice")  # the slot frees, and the next poll of either replica starts bob's run
        assert wait_done(b, first).status == "cancelled"
        until(lambda: store.get_run(second).status == "running", what="bob's run to start")
        b.cancel(second, "bob")
        assert wait_done(a, second).status == "cancelled"
    finally:
        other.close()


def test_the_owner_cancels_through_the_other_replica(store: RunStore) -> None:
    a, b, other = _replicas(store, max_concurrent=1)
    try:
        run_id = a.submit("alice", LONG)
        until(lambda: store.metric_count(run_id) >= 2, what="2 metric rows")
        started = time.monotonic()
        run = b.cancel(run_id, "alice")  # same machine: B signals the worker A started (its process group)
        assert run.cancel_requested_at is not None
        run = wait_done(b, run_id)
        assert run.status == "cancelled" and run.error is None and run.result.stopped is True
        assert not process_alive(run.pid, run.pid_ident)
        assert time.monotonic() - started < 30
    finally:
        other.close()


def test_a_replica_that_cannot_signal_still_cancels_through_the_heartbeat(store: RunStore) -> None:
    a, b, other = _replicas(store, max_concurrent=1, host_b="another-container")
    try:
        run_id = a.submit("alice", LONG)
        until(lambda: store.metric_count(run_id) >= 2, what="2 metric rows")
        b.cancel(run_id, "alice")  # only the store's flag: the worker's heartbeat (0.5 s here) sees it
        run = wait_done(b, run_id)
        assert run.status == "cancelled" and run.error is None and run.result.stopped is True
    finally:
        other.close()


def test_a_replica_sees_the_other_replicas_runs(store: RunStore) -> None:
    a, b, other = _replicas(store, max_concurrent=1)
    try:
        run_id = a.submit("alice", config(steps=3))
        assert [r.id for r in b.list("alice")] == [run_id]
        assert b.list("bob") == []  # owners still do not see each other
        assert wait_done(b, run_id).status == "finished"
        assert other.metric_count(run_id) == 3
    finally:
        other.close()

"""The local executor in a crowded room: fair sharing, caps on time and memory, stuck workers,
retention, a full disk and private files. Real worker processes, driven by tests/fake_training.py."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from collections.abc import Callable

import pytest

from dpcore.errors import DPCoreError
from dpcore.events import RunInfo
from dpcore.runs.executors.local import LocalExecutor, process_alive
from dpcore.runs.lifecycle import DIED_MESSAGE, DISK_FULL_MESSAGE, StoreCallbacks
from dpcore.runs.limits import ServerLimits
from dpcore.runs.store import QuotaExceeded, RunNotFound, RunStore
from tests.runs.test_executor import FAKE, LONG, config, until, wait_done


@pytest.fixture
def make_executor(store: RunStore) -> Callable[..., LocalExecutor]:
    def make(max_concurrent: int = 1, **limits) -> LocalExecutor:
        return LocalExecutor(store, max_concurrent, gpus=[], train_fn=FAKE, grace_s=2.0,
                             limits=ServerLimits(**limits))

    return make


def test_next_visitor_is_not_behind_a_hogs_backlog(make_executor, store: RunStore) -> None:
    """Before: one FIFO queue, so after 30 runs of alice, bob's run was 30th in the queue (31st in line)."""
    ex = make_executor(max_concurrent=1, max_queued_per_owner=29)
    alice = [ex.submit("alice", LONG) for _ in range(30)]
    with pytest.raises(QuotaExceeded, match="you already have 30 runs queued or running"):
        ex.submit("alice", LONG)
    bob = ex.submit("bob", config("step_s=0.05", steps=4))
    assert store.get_run(alice[0]).status == "running"
    assert store.queue_position(bob) == 1 and store.queue_position(alice[1]) == 2
    ex.cancel(alice[0])  # the slot frees: bob's run goes next, not alice's second
    assert wait_done(ex, bob).status == "finished"
    assert store.get_run(bob).started_at < (store.get_run(alice[1]).started_at or float("inf"))
    for run_id in alice:
        ex.cancel(run_id)


def test_one_owner_never_takes_more_than_their_share(make_executor, store: RunStore) -> None:
    ex = make_executor(max_concurrent=2, max_active_per_owner=1)
    a = [ex.submit("alice", LONG) for _ in range(3)]
    assert [store.get_run(i).status for i in a] == ["running", "queued", "queued"]  # a slot stays free
    b = ex.submit("bob", LONG)
    assert store.get_run(b).status == "running"  # ... for the next visitor
    for run_id in (*a, b):
        ex.cancel(run_id)
    for run_id in (*a, b):
        wait_done(ex, run_id)


def test_submit_refuses_configs_past_the_server_limits(make_executor) -> None:
    ex = make_executor(max_total_steps=100)
    with pytest.raises(DPCoreError, match="1,000 optimizer steps; this server allows at most 100"):
        ex.submit("alice", config(steps=1000))
    with pytest.raises(DPCoreError, match="would need about .* of memory"):
        ex.submit("alice", config().replace(hidden_size=4096, tokenizer="word", max_vocab=50_000, seq_len=1024))
    assert ex.store.list_runs() == []


def test_disk_quota_refuses_new_runs(make_executor, store: RunStore) -> None:
    ex = make_executor(disk_quota_mb=0.5)
    store.save_upload("alice", "big.txt", b"x" * 530_000)
    with pytest.raises(QuotaExceeded, match="so a new run cannot be stored"):
        ex.submit("alice", config())
    assert ex.submit("bob", config())


def test_wall_time_cap_fails_the_run_and_keeps_metrics(make_executor, store: RunStore) -> None:
    ex = make_executor(max_run_seconds=1.5)
    run_id = ex.submit("alice", LONG)
    run = wait_done(ex, run_id)
    assert run.status == "failed"
    assert run.error.startswith("the run reached this server's limit of 1.5 s of wall time per run")
    assert store.metric_count(run_id) >= 1 and run.result.stopped is True  # stopped gracefully
    assert not process_alive(run.pid, run.pid_ident)


def test_wall_time_cap_kills_a_run_that_ignores_sigterm(make_executor, store: RunStore) -> None:
    ex = make_executor(max_run_seconds=1.0)
    run_id = ex.submit("alice", config("step_s=0.05;ignore_stop=1", steps=10_000))
    run = wait_done(ex, run_id)
    assert run.status == "failed" and "limit of 1 s of wall time" in run.error
    until(lambda: not process_alive(run.pid, run.pid_ident), what="the worker to die")


def test_sigstopped_worker_is_killed_and_fails(make_executor, store: RunStore) -> None:
    """Before: a stopped worker's pid lives, so the run stayed "running" for ever."""
    ex = make_executor(stale_after_s=3.0)
    run_id = ex.submit("alice", LONG)
    until(lambda: store.metric_count(run_id) >= 2, what="2 metric rows")
    pid = store.get_run(run_id).pid
    os.killpg(pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    run = wait_done(ex, run_id)
    took = time.monotonic() - stopped_at
    assert run.status == "failed", run.error
    assert run.error.startswith("the worker stopped responding (no heartbeat for over 3 s")
    assert store.metric_count(run_id) >= 2  # kept
    until(lambda: not process_alive(pid), what="the stopped worker to be killed")
    assert took < 3.0 + 10.0
    print(f"SIGSTOPped worker failed {took:.1f} s after the stop (limit 3 s)")


def test_worker_memory_cap_fails_one_run_as_out_of_memory(make_executor, store: RunStore) -> None:
    ex = make_executor(run_memory_mb=500)  # the fake's estimate fits; its 4 GiB allocation does not
    run_id = ex.submit("alice", config("alloc_mb=4096;fail_at=2", steps=5))
    run = wait_done(ex, run_id)
    assert run.status == "failed" and run.error.startswith("ran out of memory on cpu"), run.error
    assert store.metric_count(run_id) == 2
    assert "memory cap: 1524 MiB of address space" in (store.run_dir(run_id) / "worker.log").read_text()
    # the next run of the same worker's hand-over is not capped by it
    assert wait_done(ex, ex.submit("alice", config(steps=3))).status == "finished"


def test_full_disk_in_the_worker_says_so(make_executor, store: RunStore) -> None:
    ex = make_executor()
    run_id = ex.submit("alice", config("fail=enospc;fail_at=2", steps=5))
    run = wait_done(ex, run_id)
    assert run.status == "failed" and run.error.startswith("the server's disk is full"), run.error


def test_dead_worker_on_a_full_disk_is_not_unexplained(make_executor, store: RunStore) -> None:
    ex = make_executor()
    gone = subprocess.Popen(["true"])
    gone.wait()
    ids = []
    for log in (b"Traceback ...\nsqlite3.OperationalError: database or disk is full\n", b"Killed\n"):
        run_id = store.create_run("alice", config())
        with store.transaction() as conn:
            store.claim_run(conn, run_id, host=ex.host, pid=gone.pid, pid_ident="gone:1")
        store.run_dir(run_id).mkdir(parents=True)
        (store.run_dir(run_id) / "worker.log").write_bytes(log)
        ids.append(run_id)
    ex.poll()
    assert [store.get_run(i).error for i in ids] == [DISK_FULL_MESSAGE, DIED_MESSAGE]


def test_retention_deletes_old_runs_on_poll(make_executor, store: RunStore) -> None:
    ex = make_executor(retention_days=7)
    old, recent = ex.submit("alice", config(steps=2)), None
    wait_done(ex, old)
    recent = ex.submit("alice", config(steps=2))
    wait_done(ex, recent)
    with store.transaction() as conn:
        conn.execute("UPDATE runs SET finished_at = ? WHERE id = ?", (time.time() - 8 * 86400, old))
    make_executor(retention_days=7).poll()  # a fresh executor (another page, a CLI call) purges
    with pytest.raises(RunNotFound):
        store.get_run(old)
    assert not store.run_dir(old).exists() and store.get_run(recent).status == "finished"


def test_everything_a_worker_writes_is_private(make_executor, store: RunStore) -> None:
    ex = make_executor()
    run_id = ex.submit("alice", config(steps=3))
    assert wait_done(ex, run_id).status == "finished"
    folder = store.run_dir(run_id)
    assert stat.S_IMODE(store.runs_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert {p.name for p in folder.iterdir()} >= {"model.pt", "result.json", "worker.log"}


def test_steps_are_checked_again_once_the_trainer_knows_them(store: RunStore) -> None:
    run_id = store.create_run("alice", config())
    callbacks = StoreCallbacks(store, run_id, limits=ServerLimits(max_total_steps=100))
    info = RunInfo(total_steps=5000, num_train_examples=100, num_val_examples=10, vocab_size=30,
                   num_parameters=1000, sample_rate=0.1, noise_multiplier=None, delta=None, device="cpu",
                   privacy_unit="example", guarantee="none")
    with pytest.raises(DPCoreError, match="5,000 optimizer steps; this server allows at most 100"):
        callbacks.on_start(info)

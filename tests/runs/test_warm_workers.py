"""Standby workers (dpcore.runs.warm): started before their run, and still one run per process.

Real standby processes, driven by tests/fake_training.py (its warm-up is only its own import), so
these tests check the hand-over and the isolation promises, not the speed (bench/bench_launch.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dpcore.config import TrainConfig
from dpcore.errors import DPCoreError
from dpcore.runs import warm
from dpcore.runs.executors.base import ExecutorOptions
from dpcore.runs.executors.local import LocalExecutor, process_alive
from dpcore.runs.lifecycle import DIED_MESSAGE
from dpcore.runs.limits import ServerLimits
from dpcore.runs.store import RunStore
from tests.runs.test_executor import FAKE, LONG, TIMEOUT, config, until, wait_done


@pytest.fixture
def make_executor(store: RunStore) -> Iterator[Callable[..., LocalExecutor]]:
    made: list[LocalExecutor] = []

    def make(max_concurrent: int = 1, warm_workers: int = 1, **limits) -> LocalExecutor:
        ex = LocalExecutor(store, max_concurrent, gpus=[], train_fn=FAKE, grace_s=2.0, warm_workers=warm_workers,
                           limits=ServerLimits(**limits))
        made.append(ex)
        return ex

    yield make
    for ex in made:  # never leave a standby behind
        ex.close()


def waiting(ex: LocalExecutor) -> list[warm.Entry]:
    return [e for e in ex._pool.entries() if not e.claimed and process_alive(e.pid, e.ident)]


def standby_ready(ex: LocalExecutor, timeout: float = TIMEOUT) -> int:
    """Poll until one standby waits, warmed up; its pid."""
    def ready() -> bool:
        ex.poll()
        found = waiting(ex)
        return bool(found) and "warmed up" in ex._pool.file(found[0].pid, ".log").read_text()

    until(ready, timeout, what="a warmed-up standby")
    return waiting(ex)[0].pid


def test_a_standby_takes_the_next_run_and_a_fresh_one_replaces_it(make_executor, store: RunStore) -> None:
    ex = make_executor()
    pid = standby_ready(ex)
    run_id = ex.submit("alice", config(steps=5))
    assert store.get_run(run_id).pid == pid  # handed over, not started
    run = wait_done(ex, run_id)
    assert run.status == "finished" and run.last_step == 5 and run.result.stopped is False
    log = (store.run_dir(run_id) / "worker.log").read_text()
    assert f"standby worker {pid}: warmed up" in log and f"standby worker {pid} training run {run_id}" in log
    assert set(store.artifacts(run_id)) == {"checkpoint", "result", "log"}
    until(lambda: not process_alive(pid), what="the standby to exit after its one run")
    fresh = standby_ready(ex)
    assert fresh != pid
    assert not ex._pool.file(pid, ".json").exists() and not ex._pool.file(pid, ".fifo").exists()


def test_a_standby_that_dies_mid_run_fails_only_that_run_with_its_metrics_and_is_replaced(
        make_executor, store: RunStore) -> None:
    ex = make_executor()
    pid = standby_ready(ex)
    run_id = ex.submit("alice", LONG)
    assert store.get_run(run_id).pid == pid
    until(lambda: store.metric_count(run_id) >= 3, what="3 metric rows")
    os.killpg(pid, signal.SIGKILL)  # its own process group, as a worker started for the run
    until(lambda: not process_alive(pid), what="the kill")
    run = wait_done(ex, run_id)
    assert run.status == "failed" and run.error == DIED_MESSAGE
    kept = store.metric_count(run_id)
    assert kept >= 3 and store.metrics(run_id)[-1]["step"] == kept
    fresh = standby_ready(ex)  # replaced
    assert fresh != pid
    nxt = ex.submit("alice", config(steps=3))
    assert store.get_run(nxt).pid == fresh and wait_done(ex, nxt).status == "finished"


def test_a_standby_that_dies_while_waiting_is_replaced(make_executor, store: RunStore) -> None:
    ex = make_executor()
    pid = standby_ready(ex)
    os.killpg(pid, signal.SIGKILL)
    until(lambda: not process_alive(pid), what="the kill")
    fresh = standby_ready(ex)
    assert fresh != pid and not ex._pool.file(pid, ".json").exists()
    assert "warmed up" in (ex._pool.dir / "last-died.log").read_text()  # the dead one's log is kept
    run_id = ex.submit("alice", config(steps=3))
    assert store.get_run(run_id).pid == fresh and wait_done(ex, run_id).status == "finished"


def test_a_dead_standby_found_at_dispatch_means_a_worker_is_started(make_executor, store: RunStore) -> None:
    ex = make_executor()
    pid = standby_ready(ex)
    ex.warm_workers = 0  # nobody replaces it: dispatch alone must cope
    os.killpg(pid, signal.SIGKILL)
    until(lambda: not process_alive(pid), what="the kill")
    run_id = ex.submit("alice", config(steps=3))
    run = wait_done(ex, run_id)
    assert run.status == "finished" and run.pid != pid


def test_the_memory_cap_and_limits_of_the_executor_that_hands_the_run_hold(make_executor, store) -> None:
    ex = make_executor(run_memory_mb=500)  # the fake's estimate fits; its 4 GiB allocation does not
    pid = standby_ready(ex)
    run_id = ex.submit("alice", config("alloc_mb=4096;fail_at=2", steps=5))
    assert store.get_run(run_id).pid == pid
    run = wait_done(ex, run_id)
    assert run.status == "failed" and run.error.startswith("ran out of memory on cpu"), run.error
    assert store.metric_count(run_id) == 2
    assert "memory cap: 1524 MiB of address space" in (store.run_dir(run_id) / "worker.log").read_text()
    # a standby started under other limits takes the limits of the executor handing it the run
    other = LocalExecutor(store, 1, gpus=[], train_fn=FAKE, warm_workers=0, limits=ServerLimits(max_run_seconds=1.0))
    pid = standby_ready(ex)
    run_id = other.submit("alice", LONG)
    assert store.get_run(run_id).pid == pid
    run = wait_done(other, run_id)
    assert run.status == "failed" and "limit of 1 s of wall time" in run.error


def test_a_standby_is_no_run_the_cap_and_fair_queue_hold(make_executor, store: RunStore) -> None:
    ex = make_executor(max_concurrent=1, max_active_per_owner=1)
    standby_ready(ex)
    first = ex.submit("alice", LONG)
    second = ex.submit("alice", LONG)
    bob = ex.submit("bob", config("step_s=0.05", steps=4))
    assert [store.get_run(i).status for i in (first, second, bob)] == ["running", "queued", "queued"]
    assert store.queue_position(bob) == 1  # the fewest running first, as without standbys
    standby_ready(ex)  # a standby waits beside the running run; the cap still says one run
    assert [store.get_run(i).status for i in (second, bob)] == ["queued", "queued"]
    ex.cancel(first)
    assert wait_done(ex, bob).status == "finished"
    ex.cancel(second)
    assert wait_done(ex, second).status == "cancelled"


def test_cancel_reaches_a_run_on_a_standby(make_executor, store: RunStore) -> None:
    ex = make_executor()
    pid = standby_ready(ex)
    run_id = ex.submit("alice", LONG)
    until(lambda: store.metric_count(run_id) >= 2, what="2 metric rows")
    ex.cancel(run_id)
    run = wait_done(ex, run_id)
    assert run.status == "cancelled" and run.error is None and run.pid == pid
    assert run.result.stopped is True


def test_a_standby_leaves_when_sent_away_or_its_keeper_is_gone(make_executor, store: RunStore,
                                                               tmp_path: Path) -> None:
    ex = make_executor()
    pid = standby_ready(ex)
    ex.close()
    assert not process_alive(pid) and not ex._pool.file(pid, ".json").exists()
    ex.poll()
    assert waiting(ex) == []  # closed: it keeps none any more
    gone = subprocess.Popen(["true"])
    gone.wait()
    pool = warm.Pool(store.data_dir)
    proc = subprocess.Popen([sys.executable, "-m", "dpcore.runs.worker", "--data-dir", str(store.data_dir),
                             "--standby", "--keeper", f"{gone.pid}:gone", "--train-fn", FAKE],
                            cwd=Path(__file__).parents[2], start_new_session=True)
    pool.ensure()
    pool.register(proc.pid, None, {"python": sys.executable})
    assert proc.wait(TIMEOUT) == 0  # its keeper is gone: it leaves, and takes its files with it
    assert not pool.file(proc.pid, ".json").exists() and not pool.file(proc.pid, ".fifo").exists()


def test_registry_keeps_standbys_for_the_dashboard_only(store: RunStore, monkeypatch) -> None:
    monkeypatch.delenv(warm.ENV_WARM_WORKERS, raising=False)
    dashboard = LocalExecutor.from_options(store, ExecutorOptions(max_concurrent=1))
    terminal = LocalExecutor.from_options(store, ExecutorOptions(max_concurrent=1, start_cluster=False))
    assert (dashboard.warm_workers, terminal.warm_workers) == (1, 0)
    assert LocalExecutor(store, 1, gpus=["0"]).warm_workers == 0  # a GPU server keeps none
    monkeypatch.setenv(warm.ENV_WARM_WORKERS, "0")
    assert LocalExecutor.from_options(store, ExecutorOptions(max_concurrent=1)).warm_workers == 0
    monkeypatch.setenv(warm.ENV_WARM_WORKERS, "-1")
    with pytest.raises(DPCoreError, match="DPCORE_WARM_WORKERS must be a whole number"):
        LocalExecutor(store, 1, gpus=[])


def test_windows_made_ahead_are_the_ones_the_run_would_make() -> None:
    from dpcore.training.loop import load_data

    small = TrainConfig(builtin_users=60, seq_len=16)
    other = small.replace(seed=7, epsilon=1.0, hidden_size=32, mechanism="laplace", accountant="pld",
                          unit="sequence")
    assert warm.data_key(small) == warm.data_key(other)  # what the windows do not depend on
    for changed in (small.replace(seq_len=24), small.replace(builtin_users=61), small.replace(tokenizer="word"),
                    small.replace(val_fraction=0.2), small.replace(max_vocab=500)):
        assert warm.data_key(changed) != warm.data_key(small)
    assert warm.data_key(small.replace(corpus="/some/upload.txt")) is None
    a, b = load_data(small), load_data(other)
    assert a.train.equal(b.train) and a.val.equal(b.val) and a.tokenizer == b.tokenizer
    prepared = warm.Prepared(data={warm.data_key(small): a})
    assert prepared.data_for(small.replace(seq_len=24)) is None
    assert prepared.data_for(other) is a and prepared.data_for(other) is None  # handed over once


def test_a_standby_started_beside_a_starting_run_warms_up_after_its_first_step(store: RunStore) -> None:
    run_id = store.create_run("alice", config().to_dict())
    with store.transaction() as conn:
        store.claim_run(conn, run_id, host="elsewhere", pid=os.getpid(), pid_ident=None)
    pool = warm.Pool(store.data_dir)
    pool.ensure()
    log = pool.file(0, ".log")  # named for the pid below once it is known
    cmd = [sys.executable, "-m", "dpcore.runs.worker", "--data-dir", str(store.data_dir), "--standby",
           "--keeper", f"{os.getpid()}:", "--train-fn", FAKE, "--after-run", run_id]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=Path(__file__).parents[2], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    pool.register(proc.pid, None, {"python": sys.executable})
    try:
        time.sleep(3.0)
        assert "warmed up" not in log.read_text()  # the run has no step yet: it holds
        store.add_metrics(run_id, [{"step": 1, "train_loss": 1.0}])
        until(lambda: "warmed up" in log.read_text(), what="the warm-up after the first step")
    finally:
        store.finish_run(run_id, "cancelled")  # its pid is this test's: no worker to reap
        if pool.send_away(proc.pid):
            os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0


def test_a_run_handed_to_a_standby_still_holding_trains_at_once(store: RunStore) -> None:
    """Handed over before its warm-up (here: held for a starting run), it claims, beats and trains."""
    starting = store.create_run("bob", config().to_dict())
    with store.transaction() as conn:
        store.claim_run(conn, starting, host="elsewhere", pid=os.getpid(), pid_ident=None)
    ex = LocalExecutor(store, 2, gpus=[], train_fn=FAKE, warm_workers=0)
    pool = ex._pool
    pool.ensure()
    cmd = [sys.executable, "-m", "dpcore.runs.worker", "--data-dir", str(store.data_dir), "--standby",
           "--keeper", f"{os.getpid()}:", "--train-fn", FAKE, "--after-run", starting]
    proc = subprocess.Popen(cmd, cwd=Path(__file__).parents[2], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    pool.register(proc.pid, None, ex._profile)
    try:
        until(lambda: pool.file(proc.pid, ".fifo").exists(), what="the standby's pipe")
        t0 = time.monotonic()
        run_id = ex.submit("alice", config(steps=3))
        assert store.get_run(run_id).pid == proc.pid
        run = wait_done(ex, run_id)
        assert run.status == "finished" and time.monotonic() - t0 < warm.HOLD_S
        assert proc.wait(TIMEOUT) == 0 and not pool.file(proc.pid, ".json").exists()
    finally:
        store.finish_run(starting, "cancelled")  # its pid is this test's: no worker to reap
        if proc.poll() is None:
            proc.kill()

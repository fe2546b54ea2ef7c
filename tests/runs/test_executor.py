"""The local executor: real worker processes, driven by a fake trainer (tests/fake_training.py).

Every wait polls with a generous deadline, so a loaded 2-core machine slows these tests down but
does not break them.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dpcore.config import TrainConfig
from dpcore.errors import DPCoreError
from dpcore.runs.executors.local import (
    LocalExecutor,
    detect_gpus,
    process_alive,
    resolve_max_concurrent,
)
from dpcore.runs.lifecycle import DIED_MESSAGE
from dpcore.runs.limits import ServerLimits
from dpcore.runs.store import Run, RunNotFound, RunStore

FAKE = f"{Path(__file__).parents[1] / 'fake_training.py'}:run_training"
TIMEOUT = 90.0


def config(prompt: str = "", steps: int = 5) -> TrainConfig:
    return TrainConfig(mechanism="none", max_steps=steps, batch_size=16, hidden_size=16, embed_dim=8,
                       seq_len=16, eval_every=10**6, num_samples=0, sample_prompt=prompt)


LONG = config("step_s=0.05", steps=10_000)  # runs until killed or cancelled


@pytest.fixture
def make_executor(store: RunStore) -> Callable[..., LocalExecutor]:
    def make(max_concurrent: int = 2, **kw) -> LocalExecutor:
        return LocalExecutor(store, max_concurrent, gpus=[], train_fn=FAKE, **kw)

    return make


def until(check: Callable[[], bool], timeout: float = TIMEOUT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def wait_done(ex: LocalExecutor, run_id: str) -> Run:
    run = ex.wait(run_id, timeout=TIMEOUT, poll_s=0.1)
    assert run.is_terminal, f"run still {run.status}; log:\n{_log(ex, run_id)}"
    return run


def _log(ex: LocalExecutor, run_id: str) -> str:
    path = ex.store.run_dir(run_id) / "worker.log"
    return path.read_text() if path.exists() else "(no log)"


def test_run_finishes_with_everything_recorded(make_executor) -> None:
    ex = make_executor()
    run_id = ex.submit("alice", config(steps=5))
    run = wait_done(ex, run_id)
    assert run.status == "finished", _log(ex, run_id)
    assert run.error is None and run.pid and run.device == "cpu" and run.last_step == 5
    assert run.result.stopped is False and run.info.total_steps == 5 and run.progress == 1.0
    assert [m["step"] for m in ex.store.metrics(run_id)] == [1, 2, 3, 4, 5]
    assert ex.store.evals(run_id)[0]["val_perplexity"] == 4.48
    assert [s["text"] for s in ex.store.samples(run_id)] == ["hello", "world"]
    assert set(ex.store.artifacts(run_id)) == {"checkpoint", "result", "log"}
    assert run.started_at >= run.created_at and run.finished_at >= run.started_at


@pytest.mark.parametrize(
    ("prompt", "message", "steps_kept"),
    [
        ("fail=corpus", "the corpus file is empty: upload a text file", 0),
        ("fail=bug;fail_at=3", "training crashed with ZeroDivisionError", 3),
        ("fail=oom;fail_at=2", "ran out of memory on cpu: lower the batch size", 2),
        ("nan_at=4", "the training loss became nan at step 4", 3),
    ],
)
def test_worker_exception_fails_with_its_message(make_executor, prompt, message, steps_kept) -> None:
    ex = make_executor()
    run_id = ex.submit("alice", config(prompt, steps=20))
    run = wait_done(ex, run_id)
    assert run.status == "failed"
    assert message in run.error
    assert ex.store.metric_count(run_id) == steps_kept  # metrics up to the failure are kept
    if "crashed" in message:
        assert "ZeroDivisionError" in _log(ex, run_id)  # the traceback is in the log


def test_kill_9_marks_failed_and_keeps_metrics(make_executor, store: RunStore) -> None:
    ex = make_executor()
    run_id = ex.submit("alice", LONG)
    until(lambda: store.metric_count(run_id) >= 3, what="3 metric rows")
    pid = store.get_run(run_id).pid
    os.killpg(pid, signal.SIGKILL)
    until(lambda: not process_alive(pid), what="the kill")  # a zombie counts as dead
    # a fresh executor (say, another dashboard process) notices on its first poll
    other = LocalExecutor(store, 2, gpus=[], train_fn=FAKE)
    run = other.status(run_id)
    assert run.status == "failed" and run.error == DIED_MESSAGE
    kept = store.metric_count(run_id)
    assert kept >= 3 and store.metrics(run_id)[-1]["step"] == kept
    assert store.integrity_check() == "ok"


def test_cancel_running_stops_gracefully(make_executor, store: RunStore) -> None:
    ex = make_executor()
    run_id = ex.submit("alice", LONG)
    until(lambda: store.metric_count(run_id) >= 2, what="2 metric rows")
    assert ex.cancel(run_id).cancel_requested_at is not None
    run = wait_done(ex, run_id)
    assert run.status == "cancelled" and run.error is None
    assert run.result.stopped is True and "checkpoint" in store.artifacts(run_id)
    assert store.metric_count(run_id) >= 2
    assert not process_alive(run.pid, run.pid_ident)


def test_cancel_escalates_to_sigkill(make_executor, store: RunStore) -> None:
    ex = make_executor(grace_s=1.0)
    run_id = ex.submit("alice", config("step_s=0.05;ignore_stop=1", steps=10_000))
    until(lambda: store.metric_count(run_id) >= 1, what="a metric row")
    ex.cancel(run_id)
    run = wait_done(ex, run_id)
    assert run.status == "cancelled" and "killed" in run.error
    until(lambda: not process_alive(run.pid, run.pid_ident), what="the worker to die")


def test_cancel_queued_run(make_executor, store: RunStore) -> None:
    ex = make_executor(max_concurrent=1)
    first = ex.submit("alice", LONG)
    second = ex.submit("alice", config())
    assert store.get_run(second).status == "queued" and store.queue_position(second) == 1
    run = ex.cancel(second)
    assert run.status == "cancelled" and run.started_at is None and run.pid is None
    ex.cancel(first)
    assert wait_done(ex, first).status == "cancelled"
    assert store.get_run(second).started_at is None  # never started, even once a slot freed


def test_queue_is_fifo_under_the_cap_and_drains_without_a_poller(make_executor, store) -> None:
    # one owner allowed two runs at once (the default is one: see test_fair_executor.py)
    ex = make_executor(max_concurrent=2, limits=ServerLimits(max_active_per_owner=2))
    ids = [ex.submit("alice", config("step_s=0.05", steps=8)) for _ in range(5)]
    assert [store.get_run(i).status for i in ids] == ["running"] * 2 + ["queued"] * 3
    assert [store.queue_position(i) for i in ids[2:]] == [1, 2, 3]
    # nobody polls from here on: each exiting worker starts the next queued run
    until(lambda: all(store.get_run(i).is_terminal for i in ids), what="the queue to drain")
    runs = [store.get_run(i) for i in ids]
    assert all(r.status == "finished" for r in runs), [(r.status, r.error) for r in runs]
    starts = [r.started_at for r in runs]
    assert starts == sorted(starts)  # first in, first out
    for r in runs:  # never more than two at a time: count who was running as each one started
        assert sum(o.started_at <= r.started_at < o.finished_at for o in runs) <= 2


def test_owners_do_not_see_each_other(make_executor, store: RunStore) -> None:
    ex = make_executor()
    upload = store.save_upload("alice", "corpus.txt", b"some text\n")
    a = ex.submit("alice", config().replace(corpus=upload.path))
    b = ex.submit("bob", config())
    assert [r.id for r in ex.list("alice")] == [a]
    assert [r.id for r in ex.list("bob")] == [b]
    with pytest.raises(RunNotFound):
        ex.status(a, owner="bob")
    with pytest.raises(RunNotFound):
        ex.cancel(a, owner="bob")
    with pytest.raises(DPCoreError, match="built-in corpus or one of your uploaded files"):
        ex.submit("bob", config().replace(corpus=upload.path))  # alice's upload
    with pytest.raises(DPCoreError, match="built-in corpus or one of your uploaded files"):
        ex.submit("bob", config().replace(corpus="/etc/passwd"))
    assert ex.submit("bob", config().replace(corpus="/etc/passwd"), allow_local_paths=True)
    assert store.list_uploads("bob") == []
    for run_id in (a, b):
        wait_done(ex, run_id)


def test_reused_pid_counts_as_dead(store: RunStore, make_executor) -> None:
    """A running row whose pid now names another process (here: this test) is failed."""
    ex = make_executor()
    run_id = store.create_run("alice", config())
    with store.transaction() as conn:
        store.claim_run(conn, run_id, host=ex.host, pid=os.getpid(), pid_ident="other-boot:1")
    assert process_alive(os.getpid()) and not process_alive(os.getpid(), "other-boot:1")
    assert ex.status(run_id).error == DIED_MESSAGE


def test_one_run_per_gpu(store: RunStore) -> None:
    """Each run sees only its own GPU; a third run waits for a free one (no GPU is needed here)."""
    ex = LocalExecutor(store, None, gpus=["0", "1"], train_fn=FAKE, limits=ServerLimits(max_active_per_owner=2))
    assert ex.max_concurrent == 2
    ids = [ex.submit("alice", config("step_s=0.05", steps=6)) for _ in range(3)]
    assert sorted(store.get_run(i).gpu for i in ids[:2]) == ["0", "1"]
    assert store.get_run(ids[2]).status == "queued"
    runs = [wait_done(ex, i) for i in ids]
    assert all(r.result.extra["cuda_visible_devices"] == r.gpu for r in runs)
    assert runs[2].gpu in ("0", "1")


def test_detect_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,GPU-abc,-1,3")
    assert detect_gpus() == ["2", "GPU-abc"]  # CUDA ignores everything after an invalid id
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert detect_gpus() == []


def test_concurrency_cap_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DPCORE_MAX_CONCURRENT", raising=False)
    assert resolve_max_concurrent(3, []) == 3
    assert resolve_max_concurrent(None, ["0", "1"]) == 2  # one run per GPU
    assert resolve_max_concurrent(8, ["0"]) == 1
    assert resolve_max_concurrent(None, []) >= 1
    monkeypatch.setenv("DPCORE_MAX_CONCURRENT", "4")
    assert resolve_max_concurrent(None, []) == 4
    with pytest.raises(DPCoreError, match="whole number"):
        resolve_max_concurrent(0, [])


def test_real_trainer_bad_upload_fails_with_corpus_message(store: RunStore) -> None:
    """The real run_training path: an upload too small to train on ends as failed, with why."""
    upload = store.save_upload("alice", "tiny.txt", b"just one short line\n")
    ex = LocalExecutor(store, 1, gpus=[])
    run_id = ex.submit("alice", config().replace(corpus=upload.path))
    run = wait_done(ex, run_id)
    assert run.status == "failed" and run.error, _log(ex, run_id)
    assert "Traceback" not in run.error and "\n" not in run.error
    assert store.metric_count(run_id) == 0
    print(run.error)

"""The Ray executor on a real local Ray (2 CPUs, one per test session: tests/ray_support.py).

A cancelled run, a worker killed with SIGKILL, and a finished run that trains exactly as it does
through the local executor; files that come back without a shared disk; and the choices that need no
cluster (which executor, a missing Ray, an unreachable address). Waits have generous deadlines: the
machine has two shared cores and Ray's own processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dpcore.config import TrainConfig
from dpcore.errors import DPCoreError
from dpcore.runs.executors.local import LocalExecutor
from dpcore.runs.executors.registry import executor_kind, make_executor
from dpcore.runs.lifecycle import DIED_MESSAGE
from dpcore.runs.limits import ServerLimits
from dpcore.runs.store import QuotaExceeded, Run, RunStore
from tests.ray_support import FAKE, ray_cluster  # noqa: F401 - the session's Ray

TIMEOUT = 120.0
SWEEP_TRAINER = f"{Path(__file__).parents[1] / 'sweep_training.py'}:run_training"
LONG = TrainConfig(mechanism="none", max_steps=10_000, batch_size=16, hidden_size=16, embed_dim=8, seq_len=16,
                   eval_every=10**6, num_samples=0, sample_prompt="step_s=0.05")  # runs until stopped


def until(check: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _log(store: RunStore, run_id: str) -> str:
    path = store.run_dir(run_id) / "worker.log"
    return path.read_text() if path.exists() else "(no log)"


def done(ex, run_id: str) -> Run:
    run = ex.wait(run_id, timeout=TIMEOUT, poll_s=0.2)
    assert run.is_terminal, f"run still {run.status}; log:\n{_log(ex.store, run_id)}"
    return run


@pytest.fixture
def ray_executor(ray_cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    from dpcore.runs.executors.ray import RayExecutor

    monkeypatch.setenv("DPCORE_HEARTBEAT_S", "0.5")
    made = []

    def make(store: RunStore | None = None, **kw) -> RayExecutor:
        ex = RayExecutor(store or RunStore(tmp_path / "data"), **{"grace_s": 5, "train_fn": FAKE, **kw})
        made.append(ex)
        return ex

    yield make
    for ex in made:  # never leave a run training into the next test
        for run in ex.store.list_runs(status=("queued", "running")):
            ex.cancel(run.id)
            ex._kill(run.id)


# ------------------------------------------------------------------------------ runs on Ray
@pytest.mark.ray
def test_a_cancelled_run_stops_on_its_node_and_keeps_its_metrics(ray_executor) -> None:
    limits = ServerLimits(max_active_per_owner=1, max_queued_per_owner=0)
    ex = ray_executor(limits=limits)
    run_id = ex.submit("alice", LONG)
    with pytest.raises(QuotaExceeded, match="you already have 1 runs queued or running"):
        ex.submit("alice", LONG)  # the owner's quota holds at submit, as locally
    until(lambda: ex.store.metric_count(run_id) >= 3, "metrics from the Ray worker")
    running = ex.status(run_id)
    assert running.status == "running" and running.host.startswith("ray:") and running.pid
    ex.cancel(run_id, "alice")
    run = done(ex, run_id)
    assert run.status == "cancelled" and run.error is None, _log(ex.store, run_id)
    assert run.result.stopped is True
    assert ex.store.metric_count(run_id) >= 3
    until(lambda: run_id not in ex._live_runs(), "the run's actor to end")


@pytest.mark.ray
def test_a_worker_killed_with_sigkill_fails_and_keeps_its_metrics(ray_executor) -> None:
    ex = ray_executor()
    run_id = ex.submit("alice", LONG)
    until(lambda: ex.store.metric_count(run_id) >= 3, "metrics from the Ray worker")
    run = ex.status(run_id)
    os.kill(run.pid, signal.SIGKILL)  # the actor's own process, as the OOM killer would
    written = ex.store.metric_count(run_id)
    run = done(ex, run_id)
    assert run.status == "failed" and run.error == DIED_MESSAGE
    assert ex.store.metric_count(run_id) >= written >= 3
    assert [m["step"] for m in ex.store.metrics(run_id)][:3] == [1, 2, 3]


@pytest.mark.ray
def test_a_run_that_ignores_the_cancel_is_killed_after_the_grace_period(ray_executor) -> None:
    ex = ray_executor(grace_s=1)
    run_id = ex.submit("alice", LONG.replace(sample_prompt="step_s=0.05;ignore_stop=1"))
    until(lambda: ex.store.metric_count(run_id) >= 2, "metrics from the Ray worker")
    ex.cancel(run_id)
    run = done(ex, run_id)
    assert run.status == "cancelled" and run.error == "did not stop within 1 s of the cancel request, so it was killed"
    until(lambda: run_id not in ex._live_runs(), "the killed actor to go")


@pytest.mark.ray
def test_a_silent_worker_is_killed_and_fails_and_a_silent_cluster_settles_nothing(ray_executor, monkeypatch) -> None:
    ex = ray_executor(stale_after_s=2)
    run_id = ex.submit("alice", LONG)
    until(lambda: ex.store.metric_count(run_id) >= 2, "metrics from the Ray worker")
    pid = ex.status(run_id).pid
    os.kill(pid, signal.SIGSTOP)  # alive but silent: hung, or stopped
    try:
        with monkeypatch.context() as m:  # while Ray does not answer, nothing is judged and pages still work
            m.setattr(ex, "_live_runs", lambda: (_ for _ in ()).throw(ConnectionError("GCS unreachable")))
            time.sleep(2.5)
            assert ex.status(run_id).status == "running"
        run = done(ex, run_id)
        assert run.status == "failed" and "no heartbeat for over 2 s" in run.error
        assert ex.store.metric_count(run_id) >= 2
        until(lambda: run_id not in ex._live_runs(), "the stuck actor to be killed")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.ray
def test_a_finished_run_matches_the_local_executor_step_for_step(ray_executor, tmp_path: Path) -> None:
    """The real trainer, not private: the same config trains the same model on Ray as in a local process."""
    config = TrainConfig(mechanism="none", builtin_users=400, seq_len=16, embed_dim=8, hidden_size=16, batch_size=32,
                         max_steps=8, eval_every=4, num_samples=1, sample_tokens=10, lr=0.01, device="cpu", seed=3)
    local = LocalExecutor(RunStore(tmp_path / "local"), 1, gpus=[], grace_s=5)
    on_ray = ray_executor(RunStore(tmp_path / "ray"), train_fn=None)
    ids = {"local": local.submit("alice", config), "ray": on_ray.submit("alice", config)}
    runs = {"local": done(local, ids["local"]), "ray": done(on_ray, ids["ray"])}
    for name, ex in (("local", local), ("ray", on_ray)):
        assert runs[name].status == "finished", _log(ex.store, ids[name])
    steps = {name: ex.store.metrics(ids[name]) for name, ex in (("local", local), ("ray", on_ray))}
    assert [m["step"] for m in steps["ray"]] == list(range(1, 9))
    for a, b in zip(steps["local"], steps["ray"], strict=True):
        assert (a["step"], a["batch_size"]) == (b["step"], b["batch_size"])
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-6, abs=1e-7)
    evals = {name: ex.store.evals(ids[name]) for name, ex in (("local", local), ("ray", on_ray))}
    assert [e["step"] for e in evals["ray"]] == [e["step"] for e in evals["local"]] == [4, 8]
    assert [e["val_loss"] for e in evals["ray"]] == pytest.approx([e["val_loss"] for e in evals["local"]], rel=1e-6)
    timing = {"wall_time_s", "step_time_median_s"}  # the clock, not the model
    result_local = {k: v for k, v in runs["local"].result.to_dict().items() if k not in timing}
    result_ray = {k: v for k, v in runs["ray"].result.to_dict().items() if k not in timing}
    assert result_ray.keys() == result_local.keys()
    for key, value in result_local.items():
        if isinstance(value, float):
            assert result_ray[key] == pytest.approx(value, rel=1e-6), key
        else:
            assert result_ray[key] == value, key
    files = on_ray.store.artifacts(ids["ray"])
    assert {"checkpoint", "result", "metrics_csv", "log"} <= set(files)
    assert all(Path(p).parent == on_ray.store.run_dir(ids["ray"]) and Path(p).exists() for p in files.values())
    assert "training run" in _log(on_ray.store, ids["ray"])


@pytest.mark.ray
@pytest.mark.parametrize("location", [None, "folder"], ids=["through-ray", "artifacts-location"])
def test_files_reach_the_app_without_a_shared_disk(ray_executor, tmp_path: Path, monkeypatch, location) -> None:
    """A worker treated as remote trains in its own folder; its files end up in the app's run folder."""
    remote = tmp_path / "artifacts"
    if location:
        monkeypatch.setenv("DPCORE_ARTIFACTS", str(remote))
    ex = ray_executor()
    ex.files_in_place = False
    run_id = ex.submit("alice", LONG.replace(max_steps=5, sample_prompt="step_s=0.01"))
    run = done(ex, run_id)
    assert run.status == "finished", _log(ex.store, run_id)
    files = ex.store.artifacts(run_id)
    assert set(files) == {"checkpoint", "result", "log"}
    for path in files.values():
        assert Path(path).parent == ex.store.run_dir(run_id) and oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert Path(files["checkpoint"]).read_bytes() == b"fake checkpoint"
    assert [m["step"] for m in ex.store.metrics(run_id)] == [1, 2, 3, 4, 5]
    if location:  # fetched by the app's side, then the transit copies are gone
        assert not any(p.is_file() for p in remote.rglob("*"))


@pytest.mark.ray
def test_a_remote_worker_trains_on_a_private_copy_of_the_owners_upload(ray_executor) -> None:
    """An upload lives in the app's data folder: a worker elsewhere gets the run's own file through Ray."""
    ex = ray_executor(train_fn=SWEEP_TRAINER)
    ex.files_in_place = False
    text = b"hello there\ngood morning\n" * 50
    upload = ex.store.save_upload("alice", "diary.txt", text)
    run_id = ex.submit("alice", LONG.replace(corpus=upload.path, mechanism="none"))
    run = done(ex, run_id)
    assert run.status == "finished", _log(ex.store, run_id)
    used = run.result.extra["corpus"]
    assert used != upload.path and Path(used).name == "diary.txt" and run.result.extra["corpus_bytes"] == len(text)
    assert not Path(used).exists()  # the worker's copy went with its folder
    assert run.config["corpus"] == upload.path  # the stored run still names the upload


# ------------------------------------------------------------------------------ no cluster needed
def test_the_executor_is_chosen_by_env_and_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DPCORE_EXECUTOR", raising=False)
    assert executor_kind() == "local"
    monkeypatch.setenv("DPCORE_EXECUTOR", "Ray")
    assert executor_kind() == "ray" and executor_kind("local") == "local"
    monkeypatch.setenv("DPCORE_EXECUTOR", "slurm")
    with pytest.raises(DPCoreError, match="DPCORE_EXECUTOR must be one of local, ray, got 'slurm'"):
        executor_kind()
    ex = make_executor(RunStore(tmp_path / "data"), "local", max_concurrent=3)
    assert isinstance(ex, LocalExecutor) and ex.max_concurrent == 3
    assert "local processes on this server" in ex.describe()


def test_without_ray_installed_the_message_says_how_to_install_it(tmp_path: Path, monkeypatch) -> None:
    from dpcore.runs.executors import ray as ray_executor

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(DPCoreError, match="requirements-ray.txt"):
        ray_executor.connect()


def test_an_unreachable_ray_address_is_one_sentence_at_once() -> None:
    from dpcore.runs.executors.ray import _check_reachable

    start = time.monotonic()
    with pytest.raises(DPCoreError, match=r"cannot reach the Ray cluster at RAY_ADDRESS=127\.0\.0\.1:1 .*ray start"):
        _check_reachable("127.0.0.1:1")
    assert time.monotonic() - start < 10

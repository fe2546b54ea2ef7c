"""The run store: persistence, consistency under concurrency, schema versioning, private uploads."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from dpcore.config import TrainConfig
from dpcore.errors import DPCoreError
from dpcore.paths import ENV_DATA_DIR, resolve_data_dir
from dpcore.runs import store as store_mod
from dpcore.runs.store import RunNotFound, RunStore, UploadNotFound

ROOT = Path(__file__).resolve().parents[2]
CONFIG = TrainConfig(mechanism="none", max_steps=5, batch_size=16, hidden_size=16, embed_dim=8,
                     seq_len=16, eval_every=10**6, num_samples=0)


def _step(step: int, loss: float | None = 1.0) -> dict:
    return {"step": step, "train_loss": loss, "epsilon": 0.5, "batch_size": 16, "frac_clipped": 0.25,
            "median_grad_norm": 0.9, "step_time_s": 0.01, "elapsed_s": step * 0.01}


def _python(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "data")


def test_data_dir_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"  # the flag beats the variable
    monkeypatch.delenv(ENV_DATA_DIR)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir() == tmp_path / "xdg" / "dp-rnn-lab"


def test_create_get_list_and_wal(store: RunStore) -> None:
    a = store.create_run("alice", CONFIG)
    b = store.create_run("bob", CONFIG.to_dict())
    run = store.get_run(a)
    assert (run.owner, run.status, run.pid, run.last_step) == ("alice", "queued", None, None)
    assert TrainConfig.from_dict(run.config) == CONFIG and run.train_config() == CONFIG
    assert [r.id for r in store.list_runs()] == [b, a]  # newest first
    assert [r.id for r in store.list_runs(oldest_first=True)] == [a, b]
    assert [r.id for r in store.list_runs("alice")] == [a]
    assert store.queue_position(a) == 1 and store.queue_position(b) == 2
    with pytest.raises(RunNotFound, match="no run with id 'nope'"):
        store.get_run("nope")
    with pytest.raises(RunNotFound):  # another owner's run looks exactly like an unknown one
        store.get_run(a, owner="bob")
    with sqlite3.connect(store.db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.schema_version() == store_mod.SCHEMA_VERSION


def test_metrics_incremental_and_consistent(store: RunStore) -> None:
    run_id = store.create_run("alice", CONFIG)
    assert store.add_metrics(run_id, [_step(1), _step(2, None), _step(3, float("nan"))]) == 3
    store.add_eval(run_id, {"step": 3, "val_loss": 1.2, "val_perplexity": 3.3})
    store.add_samples(run_id, 3, "train", "The", ["The cat", "The dog"])
    assert [m["step"] for m in store.metrics(run_id)] == [1, 2, 3]
    assert [m["step"] for m in store.metrics(run_id, since_step=2)] == [3]
    assert store.metrics(run_id)[1]["train_loss"] is None  # empty Poisson batch
    assert store.latest_metrics(run_id)["step"] == 3
    assert store.evals(run_id)[0]["val_perplexity"] == 3.3
    assert [s["text"] for s in store.samples(run_id)] == ["The cat", "The dog"]
    snap = store.snapshot(run_id, since_step=1)
    assert snap.run.last_step == 3 and snap.metric_count == 3 and len(snap.metrics) == 2


def test_final_status_is_never_overwritten(store: RunStore) -> None:
    run_id = store.create_run("alice", CONFIG)
    assert not store.finish_run(run_id, "finished")  # not running: refused
    cancelled = store.request_cancel(run_id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert not store.finish_run(run_id, "failed", error="late", only_if_running=False)
    assert store.get_run(run_id).status == "cancelled"


def test_newer_schema_is_refused(store: RunStore) -> None:
    with sqlite3.connect(store.db_path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(DPCoreError, match="newer dp-rnn-lab"):
        RunStore(store.data_dir)


def test_reopen_in_new_process(store: RunStore) -> None:
    """Runs written by one process are all there for the next one, and the other way round."""
    proc = _python(f"""
        from dpcore.runs.store import RunStore
        s = RunStore({str(store.data_dir)!r})
        r = s.create_run("cli:someone", {{"max_steps": 7}})
        s.add_metrics(r, [{{"step": i, "train_loss": 1.0 / i}} for i in range(1, 8)])
        print(r)
    """)
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.split()[-1]
    assert store.get_run(run_id).last_step == 7
    assert [m["step"] for m in store.metrics(run_id)] == list(range(1, 8))

    mine = store.create_run("alice", CONFIG)
    store.add_metrics(mine, [_step(1), _step(2)])
    proc = _python(f"""
        import json
        from dpcore.runs.store import RunStore
        s = RunStore({str(store.data_dir)!r})
        print(json.dumps([s.get_run({mine!r}).owner, len(s.metrics({mine!r})), s.integrity_check()]))
    """)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == ["alice", 2, "ok"]


def test_concurrent_writer_and_readers(store: RunStore) -> None:
    """A writer process appends steps while reader threads poll: nobody blocks, every view agrees."""
    run_id = store.create_run("alice", CONFIG)
    n = 300
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time
            from dpcore.runs.store import RunStore
            s = RunStore({str(store.data_dir)!r})
            t = time.perf_counter()
            for i in range({n}):
                s.add_metrics({run_id!r}, [{{"step": i, "train_loss": 1.0}}])
            print({n} / (time.perf_counter() - t))
        """)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    problems: list[str] = []
    seen: list[int] = []

    def read() -> None:
        reader = RunStore(store.data_dir)
        while writer.poll() is None:
            snap = reader.snapshot(run_id)
            steps = [m["step"] for m in snap.metrics]
            if steps != list(range(len(steps))) or snap.metric_count != len(steps):
                problems.append(f"torn metrics: {steps[:5]}... count {snap.metric_count}")
            if (snap.run.last_step if steps else None) != (steps[-1] if steps else None):
                problems.append(f"run row says {snap.run.last_step}, metrics end at {steps[-1:]}")
            seen.append(len(steps))

    threads = [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    out, err = writer.communicate(timeout=120)
    for t in threads:
        t.join(timeout=60)
    assert writer.returncode == 0, err  # never "database is locked"
    assert not problems, problems[:3]
    assert len(seen) > 3 and max(seen) > min(seen)  # the readers really ran alongside the writer
    assert store.metric_count(run_id) == n
    assert store.integrity_check() == "ok"
    print(f"single-row write transactions: {float(out):.0f}/s with 3 polling readers")


def test_uploads_are_private(store: RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    a = store.save_upload("alice", "../../secret corpus.txt", b"hello world\n")
    b = store.save_upload("bob", "notes.csv", b"text\nhi\n")
    path = Path(a.path)
    assert path.read_bytes() == b"hello world\n" and path.name == "secret_corpus.txt"
    assert store.uploads_dir in path.parents  # the name cannot escape the uploads folder
    assert "alice" not in str(path)  # owner keys do not leak into paths
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [u.id for u in store.list_uploads("alice")] == [a.id]
    assert [u.id for u in store.list_uploads("bob")] == [b.id]
    assert store.get_upload("alice", a.id) == a
    with pytest.raises(UploadNotFound):
        store.get_upload("bob", a.id)
    assert store.find_upload_by_path("alice", a.path) == a
    assert store.find_upload_by_path("bob", a.path) is None
    with pytest.raises(DPCoreError, match="empty"):
        store.save_upload("alice", "empty.txt", b"")
    monkeypatch.setattr("dpcore.data.upload.MAX_UPLOAD_BYTES", 10)
    with pytest.raises(DPCoreError, match="limit"):
        store.save_upload("alice", "big.txt", b"x" * 11)
    store.delete_upload("alice", a.id)
    assert store.list_uploads("alice") == [] and not path.exists()


# ------------------------------------------------------------------ inference ledger (schema v2)
def test_ledger_charges_records_and_refuses_past_the_budget(store: RunStore) -> None:
    run_id = store.create_run("alice", CONFIG)
    empty = store.ledger(run_id)
    assert (empty.budget, empty.budget_is_default, empty.entries, empty.spent) == (
        store_mod.DEFAULT_INFERENCE_BUDGET, True, (), 0.0)
    store.set_inference_budget(run_id, "alice", 20.0)
    state = store.charge_inference(run_id, "browser:bob", "exponential", 0.5, 20)
    assert state.charged is not None and state.charged.epsilon == 10.0 and state.spent == 10.0
    store.settle_inference(state.charged.id, 12)  # the text stopped after 12 tokens
    store.settle_inference(state.charged.id, 15)  # a settlement never raises a charge
    state = store.charge_inference(run_id, "browser:carol", "mix", 1.0, 14)
    ledger = store.ledger(run_id)
    assert [(e.viewer, e.decoder, e.tokens, e.epsilon) for e in ledger.entries] == [
        ("browser:bob", "exponential", 12, 6.0), ("browser:carol", "mix", 14, 14.0)]
    assert ledger.spent == 20.0 and ledger.remaining == 0.0 and ledger.tokens == 26
    with pytest.raises(store_mod.InferenceBudgetExceeded, match="budget of ε = 20 has 0 left"):
        store.charge_inference(run_id, "browser:bob", "exponential", 0.5, 1)
    assert store.ledger(run_id).entries == ledger.entries  # the refused charge was not recorded
    assert isinstance(store_mod.InferenceBudgetExceeded("x"), DPCoreError)
    with pytest.raises(RunNotFound):
        store.charge_inference("nope", "browser:bob", "mix", 1.0, 1)
    with pytest.raises(DPCoreError):
        store.charge_inference(run_id, "browser:bob", "mix", 0.0, 1)


def test_ledger_charge_is_atomic_under_concurrency(store: RunStore) -> None:
    """Many viewers charging at once never take the ledger past its budget."""
    run_id = store.create_run("alice", CONFIG)
    store.set_inference_budget(run_id, "alice", 10.0)
    accepted: list[int] = []
    refused: list[int] = []
    barrier = threading.Barrier(8)

    def viewer(i: int) -> None:
        own = RunStore(store.data_dir)  # its own connections, as another process would have
        barrier.wait()
        for _ in range(10):
            try:
                own.charge_inference(run_id, f"browser:{i}", "exponential", 0.3, 1)  # 0.3 each
                accepted.append(i)
            except store_mod.InferenceBudgetExceeded:
                refused.append(i)

    threads = [threading.Thread(target=viewer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    ledger = store.ledger(run_id)
    assert len(accepted) == len(ledger.entries) == 33  # ⌊10 / 0.3⌋: exactly up to the budget, no further
    assert len(refused) == 80 - 33
    assert ledger.spent <= 10.0


def test_budget_and_share_uncovered_are_the_owners_alone(store: RunStore) -> None:
    run_id = store.create_run("alice", CONFIG)
    run = store.get_run(run_id)
    assert (run.inference_budget, run.share_uncovered, run.effective_inference_budget) == (
        None, False, store_mod.DEFAULT_INFERENCE_BUDGET)
    with pytest.raises(RunNotFound):
        store.set_inference_budget(run_id, "bob", 100.0)
    with pytest.raises(RunNotFound):
        store.set_share_uncovered(run_id, "bob", True)
    with pytest.raises(RunNotFound):
        store.set_inference_budget("nope", "alice", 1.0)
    with pytest.raises(DPCoreError):
        store.set_inference_budget(run_id, "alice", float("inf"))
    assert store.get_run(run_id).inference_budget is None and not store.get_run(run_id).share_uncovered
    assert store.set_inference_budget(run_id, "alice", 3.0).inference_budget == 3.0
    assert store.set_share_uncovered(run_id, "alice", True).share_uncovered is True
    ledger = store.ledger(run_id)
    assert (ledger.budget, ledger.budget_is_default) == (3.0, False)
    assert store.set_inference_budget(run_id, "alice", None).effective_inference_budget == \
        store_mod.DEFAULT_INFERENCE_BUDGET
    assert store.set_share_uncovered(run_id, "alice", False).share_uncovered is False


def test_v1_file_migrates_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old" / "runs.sqlite3"
    path.parent.mkdir()
    with sqlite3.connect(path) as conn:  # a file as the v1 release wrote it
        conn.execute("PRAGMA journal_mode=WAL")
        for statement in store_mod._MIGRATIONS[1]:
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
        conn.execute("INSERT INTO runs (id, owner, config, status, created_at) VALUES "
                     "('old1', 'alice', '{}', 'finished', 1.0)")
        conn.execute("INSERT INTO metrics (run_id, step, train_loss, ts) VALUES ('old1', 1, 2.0, 1.0)")
    store = RunStore(path)
    assert store.schema_version() == 5 == store_mod.SCHEMA_VERSION
    run = store.get_run("old1")
    assert (run.owner, run.inference_budget, run.share_uncovered) == ("alice", None, False)
    assert store.metrics("old1")[0]["train_loss"] == 2.0
    store.charge_inference("old1", "browser:bob", "mix", 1.0, 3)
    assert store.ledger("old1").spent == 3.0
    assert RunStore(path).schema_version() == 5  # reopening does not migrate twice
    with sqlite3.connect(path) as conn:  # the ledger goes with its run
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("DELETE FROM runs WHERE id = 'old1'")
        assert conn.execute("SELECT COUNT(*) FROM inference_ledger").fetchone()[0] == 0
    assert store.integrity_check() == "ok"

"""The store under a crowd: runs per owner, fair queue positions, deletion, quotas, retention,
a full disk, and private file modes."""

from __future__ import annotations

import errno
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from dpcore.config import TrainConfig
from dpcore.errors import DPCoreError
from dpcore.runs import store as store_mod
from dpcore.runs.limits import ServerLimits
from dpcore.runs.store import DiskFull, QuotaExceeded, RunNotFound, RunStore, UploadNotFound

CONFIG = TrainConfig(mechanism="none", max_steps=5, batch_size=16, hidden_size=16, embed_dim=8,
                     seq_len=16, eval_every=10**6, num_samples=0)
TEXT = b"hello world, this is a corpus\n" * 10


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "data", limits=ServerLimits(disk_quota_mb=1))


def _mode(path: Path | str) -> int:
    return stat.S_IMODE(Path(path).stat().st_mode)


def _start(store: RunStore, run_id: str) -> None:
    with store.transaction() as conn:
        assert store.claim_run(conn, run_id, host="h", pid=1, pid_ident="x")


def _end(store: RunStore, run_id: str, finished_at: float | None = None) -> None:
    store.finish_run(run_id, "finished")
    if finished_at is not None:
        with store.transaction() as conn:
            conn.execute("UPDATE runs SET finished_at = ? WHERE id = ?", (finished_at, run_id))


def test_runs_per_owner_are_capped_in_the_insert_transaction(store: RunStore) -> None:
    ids = [store.create_run("alice", CONFIG, max_runs=3) for _ in range(3)]
    with pytest.raises(QuotaExceeded, match=r"^you already have 3 runs queued or running, the most this "
                                            r"server allows one person \(3\): wait for one to finish"):
        store.create_run("alice", CONFIG, max_runs=3)
    assert store.create_run("bob", CONFIG, max_runs=3)  # others are not affected
    _start(store, ids[0])
    _end(store, ids[0])  # an ended run frees a place
    assert store.create_run("alice", CONFIG, max_runs=3)


def test_queue_position_is_the_fair_order(store: RunStore) -> None:
    """Before: FIFO, so the 31st run (bob's first, after alice's 30) was 30th in the queue."""
    alice = [store.create_run("alice", CONFIG) for _ in range(30)]
    _start(store, alice[0])
    bob = store.create_run("bob", CONFIG)
    assert store.queue_position(bob) == 1
    assert [store.queue_position(r) for r in alice[1:4]] == [2, 3, 4]
    assert store.queue_position(alice[0]) is None  # running
    assert [r.id for r in store.fair_queue()][:2] == [bob, alice[1]]


def test_delete_run_refuses_running_and_cascades(store: RunStore) -> None:
    run_id = store.create_run("alice", CONFIG)
    _start(store, run_id)
    store.add_metrics(run_id, [{"step": 1, "train_loss": 1.0}])
    store.add_eval(run_id, {"step": 1, "val_loss": 1.0, "val_perplexity": 2.7})
    store.add_samples(run_id, 1, "final", "", ["hi"])
    store.charge_inference(run_id, "bob", "mix", 1.0, 2)
    folder = store.run_dir(run_id)
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(b"weights")
    store.add_artifact(run_id, "checkpoint", folder / "model.pt")
    with pytest.raises(DPCoreError, match="is still running: cancel it and let it stop, then delete it"):
        store.delete_run(run_id, "alice")
    _end(store, run_id)
    with pytest.raises(RunNotFound):
        store.delete_run(run_id, "bob")  # not bob's
    store.delete_run(run_id, "alice")
    assert not folder.exists()
    with pytest.raises(RunNotFound):
        store.get_run(run_id)
    with store.transaction(write=False) as conn:
        for table in ("metrics", "evals", "samples", "artifacts", "inference_ledger"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0, table


def test_delete_upload_with_and_without_its_runs(store: RunStore) -> None:
    upload = store.save_upload("alice", "notes.txt", TEXT)
    other = store.save_upload("alice", "other.txt", TEXT)
    on_it = [store.create_run("alice", CONFIG.replace(corpus=upload.path)) for _ in range(2)]
    elsewhere = store.create_run("alice", CONFIG)
    assert {r.id for r in store.runs_using_upload("alice", upload.id)} == set(on_it)
    with pytest.raises(UploadNotFound):
        store.runs_using_upload("bob", upload.id)
    with pytest.raises(DPCoreError, match=r"is queued on 'notes.txt': cancel it first"):
        store.delete_upload("alice", upload.id)
    _start(store, on_it[0])
    with pytest.raises(DPCoreError, match=r"is running on 'notes.txt': cancel it first"):
        store.delete_upload("alice", upload.id, delete_runs=True)
    _end(store, on_it[0])
    assert sorted(store.delete_upload("alice", upload.id, delete_runs=True)) == sorted(on_it)
    assert not Path(upload.path).exists() and not Path(upload.path).parent.exists()
    assert [u.id for u in store.list_uploads("alice")] == [other.id]
    assert [r.id for r in store.list_runs("alice")] == [elsewhere]
    assert store.delete_upload("alice", other.id) == []


def test_disk_quota_counts_uploads_and_run_folders(store: RunStore) -> None:
    store.save_upload("alice", "a.txt", b"x" * 600_000)
    with pytest.raises(QuotaExceeded, match=r"^you are using 0\.6 MB of the 1\.0 MB of disk this server allows "
                                            r"one person \(uploads and runs\) and the upload 'b.txt' needs "
                                            r"0\.5 MB more: delete old runs or uploads first"):
        store.save_upload("alice", "b.txt", b"x" * 500_000)
    assert store.save_upload("bob", "b.txt", b"x" * 500_000)  # per owner
    run_id = store.create_run("alice", CONFIG)
    store.run_dir(run_id).mkdir(parents=True)
    (store.run_dir(run_id) / "model.pt").write_bytes(b"x" * 500_000)
    assert store.disk_usage("alice") == 1_100_000
    with pytest.raises(QuotaExceeded, match="so a new run cannot be stored"):
        store.check_disk_quota("alice")
    assert not list(store.uploads_dir.rglob("*.part"))


def test_purge_expired_deletes_a_few_old_terminal_runs(store: RunStore) -> None:
    now = time.time()
    old = [store.create_run("alice", CONFIG) for _ in range(4)]
    for run_id in old:
        _start(store, run_id)
        _end(store, run_id, finished_at=now - 8 * 86400)
    recent = store.create_run("alice", CONFIG)
    _start(store, recent)
    _end(store, recent, finished_at=now - 6 * 86400)
    queued = store.create_run("alice", CONFIG)
    assert store.purge_expired(0) == []  # 0 keeps everything
    assert len(store.purge_expired(7, limit=3)) == 3
    assert len(store.purge_expired(7, limit=3)) == 1
    assert {r.id for r in store.list_runs()} == {recent, queued}


def test_full_disk_during_upload_leaves_no_part_file(store: RunStore, monkeypatch) -> None:
    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_mod.os, "fsync", no_space)
    with pytest.raises(DiskFull, match=r"^the server's disk is full: the upload 'notes.txt' could not be stored; "
                                       r"delete old runs or uploads"):
        store.save_upload("alice", "notes.txt", TEXT)
    assert list(store.uploads_dir.rglob("*")) == [store.uploads_dir / store_mod._owner_folder("alice")]
    assert store.list_uploads("alice") == []


class _FullDisk:
    """A connection whose writes fail as SQLite's do on a full disk; reads pass through."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __getattr__(self, name: str):
        return getattr(self._conn, name)

    def execute(self, sql: str, *args):
        if sql.lstrip().split()[0].upper() in ("INSERT", "UPDATE", "DELETE", "COMMIT"):
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)

    def executemany(self, sql: str, *args):
        raise sqlite3.OperationalError("database or disk is full")


def test_full_disk_in_the_store_is_one_sentence(store: RunStore, monkeypatch) -> None:
    run_id = store.create_run("alice", CONFIG)
    store.close()
    real_open = RunStore._open
    monkeypatch.setattr(RunStore, "_open", lambda self: _FullDisk(real_open(self)))
    calls = [
        lambda: store.create_run("alice", CONFIG),
        lambda: store.add_metrics(run_id, [{"step": 1}]),
        lambda: store.add_eval(run_id, {"step": 1}),
        lambda: store.request_cancel(run_id),
        lambda: store.heartbeat(run_id),
        lambda: store.save_upload("alice", "notes.txt", TEXT),
        lambda: store.delete_run(run_id, "alice"),
    ]
    for call in calls:
        with pytest.raises(DiskFull, match=r"^the server's disk is full: the run store .* cannot be written; "):
            call()
    assert store.get_run(run_id).status == "queued"  # reads still work
    assert not [p for p in store.uploads_dir.rglob("*") if p.is_file()]  # no upload left behind


def test_private_file_modes(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "data")
    store.create_run("alice", CONFIG)
    upload = store.save_upload("alice", "notes.txt", TEXT)
    assert _mode(store.data_dir) == 0o700
    for suffix in ("", "-wal", "-shm"):
        assert _mode(f"{store.db_path}{suffix}") == 0o600, suffix
    assert _mode(upload.path) == 0o600
    for folder in (store.uploads_dir, Path(upload.path).parent.parent, Path(upload.path).parent):
        assert _mode(folder) == 0o700, folder
    store.close()
    store.db_path.chmod(0o644)  # a file from an older release is tightened when opened
    assert _mode(RunStore(store.data_dir).db_path) == 0o600

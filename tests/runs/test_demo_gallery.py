"""The demo gallery: trained once under the pinned owner, skipped when present, one preparation at a time,
never purged by retention. The trainer is tests/fake_training.py (no real training)."""

from __future__ import annotations

import time

from dpcore.runs import gallery as demo
from dpcore.runs.store import RunStore
from tests.conftest import ROOT

FAKE = f"{ROOT / 'tests' / 'fake_training.py'}:run_training"


def test_prepare_trains_the_gallery_once_and_keeps_it(tmp_path):
    store = RunStore(tmp_path / "data")
    first = demo.prepare(store, steps=3, train_fn=FAKE)
    specs = demo.gallery_specs(steps=3)
    assert not first.busy and first.failed == [] and len(first.runs) == len(specs) == 9
    assert set(first.trained) == {s.key for s in specs}
    assert {r.owner for r in first.runs} == {demo.GALLERY_OWNER}
    assert all(r.config["audit"] and r.config["sample_prompt"] == demo.DEMO_PROMPT for r in first.runs)
    state = demo.gallery_state(store)
    assert state.complete and not state.preparing and state.progress == 1.0
    again = demo.prepare(store, steps=3, train_fn=FAKE)  # a restart: nothing to train
    assert again.trained == () and [r.id for r in again.runs] == [r.id for r in first.runs]
    assert demo.start_background(store, steps=3) is None  # complete: the app starts nothing
    # retention deletes old runs of visitors, never the pinned gallery
    old = store.create_run("browser:x", specs[0].config)
    store.request_cancel(old)
    deleted = store.purge_expired(1, limit=50, now=time.time() + 30 * 86400)
    assert deleted == [old]
    assert len(store.list_runs(demo.GALLERY_OWNER)) == 9


def test_one_preparation_at_a_time(tmp_path):
    store = RunStore(tmp_path / "data")
    with demo.preparation_lock(store.data_dir):
        assert demo.is_preparing(store.data_dir)
        busy = demo.prepare(store, steps=3, train_fn=FAKE)
        assert busy.busy and busy.runs == ()
        assert demo.start_background(store) is None
    assert not demo.is_preparing(store.data_dir)
    assert store.list_runs(demo.GALLERY_OWNER) == []


def test_gallery_keys_ignore_the_length():
    short, full = demo.gallery_specs(steps=5), demo.gallery_specs()
    assert [s.key for s in short] == [s.key for s in full]
    assert len({s.key for s in full}) == len(full)
    assert {s.key for s in full} >= {"none", "gaussian-0.5", "gaussian-16", "naive-1", "laplace-8"}
    assert demo.autoprepare_enabled({demo.ENV_AUTOPREPARE: "1"}) and not demo.autoprepare_enabled({})

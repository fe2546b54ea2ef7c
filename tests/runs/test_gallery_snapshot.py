"""The gallery snapshot shipped in assets/gallery (issue 22, item 2): it is today's gallery, its privacy
accounting is what ``demo prepare`` would produce, it carries no secret, and it loads into a fresh store.

When a preset, the gallery's specs or the accountant change, these tests fail until ``make gallery``
rebuilds the snapshot.
"""

from __future__ import annotations

import inspect
import json
import shutil
import stat
from pathlib import Path

import pytest

from dpcore.audit.defaults import AUDIT_CANARIES
from dpcore.audit.lab import load_lab_canaries
from dpcore.config import TrainConfig
from dpcore.privacy.accounting import calibrate_noise, epsilon_spent
from dpcore.privacy.plan import accounted_units, plan
from dpcore.runs import gallery as demo
from dpcore.runs import gallery_snapshot as snap
from dpcore.runs.preview import data_summary
from dpcore.runs.store import RunStore
from dpcore.views.auditview import load_audit
from tests.conftest import ROOT

CALIBRATION_TOLERANCE = inspect.signature(calibrate_noise).parameters["tolerance"].default
FAKE = f"{ROOT / 'tests' / 'fake_training.py'}:run_training"


@pytest.fixture(scope="module")
def shipped() -> list[snap.SnapshotRun]:
    return snap.read_snapshot(snap.SHIPPED)


def test_the_shipped_snapshot_is_todays_gallery(shipped):
    specs = demo.gallery_specs()
    assert [r.key for r in shipped] == [s.key for s in specs]
    assert [r.title for r in shipped] == [s.title for s in specs]
    for run, spec in zip(shipped, specs):
        assert run.config == spec.config.to_dict(), f"{run.key}: the config changed since `make gallery`"
        assert run.record["status"] == "finished"
        assert run.result["steps"] == run.result["planned_steps"] == spec.config.max_steps  # the presets' length
        assert not run.result["stopped"]
        assert run.result.get("audit"), f"{run.key}: every gallery run is audited"


def test_the_snapshots_accounting_is_what_the_accountant_gives_its_config(shipped):
    """Re-derive q, steps, δ, σ and ε of every run from its config, as ``demo prepare``'s trainer does."""
    for run in shipped:
        config = TrainConfig.from_dict(run.config)
        res = run.result
        if not config.is_private:
            assert res["epsilon"] is None and res["noise_multiplier"] is None, run.key
            continue
        # N: the corpus's training users (or sequences) and every audit canary, included or not
        n = accounted_units(config, data_summary(config)) + AUDIT_CANARIES
        assert res["num_audit_canaries"] == AUDIT_CANARIES
        assert res["num_accounted_users" if config.user_level else "num_accounted_examples"] == n, run.key
        p = plan(config, n)
        assert res["sample_rate"] == pytest.approx(p.sample_rate, rel=1e-12), run.key
        assert res["planned_steps"] == res["steps"] == p.steps, run.key
        assert res["delta"] == pytest.approx(p.delta, rel=1e-12), run.key
        # σ is calibrated to ε within the calibration's tolerance window, so two calibrations agree to
        # a fraction of that window, not bit for bit; the ε of the stored σ is exact
        assert res["noise_multiplier"] == pytest.approx(p.noise_multiplier, rel=1e-3), run.key
        assert res["accountant"] == config.accountant, run.key
        eps = epsilon_spent(config.mechanism, res["noise_multiplier"], p.sample_rate, p.steps, p.delta,
                            config.accountant).epsilon
        assert res["epsilon"] == pytest.approx(eps, rel=1e-9), run.key
        assert res["target_epsilon"] == config.epsilon, run.key
        assert (1 - CALIBRATION_TOLERANCE) * config.epsilon <= res["epsilon"] <= config.epsilon, run.key
        last = run.rows()["metrics"][-1]
        assert last["step"] == p.steps and last["epsilon"] == pytest.approx(res["epsilon"], rel=1e-6), run.key


def test_the_snapshot_carries_no_secret_and_no_path_of_the_machine_that_trained_it(shipped):
    files = sorted(p.relative_to(snap.SHIPPED) for p in snap.SHIPPED.rglob("*") if p.is_file())
    allowed = {snap.MANIFEST} | {f"{r.key}/{name}" for r in shipped
                                  for name in (snap.RUN_FILE, snap.ROWS_FILE, *snap.SNAPSHOT_ARTIFACTS.values())}
    assert {str(f) for f in files} <= allowed  # no worker.log (pids, paths), nothing else
    size = sum((snap.SHIPPED / f).stat().st_size for f in files)
    assert size < 4 * 2**20, f"the snapshot has grown to {size / 2**20:.1f} MiB"
    for f in files:
        if f.suffix in (".json", ".csv"):
            text = (snap.SHIPPED / f).read_text(encoding="utf-8")
            assert str(ROOT) not in text and "/tmp/" not in text and "/home/" not in text, f
            assert "noise_seed" not in text, f
    for run in shipped:
        config, res = TrainConfig.from_dict(run.config), run.result
        if config.is_private:  # the noise and the sampling came from the OS CSPRNG: no seed of them exists
            assert config.secure_noise and "os.urandom" in res["noise_source"], run.key
        audit = json.loads((run.folder / "audit.json").read_text(encoding="utf-8"))
        assert audit["checkpoint"] == "model.pt"
        one_run = audit["one_run"]
        # audit.json keeps the coins' count only; the coins themselves are in the attack lab's file alone,
        # the answers of a game about synthetic canaries (the lab says a shipped model's answers are public)
        assert isinstance(one_run["num_included"], int)
        assert not any(isinstance(v, list) and len(v) >= one_run["m"] for v in one_run.values()), run.key
        lab = load_lab_canaries(run.folder)
        assert lab is not None and lab.m == one_run["m"] and int(lab.included.sum()) == one_run["num_included"]


def test_importing_the_snapshot_makes_a_fresh_store_show_the_whole_gallery(tmp_path, shipped):
    store = RunStore(tmp_path / "data")
    done = snap.import_snapshot(store)
    assert set(done.loaded) == {r.key for r in shipped} and not done.stale and not done.busy
    state = demo.gallery_state(store)
    assert state.complete and not state.preparing
    assert demo.start_background(store) is None  # nothing left to train
    for (spec, run), shot in zip(state.entries, shipped):
        assert spec.key == shot.key and run.owner == demo.GALLERY_OWNER and run.config == shot.config
        assert run.result.to_dict() == shot.result and run.pid is not None
        assert [e["val_perplexity"] for e in store.evals(run.id)] == [e["val_perplexity"] for e in shot.rows()["evals"]]
        assert [s["text"] for s in store.samples(run.id)] == [s["text"] for s in shot.rows()["samples"]]
        assert store.metric_count(run.id) == len(shot.rows()["metrics"])
        files = store.artifacts(run.id)
        assert set(files) == set(snap.SNAPSHOT_ARTIFACTS)
        for path in files.values():
            assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600
        audit = load_audit(store, run)
        assert audit and audit["checkpoint"] == files["checkpoint"]
    again = snap.import_snapshot(store)
    assert again.loaded == () and set(again.present) == {r.key for r in shipped}
    assert len(store.list_runs(demo.GALLERY_OWNER)) == len(shipped)


def test_a_run_whose_preset_changed_is_left_to_prepare(tmp_path, shipped):
    folder = tmp_path / "snapshot"
    shutil.copytree(snap.SHIPPED, folder)
    record = json.loads((folder / "gaussian-8" / snap.RUN_FILE).read_text(encoding="utf-8"))
    record["config"]["max_steps"] = 200  # as if the workshop presets had changed since `make gallery`
    (folder / "gaussian-8" / snap.RUN_FILE).write_text(json.dumps(record), encoding="utf-8")
    store = RunStore(tmp_path / "data")
    done = snap.import_snapshot(store, folder)
    assert done.stale == ("gaussian-8",) and len(done.loaded) == len(shipped) - 1
    state = demo.gallery_state(store)
    assert not state.complete and [s.key for s, r in state.entries if r is None] == ["gaussian-8"]


def test_no_import_beside_a_preparation(tmp_path):
    store = RunStore(tmp_path / "data")
    with demo.preparation_lock(store.data_dir):
        assert snap.import_snapshot(store).busy
    assert store.list_runs(demo.GALLERY_OWNER) == []


def test_a_snapshot_written_from_an_imported_store_is_the_shipped_one(tmp_path, shipped):
    """write_snapshot and import_snapshot are inverses (what `make gallery` writes is what a server loads)."""
    store = RunStore(tmp_path / "data")
    snap.import_snapshot(store)
    written = snap.write_snapshot(store, tmp_path / "out")
    assert written.keys == tuple(r.key for r in shipped)
    for old, new in zip(shipped, snap.read_snapshot(tmp_path / "out")):
        assert new.record == old.record and new.rows() == old.rows()
        for name in snap.SNAPSHOT_ARTIFACTS.values():
            assert (new.folder / name).read_bytes() == (old.folder / name).read_bytes(), (old.key, name)


def test_a_snapshot_is_the_whole_gallery_at_the_presets_length(tmp_path):
    store = RunStore(tmp_path / "data")
    demo.prepare(store, steps=3, train_fn=FAKE)  # a quick gallery: not the presets' runs
    with pytest.raises(snap.SnapshotError, match="not complete"):
        snap.write_snapshot(store, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_snapshot_folder_is_set_by_the_environment(tmp_path):
    assert snap.snapshot_folder({}) == snap.SHIPPED
    assert snap.snapshot_folder({snap.ENV_SNAPSHOT: "off"}) is None
    assert snap.snapshot_folder({snap.ENV_SNAPSHOT: str(tmp_path)}) == tmp_path
    with pytest.raises(snap.SnapshotError):
        snap.read_snapshot(tmp_path)


def test_the_commands_import_write_and_refuse(tmp_path, capsys):
    from dpcore.cli.main import main

    data = str(tmp_path / "data")
    assert main(["demo", "snapshot", "--data-dir", data, "--out", str(tmp_path / "none")]) == 1  # nothing prepared
    assert "not complete" in capsys.readouterr().err
    assert main(["demo", "import", "--data-dir", data]) == 0
    assert "9 runs imported, 0 already there, 0 out of date" in capsys.readouterr().out
    assert main(["demo", "status", "--data-dir", data]) == 0
    assert capsys.readouterr().out.rstrip().endswith("complete")
    assert main(["demo", "snapshot", "--data-dir", data, "--out", str(tmp_path / "out")]) == 0
    assert "gallery snapshot: 9 runs in" in capsys.readouterr().out
    assert [r.key for r in snap.read_snapshot(tmp_path / "out")] == [s.key for s in demo.gallery_specs()]
    assert main(["demo", "import", "--data-dir", data, "--from", str(tmp_path / "missing")]) == 1

"""The calibration cache: σ computed once per key, reused at launch, a stored value never trusted blindly."""

from __future__ import annotations

import json

import pytest

from dpcore.config import TrainConfig
from dpcore.privacy import calcache
from dpcore.privacy.accounting import compute_epsilon
from dpcore.privacy.calcache import CalibrationKey, calibrated_noise, clear_calibration_memo
from dpcore.privacy.plan import calibration_key, plan

KEY = CalibrationKey("gaussian", 3.0, 1e-5, 0.05, 400, "rdp")


@pytest.fixture(autouse=True)
def _isolated():
    calcache.clear_memory()
    calcache.use_folder(None)
    clear_calibration_memo()
    yield
    calcache.clear_memory()
    calcache.use_folder(None)


def _forbid_calibration(monkeypatch) -> None:
    def never(*_a, **_k):
        raise AssertionError("the expensive calibration ran")

    monkeypatch.setattr(calcache, "calibrate_noise", never)


def _count_calibrations(monkeypatch) -> list[tuple]:
    calls: list[tuple] = []
    real = calcache.calibrate_noise

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(calcache, "calibrate_noise", counted)
    return calls


def test_plan_calibrates_once_per_key_and_process(monkeypatch):
    config = TrainConfig(mechanism="gaussian", epsilon=3.0, max_steps=200, batch_size=64, accountant="rdp")
    first = plan(config, 5000)
    _forbid_calibration(monkeypatch)
    assert plan(config, 5000) == first  # the trainer's plan after the preview's: no second calibration


def test_a_different_key_is_calibrated_again(monkeypatch):
    config = TrainConfig(mechanism="gaussian", epsilon=3.0, max_steps=200, batch_size=64, accountant="rdp")
    plan(config, 5000)
    calls = _count_calibrations(monkeypatch)
    for changed, n in ((config.replace(epsilon=3.5), 5000), (config.replace(max_steps=201), 5000),
                       (config, 6000), (config.replace(delta=1e-6), 5000)):
        before = len(calls)
        p = plan(changed, n)
        assert len(calls) == before + 1, changed
        assert compute_epsilon("gaussian", p.noise_multiplier, p.sample_rate, p.steps, p.delta,
                               "rdp") <= changed.epsilon


def test_the_worker_reuses_what_the_dashboard_stored(tmp_path, monkeypatch):
    """Dashboard: calibrate, persist at launch. Worker (another process: empty memory): read, check, use."""
    sigma = calibrated_noise(KEY)
    assert calcache.persist(KEY, calcache.folder_in(tmp_path))
    calcache.clear_memory()
    calcache.use_folder(calcache.folder_in(tmp_path))
    _forbid_calibration(monkeypatch)
    assert calibrated_noise(KEY) == sigma


def test_a_computed_value_is_stored_for_the_next_worker(tmp_path, monkeypatch):
    calcache.use_folder(tmp_path)
    sigma = calibrated_noise(KEY)
    assert len(list(tmp_path.glob("*.json"))) == 1
    calcache.clear_memory()
    _forbid_calibration(monkeypatch)
    assert calibrated_noise(KEY) == sigma
    assert calibrated_noise(KEY, read_files=False) == sigma  # memory first


def _stored(tmp_path) -> tuple[float, object]:
    calcache.use_folder(tmp_path)
    sigma = calibrated_noise(KEY)
    calcache.clear_memory()
    (path,) = tmp_path.glob("*.json")
    return sigma, path


@pytest.mark.parametrize("tamper", [
    lambda d, s: d.update(noise=s * 0.9),  # too little noise: ε above the target
    lambda d, s: d.update(noise=s * 1.5),  # far too much: ε far below the target (a wasted run)
    lambda d, s: d.update(noise="1.5"),
    lambda d, s: d.update(noise=True),
    lambda d, s: d.update(noise=float("nan")),
    lambda d, s: d["key"].update(epsilon=30.0),  # another key's value under this key's name
    lambda d, s: d["versions"].update({"dpcore-calibration": "0"}),
])
def test_a_bad_stored_value_is_recomputed_not_trusted(tmp_path, monkeypatch, tamper):
    sigma, path = _stored(tmp_path)
    data = json.loads(path.read_text())
    tamper(data, sigma)
    path.write_text(json.dumps(data))
    calls = _count_calibrations(monkeypatch)
    assert calibrated_noise(KEY) == sigma
    assert len(calls) == 1
    assert json.loads(path.read_text())["noise"] == sigma  # and the file is repaired


def test_an_unreadable_file_is_recomputed(tmp_path, monkeypatch):
    sigma, path = _stored(tmp_path)
    path.write_text("{not json")
    calls = _count_calibrations(monkeypatch)
    assert calibrated_noise(KEY) == sigma and len(calls) == 1


def test_the_check_accepts_exactly_what_calibration_may_return():
    sigma = calibrated_noise(KEY)
    assert calcache.trustworthy(KEY, sigma)
    assert not calcache.trustworthy(KEY, sigma * 0.98)  # over the target
    assert not calcache.trustworthy(KEY, sigma * 1.2)  # needlessly noisy
    assert not calcache.trustworthy(KEY, float("inf")) and not calcache.trustworthy(KEY, -1.0)


def test_stored_files_are_private_and_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(calcache, "MAX_FILES", 3)
    calcache.use_folder(tmp_path / "cal")
    for eps in (1.0, 2.0, 3.0, 4.0, 5.0):
        calibrated_noise(CalibrationKey("gaussian", eps, 1e-5, 0.05, 100, "rdp"))
    files = list((tmp_path / "cal").glob("*.json"))
    assert len(files) == 3
    assert all(f.stat().st_mode & 0o077 == 0 for f in files)
    assert (tmp_path / "cal").stat().st_mode & 0o077 == 0


def test_concurrent_askers_compute_a_key_once(monkeypatch):
    import threading

    calls = _count_calibrations(monkeypatch)
    results: list[float] = []
    threads = [threading.Thread(target=lambda: results.append(calibrated_noise(KEY))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(results)) == 1


def test_the_key_is_what_plan_calibrates():
    config = TrainConfig(mechanism="gaussian", epsilon=2.0, max_steps=50, batch_size=64, accountant="pld")
    key = calibration_key(config, 0.05, 50, 1e-6)
    assert key == CalibrationKey("gaussian", 2.0, 1e-6, 0.05, 50, "pld")
    assert key.with_accountant("rdp").accountant == "rdp"

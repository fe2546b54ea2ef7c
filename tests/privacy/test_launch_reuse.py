"""The launch path: the worker's trainer reuses the σ stored for its key, and calibrates a key it lacks."""

from __future__ import annotations

import pytest

from dpcore.privacy import calcache
from dpcore.privacy.calcache import clear_calibration_memo


@pytest.fixture(autouse=True)
def _isolated():
    calcache.clear_memory()
    calcache.use_folder(None)
    clear_calibration_memo()
    yield
    calcache.clear_memory()
    calcache.use_folder(None)


def test_the_trainer_uses_the_stored_sigma_and_recalibrates_other_keys(tiny_data, tiny_config, tmp_path,
                                                                       monkeypatch):
    from dpcore.training.loop import run_training

    config = tiny_config.replace(mechanism="gaussian", accountant="rdp", epsilon=4.0, max_steps=2, eval_every=2,
                                 num_samples=0)
    calcache.use_folder(tmp_path / "cal")
    first = run_training(config, tmp_path / "a", data=tiny_data)  # calibrates and stores
    assert len(list((tmp_path / "cal").glob("*.json"))) == 1

    calcache.clear_memory()  # a new worker process: nothing in memory, the file on disk
    calls: list[tuple] = []

    def counted(*args, **kwargs):
        calls.append(args)
        raise AssertionError("the worker calibrated a key it had")

    monkeypatch.setattr(calcache, "calibrate_noise", counted)
    again = run_training(config, tmp_path / "b", data=tiny_data)
    assert again.noise_multiplier == first.noise_multiplier and not calls
    assert again.epsilon <= config.epsilon

    with pytest.raises(AssertionError, match="calibrated a key"):  # another ε: another key, calibrated
        run_training(config.replace(epsilon=5.0), tmp_path / "c", data=tiny_data)
    assert len(calls) == 1


def test_the_worker_looks_in_the_servers_data_folder(tmp_path):
    from dpcore.runs.store import RunStore
    from dpcore.runs.worker import _use_calibration_folder

    store = RunStore(tmp_path)
    try:
        _use_calibration_folder(store)
        assert calcache.folder() == calcache.folder_in(store.data_dir) == tmp_path.resolve() / "cache" / "calibration"
        assert calcache.folder().is_dir() and calcache.folder().stat().st_mode & 0o077 == 0
    finally:
        store.close()

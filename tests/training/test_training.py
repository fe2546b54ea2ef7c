"""The trainer end to end: every mechanism, determinism, stopping, bad inputs."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from dpcore.config import TrainConfig
from dpcore.errors import CheckpointError, ConfigError
from dpcore.events import RecordingCallbacks
from dpcore.privacy.delta import default_delta
from dpcore.training.checkpoint import load_checkpoint
from dpcore.training.loop import run_training
from dpcore.training.model import GRULanguageModel, ModelConfig, build_model, to_dp_layers

RESULT_KEYS = {"mechanism", "epsilon", "target_epsilon", "delta", "accountant", "noise_multiplier", "sample_rate",
               "steps", "clip", "num_train_examples", "train_loss", "val_perplexity", "step_time_median_s",
               "device", "samples"}


@pytest.mark.parametrize("mechanism", ["gaussian", "none", "naive"])
def test_tiny_end_to_end_run(tiny_data, tiny_config, tmp_path, mechanism):
    rec = RecordingCallbacks()
    result = run_training(tiny_config.replace(mechanism=mechanism), tmp_path, callbacks=rec, data=tiny_data)
    on_disk = json.loads((tmp_path / "result.json").read_text())
    assert RESULT_KEYS <= set(on_disk)
    assert on_disk["steps"] == 6 and len(rec.steps) == 6
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(1, 7))
    assert rows[-1]["val_perplexity"] != ""
    assert math.isfinite(result.val_perplexity) and result.val_perplexity > 1
    assert len(result.samples) == 1 and rec.samples[-1].kind == "final"
    assert [e.step for e in rec.evals] == [3, 6]
    if mechanism == "gaussian":
        assert rec.info.guarantee == "dp"
        assert 0 < result.epsilon <= tiny_config.epsilon
        users = len(tiny_data.train_users)  # user-level by default: N counts users
        assert result.unit == "user" and result.num_accounted_users == users
        assert result.delta == pytest.approx(default_delta(users))
        assert result.sample_rate == pytest.approx(1 / math.ceil(users / 32))
        assert "one user with all of their sequences" in result.neighbours
        eps = [s.epsilon for s in rec.steps]
        assert eps == sorted(eps) and eps[-1] == pytest.approx(result.epsilon, rel=1e-6)
        assert all(s.frac_clipped is not None for s in rec.steps if s.batch_size)
    else:
        assert result.epsilon is None  # no guarantee: no ε, ever
        assert all(s.epsilon is None for s in rec.steps)
        assert rec.info.guarantee == ("none" if mechanism == "none" else "no-guarantee")
    ckpt = load_checkpoint(tmp_path / "model.pt")
    assert isinstance(ckpt.model.gru, torch.nn.GRU)
    assert ckpt.result.mechanism == mechanism


def test_same_config_and_seed_give_the_same_curve_without_privacy(tiny_data, tiny_config, tmp_path):
    """The baseline is reproducible; a private run is not (its noise is secret: see test_secret_randomness)."""
    runs = []
    for i in range(2):
        rec = RecordingCallbacks()
        run_training(tiny_config.replace(seed=5, mechanism="none"), tmp_path / str(i), callbacks=rec, data=tiny_data)
        runs.append([(s.train_loss, s.epsilon, s.batch_size) for s in rec.steps])
    assert runs[0] == runs[1]
    rec = RecordingCallbacks()
    run_training(tiny_config.replace(seed=6, mechanism="none"), tmp_path / "other", callbacks=rec, data=tiny_data)
    assert [(s.train_loss, s.epsilon, s.batch_size) for s in rec.steps] != runs[0]


def test_stop_request_saves_a_checkpoint_with_the_steps_run(tiny_data, tiny_config, tmp_path):
    rec = RecordingCallbacks()
    result = run_training(tiny_config.replace(max_steps=100), tmp_path, callbacks=rec, data=tiny_data,
                          should_stop=lambda: len(rec.steps) >= 2)
    assert result.stopped and result.steps == 2 and result.planned_steps == 100
    assert result.epsilon < tiny_config.epsilon  # ε of the two steps run, not of the plan
    assert load_checkpoint(tmp_path / "model.pt").result.steps == 2


def test_empty_poisson_batches_do_not_crash(tiny_data, tiny_config, tmp_path):
    small = tiny_data.train[:30]
    data = type(tiny_data)(**{**tiny_data.__dict__, "train": small,
                              "train_example_users": tiny_data.train_example_users[:30],
                              "train_users": sorted(set(tiny_data.train_example_users[:30]))})
    rec = RecordingCallbacks()
    run_training(tiny_config.replace(batch_size=1, max_steps=12, delta=1e-3, unit="sequence"), tmp_path, callbacks=rec,
                 data=data)
    empties = [s for s in rec.steps if s.batch_size == 0]
    assert empties, "with q = 1/30 some of 12 batches should be empty"
    assert all(s.train_loss is None and s.epsilon > 0 for s in empties)


@pytest.mark.parametrize("unit", ["sequence", "user"])
def test_delta_at_or_above_one_over_n_is_refused(tiny_data, tiny_config, tmp_path, unit):
    n = len(tiny_data.train) if unit == "sequence" else len(tiny_data.train_users)  # N counts the privacy units
    with pytest.raises(ConfigError, match="not below 1/N" + (r".*users" if unit == "user" else "")):
        run_training(tiny_config.replace(delta=1.0 / n, unit=unit), tmp_path, data=tiny_data)
    run_training(tiny_config.replace(delta=0.9 / n, unit=unit, max_steps=1, num_samples=0), tmp_path, data=tiny_data)


@pytest.mark.parametrize("changes,match", [
    ({"epsilon": 0.0}, "ε"), ({"epsilon": -1.0}, "ε"), ({"clip": 0.0}, "clipping"),
    ({"batch_size": 0}, "batch size"), ({"max_steps": None}, "exactly one"),
    ({"mechanism": "laplace", "accountant": "rdp"}, "PLD"), ({"mechanism": "magic"}, "mechanism"),
    ({"num_layers": 3}, "layers"), ({"delta": 1.0}, "δ"),
])
def test_bad_configs_have_clear_messages(tiny_config, changes, match):
    with pytest.raises(ConfigError, match=match):
        tiny_config.replace(**changes).validate()


def test_dpgru_weights_load_into_plain_gru():
    cfg = ModelConfig(vocab_size=20, embed_dim=6, hidden_size=10, num_layers=2)
    plain = build_model(cfg, seed=1)
    dp = to_dp_layers(build_model(cfg, seed=1))
    assert type(dp.gru).__name__ == "DPGRU"
    x = torch.randint(0, 20, (3, 7))
    torch.testing.assert_close(dp(x)[0], plain(x)[0], rtol=1e-5, atol=1e-5)
    fresh = GRULanguageModel(cfg)
    state = dp.state_dict()
    fresh.load_state_dict({k: state[k] for k in fresh.state_dict()})
    torch.testing.assert_close(fresh(x)[0], plain(x)[0], rtol=1e-5, atol=1e-5)


def test_bad_checkpoints_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"hello": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not written by dpcore"):
        load_checkpoint(tmp_path / "other.pt")


def test_config_round_trips_through_a_dict(tiny_config):
    assert TrainConfig.from_dict(tiny_config.to_dict()) == tiny_config
    with pytest.raises(ConfigError, match="unknown"):
        TrainConfig.from_dict({**tiny_config.to_dict(), "bogus": 1})

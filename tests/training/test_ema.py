"""Weight averaging (TrainConfig.ema): the average is what is saved and evaluated, at no change in ε.

Also the learning-rate rule for runs that start from the public model (TrainConfig.public_lr_scale).
"""

from __future__ import annotations

import math

import pytest
import torch

import dpcore.training.loop as training
from dpcore.config import TrainConfig, parse_field
from dpcore.errors import ConfigError
from dpcore.events import RecordingCallbacks
from dpcore.training.checkpoint import load_checkpoint
from dpcore.training.generate import sample_texts
from dpcore.training.loop import evaluate, run_training
from dpcore.training.model import GRULanguageModel, ModelConfig, plain_state_dict

DECAY = 0.9


def _recording_engines(monkeypatch) -> list[list[dict[str, torch.Tensor]]]:
    """Make run_training's engines record their plain weights at the start and after every step."""
    runs: list[list[dict[str, torch.Tensor]]] = []
    build = training.build_engine

    def recording_build(*args, **kwargs):
        engine = build(*args, **kwargs)
        weights = [plain_state_dict(engine.module)]
        runs.append(weights)
        step = engine.step

        def recorded_step(*a, **k):
            stats = step(*a, **k)
            weights.append(plain_state_dict(engine.module))
            return stats

        engine.step = recorded_step
        return engine

    monkeypatch.setattr(training, "build_engine", recording_build)
    return runs


def _expected_average(weights: list[dict[str, torch.Tensor]], decay: float, names) -> dict[str, torch.Tensor]:
    """The EMA written out from its definition (decay_t = min(decay, (1 + t)/(10 + t)), start = w_0)."""
    avg = {k: weights[0][k].double() for k in names}
    for t, w in enumerate(weights[1:], start=1):
        d = min(decay, (1 + t) / (10 + t))
        avg = {k: d * avg[k] + (1 - d) * w[k].double() for k in names}
    return avg


def _saved(path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).model.state_dict()


@pytest.mark.parametrize(("mechanism", "engine"), [("gaussian", "fast"), ("gaussian", "opacus"), ("none", "opacus")])
def test_the_saved_weights_are_the_average_of_the_step_weights(tiny_data, tiny_config, tmp_path, monkeypatch,
                                                                mechanism, engine):
    runs = _recording_engines(monkeypatch)
    config = tiny_config.replace(mechanism=mechanism, engine=engine, ema=DECAY, max_steps=8)
    result = run_training(config, tmp_path, data=tiny_data)
    (weights,) = runs
    assert len(weights) == 9 and result.ema == DECAY
    saved = _saved(tmp_path / "model.pt")
    assert set(saved) == set(GRULanguageModel(ModelConfig(2, 1, 1)).state_dict())  # the plain model's names
    expected = _expected_average(weights, DECAY, saved)
    for key, value in saved.items():
        torch.testing.assert_close(value.double(), expected[key], rtol=1e-5, atol=1e-6)
    # ... and not simply the last weights (the test would pass vacuously otherwise)
    assert any(not torch.allclose(saved[k], weights[-1][k]) for k in saved)


def test_without_ema_the_saved_weights_are_the_last_ones(tiny_data, tiny_config, tmp_path, monkeypatch):
    runs = _recording_engines(monkeypatch)
    run_training(tiny_config.replace(ema=None), tmp_path, data=tiny_data)
    saved, last = _saved(tmp_path / "model.pt"), runs[0][-1]
    for key, value in saved.items():
        torch.testing.assert_close(value, last[key])


def test_the_average_is_what_is_evaluated_and_sampled(tiny_data, tiny_config, tmp_path):
    rec = RecordingCallbacks()
    result = run_training(tiny_config.replace(ema=DECAY, num_samples=3, sample_tokens=30), tmp_path, data=tiny_data,
                          callbacks=rec)
    model = load_checkpoint(tmp_path / "model.pt").model
    val_loss = evaluate(model, tiny_data.val, torch.device("cpu"))
    assert result.val_loss == pytest.approx(val_loss, rel=1e-6)
    assert rec.evals[-1].val_loss == pytest.approx(val_loss, rel=1e-6)
    assert result.val_perplexity == pytest.approx(math.exp(val_loss), rel=1e-6)
    config = tiny_config.replace(ema=DECAY, num_samples=3, sample_tokens=30)
    texts = sample_texts(model, tiny_data.tokenizer, config.sample_prompt, n=config.num_samples,
                         max_tokens=config.sample_tokens, temperature=config.sample_temperature, seed=config.seed)
    assert result.samples == texts == rec.samples[-1].texts


def test_the_accounting_is_the_same_with_and_without_ema(tiny_data, tiny_config, tmp_path):
    keys = ("epsilon", "noise_multiplier", "sample_rate", "steps", "delta", "expected_batch_size",
            "num_accounted_users", "gradient_noise_multiplier")
    results, curves = [], []
    for i, ema in enumerate((None, 0.99)):
        rec = RecordingCallbacks()
        results.append(run_training(tiny_config.replace(ema=ema), tmp_path / str(i), data=tiny_data, callbacks=rec))
        curves.append([s.epsilon for s in rec.steps])
    assert results[0].epsilon is not None
    assert {k: getattr(results[0], k) for k in keys} == {k: getattr(results[1], k) for k in keys}
    assert curves[0] == curves[1]


def test_ema_is_a_config_field_with_a_range():
    assert TrainConfig().ema is None  # off unless asked for: see the README's frontier section
    assert parse_field("ema", "0.99") == 0.99 and parse_field("ema", "none") is None
    for bad in ("1", "1.5", "-0.1"):
        with pytest.raises(ConfigError, match="EMA"):
            parse_field("ema", bad)
    assert TrainConfig.from_dict({k: v for k, v in TrainConfig().to_dict().items() if k != "ema"}).ema is None


# ----------------------------------------------------------------- the public model's learning rate
def test_runs_from_the_public_model_train_at_the_scaled_learning_rate(tiny_data, tiny_config, tmp_path,
                                                                      monkeypatch):
    seen = []
    build = training.build_engine

    def spying_build(mechanism, engine, setup):
        seen.append(setup.lr)
        return build(mechanism, engine, setup)

    def public_state(config, data, model_config, status=None):  # stands in for the cached public model
        return GRULanguageModel(model_config).state_dict(), {"key": "test"}

    monkeypatch.setattr(training, "build_engine", spying_build)
    monkeypatch.setattr(training, "load_public_state", public_state)
    config = tiny_config.replace(lr=0.01, max_steps=1, num_samples=0)
    r_scratch = run_training(config, tmp_path / "a", data=tiny_data)
    r_public = run_training(config.replace(init="public"), tmp_path / "b", data=tiny_data)
    r_one = run_training(config.replace(init="public", public_lr_scale=1.0), tmp_path / "c", data=tiny_data)
    assert seen == pytest.approx([0.01, 0.01 * TrainConfig().public_lr_scale, 0.01])
    assert TrainConfig().public_lr_scale < 1  # a smaller step from the public model is the default
    assert [r.learning_rate for r in (r_scratch, r_public, r_one)] == pytest.approx(seen)
    assert r_scratch.noise_multiplier == r_public.noise_multiplier  # the rule does not touch privacy


def test_configs_stored_before_the_rule_keep_their_learning_rate():
    old = {k: v for k, v in TrainConfig(init="public").to_dict().items() if k not in ("public_lr_scale", "ema")}
    assert TrainConfig.from_dict(old).effective_lr == TrainConfig().lr

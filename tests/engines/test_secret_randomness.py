"""What is released around the weights: secret DP randomness, the private clipped count, replace-one ε.

Each test pins an attack on the landed code: a noise generator seeded from the published seed let
anyone replay training and match the released weights exactly (ε = ∞).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import dp_accounting as dpa
import pytest
import torch
from dp_accounting import pld

from dpcore.config import TrainConfig
from dpcore.data.tokenizer import PAD_ID
from dpcore.privacy import accounting
from dpcore.training.checkpoint import load_checkpoint
from dpcore.training.engines import EngineSetup, build_engine
from dpcore.training.engines import base as engine_base
from dpcore.training.engines.base import split_noise
from dpcore.training.loop import run_training
from dpcore.training.model import ModelConfig


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(out / "model.pt").model.state_dict()


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("mechanism,engine", [("gaussian", "fast"), ("gaussian", "opacus"), ("laplace", "opacus")])
def test_two_private_runs_with_the_same_seed_differ(tiny_data, tiny_config, tmp_path, mechanism, engine):
    cfg = tiny_config.replace(mechanism=mechanism, engine=engine, num_samples=0, max_steps=3,
                              accountant="pld" if mechanism == "laplace" else "rdp")
    run_training(cfg, tmp_path / "a", data=tiny_data)
    run_training(cfg, tmp_path / "b", data=tiny_data)
    assert not _same(_weights(tmp_path / "a"), _weights(tmp_path / "b"))


@pytest.mark.parametrize("mechanism", ["none", "naive"])
def test_runs_without_a_guarantee_stay_reproducible(tiny_data, tiny_config, tmp_path, mechanism):
    cfg = tiny_config.replace(mechanism=mechanism, num_samples=0, max_steps=3)
    run_training(cfg, tmp_path / "a", data=tiny_data)
    run_training(cfg, tmp_path / "b", data=tiny_data)
    assert _same(_weights(tmp_path / "a"), _weights(tmp_path / "b"))


def test_replaying_with_the_published_seed_does_not_reproduce_the_weights(tiny_data, tiny_config, tmp_path):
    """The reviewer's attack: rebuild the engine with the seed from result.json and replay every step."""
    cfg = tiny_config.replace(num_samples=0, max_steps=4, seed=0, unit="sequence")  # the replay is sequence-level
    run_training(cfg, tmp_path, data=tiny_data)
    result = json.loads((tmp_path / "result.json").read_text())
    released = _weights(tmp_path)
    setup = EngineSetup(
        train=tiny_data.train, model_config=ModelConfig(tiny_data.tokenizer.vocab_size, cfg.embed_dim,
                                                        cfg.hidden_size, cfg.num_layers, cfg.dropout),
        pad_id=PAD_ID, batch_size=cfg.batch_size, lr=cfg.lr, optimizer=cfg.optimizer, clip=cfg.clip,
        noise_multiplier=result["noise_multiplier"], sample_rate=result["sample_rate"], seed=result["seed"],
        device=torch.device("cpu"), dp_randomness_seed=result["seed"],  # what the old code did: seed-derived noise
    )
    torch.manual_seed(result["seed"])
    replay = build_engine("gaussian", cfg.engine, setup)
    batches = replay.batches()
    for _ in range(result["steps"]):
        replay.step(*next(batches))
    assert not _same(released, replay.plain_model().state_dict())


def test_nothing_written_to_disk_holds_the_noise_seed(tiny_data, tiny_config, tmp_path, monkeypatch):
    drawn: list[int] = []
    original = engine_base.secret_seed

    def recording() -> int:
        drawn.append(original())
        return drawn[-1]

    monkeypatch.setattr(engine_base, "secret_seed", recording)
    cfg = tiny_config.replace(num_samples=1, max_steps=3, seed=11, secure_noise=False)  # the seeded-generator path
    run_training(cfg, tmp_path, data=tiny_data)
    assert len(drawn) >= 2  # noise and Poisson sampling (and the clipped count)
    assert all(s not in (cfg.seed + 1, cfg.seed + 2, cfg.seed + 3) for s in drawn)
    blobs = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert blobs
    for seed in drawn:
        for pattern in (str(seed).encode(), struct.pack("<q", seed), struct.pack(">q", seed)):
            assert not any(pattern in blob for blob in blobs)


# --------------------------------------------------------------------------- the private clipped count
def test_split_noise_keeps_the_accounted_sigma():
    sigma_grad, sigma_count = split_noise(1.3, 512)
    assert sigma_count == pytest.approx(0.05 * 512)
    assert sigma_grad > 1.3
    assert 1 / sigma_grad**2 + 1 / sigma_count**2 == pytest.approx(1 / 1.3**2, rel=1e-12)
    assert sigma_grad / 1.3 - 1 < 0.034  # the count costs at most ~3 % more gradient noise
    assert split_noise(1.3, 10) == (1.3, None)  # too small a batch: no private count


def test_joint_release_is_the_accounted_gaussian_mechanism():
    """The stacked (gradient, count) sensitivity over its noise equals 1/σ: same ε by construction."""
    sigma, clip = 0.9, 2.0
    sigma_grad, sigma_count = split_noise(sigma, 1000)
    scale = clip * sigma_grad / sigma_count  # the count coordinate rescaled to the gradient's noise
    sensitivity = math.hypot(clip, scale * 1.0)
    assert (sigma_grad * clip) / sensitivity == pytest.approx(sigma, rel=1e-12)


def test_noisy_fraction_clipped_is_unbiased_with_the_stated_noise(tiny_data):
    train = tiny_data.train[:2000]
    setup = EngineSetup(
        train=train, model_config=ModelConfig(tiny_data.tokenizer.vocab_size, 4, 6, 1), pad_id=PAD_ID,
        batch_size=400, lr=0.0, optimizer="sgd", clip=1e-6, noise_multiplier=0.5,
        sample_rate=accounting.sample_rate_for(len(train), 400), seed=0, device=torch.device("cpu"),
    )
    engine = build_engine("gaussian", "fast", setup)
    assert engine.count_noise == pytest.approx(0.05 * engine.expected_batch_size)
    batches = engine.batches()
    exact, noisy = [], []
    for _ in range(40):
        stats = engine.step(*next(batches))
        exact.append(stats.batch_size / engine.expected_batch_size)  # clip ≈ 0: everything is clipped
        noisy.append(stats.noisy_frac_clipped)
    errors = torch.tensor(noisy) - torch.tensor(exact)
    assert float(errors.mean()) == pytest.approx(0.0, abs=0.03)
    assert float(errors.std()) == pytest.approx(0.05, rel=0.35)


def test_laplace_runs_release_no_noisy_count(tiny_data, tiny_config, tmp_path):
    cfg = tiny_config.replace(mechanism="laplace", accountant="pld", engine="opacus", num_samples=0, max_steps=2)
    result = run_training(cfg, tmp_path, data=tiny_data)
    assert result.clip_count_noise is None
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert all(r.split(",")[header.index("noisy_frac_clipped")] == "" for r in rows[1:])


# --------------------------------------------------------------------------- neighbours
def test_replace_one_epsilon_matches_dp_accounting():
    q, sigma, steps, delta = 0.02, 1.1, 300, 1e-5
    acc = pld.PLDAccountant(neighboring_relation=dpa.NeighboringRelation.REPLACE_ONE)
    acc.compose(dpa.PoissonSampledDpEvent(q, dpa.GaussianDpEvent(sigma)), steps)
    expected = acc.get_epsilon(delta)
    got = accounting.epsilon_replace_one("gaussian", sigma, q, steps, delta)
    assert got.epsilon == pytest.approx(expected, rel=1e-6)
    add_remove = accounting.compute_epsilon("gaussian", sigma, q, steps, delta, "pld")
    assert 1.5 * add_remove < got.epsilon < 2.5 * add_remove


def test_replace_one_for_laplace_is_group_privacy_of_two():
    q, lam, steps, delta = 0.05, 8.0, 100, 1e-5
    got = accounting.epsilon_replace_one("laplace", lam, q, steps, delta)
    add_remove = accounting.compute_epsilon("laplace", lam, q, steps, delta, "pld")
    assert got.epsilon >= 2 * add_remove
    assert "group privacy" in got.note


def test_result_reports_both_neighbour_relations(tiny_data, tiny_config, tmp_path):
    result = run_training(tiny_config.replace(num_samples=0, max_steps=3), tmp_path, data=tiny_data)
    on_disk = json.loads((tmp_path / "result.json").read_text())
    assert on_disk["epsilon"] == result.epsilon
    pld_add_remove = accounting.compute_epsilon("gaussian", result.noise_multiplier, result.sample_rate,
                                                result.steps, result.delta, "pld")
    assert on_disk["epsilon_replace_one"] > pld_add_remove  # same accountant (PLD), the wider relation
    assert "add or remove one" in on_disk["neighbours"]
    baseline = run_training(TrainConfig(**{**tiny_config.to_dict(), "mechanism": "none", "num_samples": 0,
                                           "max_steps": 2}), tmp_path / "none", data=tiny_data)
    assert baseline.epsilon_replace_one is None

"""Laplace DP-SGD: L1 clipping, Laplace noise scale, PLD accounting, and a tiny run."""

from __future__ import annotations

import dp_accounting as dpa
import pytest
import torch
from dp_accounting import pld

from dpcore.data.tokenizer import PAD_ID
from dpcore.privacy.accounting import calibrate_noise, compute_epsilon
from dpcore.privacy.noise import laplace_noise
from dpcore.training.engines import EngineSetup, build_engine
from dpcore.training.loop import run_training
from dpcore.training.model import ModelConfig, sequence_losses


def _setup(data, noise: float, clip: float) -> EngineSetup:
    return EngineSetup(train=data.train[:200], model_config=ModelConfig(data.tokenizer.vocab_size, 8, 12, 1),
                       pad_id=PAD_ID, batch_size=8, lr=0.0, optimizer="sgd", clip=clip, noise_multiplier=noise,
                       sample_rate=1 / 25, seed=0, device=torch.device("cpu"),
                       dp_randomness_seed=0)  # tests only: the noise statistics below must not be left to chance


def test_per_example_l1_norms_are_clipped_and_summed(tiny_data):
    clip = 3.0
    engine = build_engine("laplace", "opacus", _setup(tiny_data, noise=0.0, clip=clip))
    batch = tiny_data.train[:6]
    model = engine.plain_model().train()
    clipped = []
    for i in range(len(batch)):
        model.zero_grad()
        logits, _ = model(batch[i : i + 1, :-1])
        sequence_losses(logits, batch[i : i + 1, 1:], PAD_ID).mean().backward()
        g = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        c = g * min(1.0, clip / (float(g.abs().sum()) + 1e-6))
        assert float(c.abs().sum()) <= clip + 1e-4  # per-example L1 norm ≤ C1
        clipped.append(c)
    stats = engine.step(batch)
    assert stats.frac_clipped == 1.0  # L1 norms of these gradients are far above 3
    names = [n for n, _ in model.named_parameters()]
    params = dict(engine.module.named_parameters())
    got = torch.cat([params["_module." + n].summed_grad.reshape(-1) for n in names])
    torch.testing.assert_close(got, torch.stack(clipped).sum(0), rtol=1e-4, atol=1e-5)


def test_laplace_noise_has_variance_two_b_squared(tiny_data):
    lam, clip = 0.8, 0.5
    engine = build_engine("laplace", "opacus", _setup(tiny_data, noise=lam, clip=clip))
    engine.step(tiny_data.train[:0])  # empty batch: the gradient is pure noise
    noise = torch.cat([p.grad.reshape(-1) for p in engine.module.parameters()]) * engine.expected_batch_size
    b = lam * clip
    assert float(noise.var()) == pytest.approx(2 * b * b, rel=0.08)
    assert float(noise.abs().mean()) == pytest.approx(b, rel=0.05)  # Laplace: E|X| = b
    gen = torch.Generator().manual_seed(0)
    sample = laplace_noise((200_000,), 2.0, gen)
    assert float(sample.var()) == pytest.approx(8.0, rel=0.03)


@pytest.mark.parametrize("q,lam,steps", [(0.01, 1.0, 1000), (0.1, 2.0, 300), (0.05, 0.5, 50)])
def test_laplace_epsilon_equals_dp_accounting(q, lam, steps):
    event = dpa.SelfComposedDpEvent(dpa.PoissonSampledDpEvent(q, dpa.LaplaceDpEvent(lam)), steps)
    expected = pld.PLDAccountant().compose(event).get_epsilon(1e-5)
    assert compute_epsilon("laplace", lam, q, steps, 1e-5, "pld") == pytest.approx(expected, rel=1e-9)
    lam_cal = calibrate_noise("laplace", 2.0, 1e-5, q, steps, "pld")
    assert compute_epsilon("laplace", lam_cal, q, steps, 1e-5, "pld") <= 2.0


def test_tiny_laplace_run(tiny_data, tiny_config, tmp_path):
    result = run_training(tiny_config.replace(mechanism="laplace", accountant="pld"), tmp_path, data=tiny_data)
    assert result.guarantee == "dp" and result.accountant == "pld"
    assert 0 < result.epsilon <= tiny_config.epsilon
    assert result.engine == "opacus"

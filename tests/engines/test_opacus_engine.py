"""DP-SGD through Opacus: clipping, noise, sampling and independence of examples."""

from __future__ import annotations

import math

import pytest
import torch

from dpcore.data.tokenizer import PAD_ID
from dpcore.privacy.accounting import sample_rate_for
from dpcore.training.engines import EngineSetup, build_engine
from dpcore.training.model import ModelConfig, sequence_losses


def _setup(data, *, noise: float, clip: float = 0.5, batch: int = 8, layers: int = 1, seed: int = 0,
           train=None) -> EngineSetup:
    train = data.train[:200] if train is None else train
    return EngineSetup(
        train=train, model_config=ModelConfig(data.tokenizer.vocab_size, 8, 12, layers), pad_id=PAD_ID,
        batch_size=batch, lr=0.0, optimizer="sgd", clip=clip, noise_multiplier=noise,
        sample_rate=sample_rate_for(len(train), batch), seed=seed, device=torch.device("cpu"),
        dp_randomness_seed=seed,  # tests only: the trainer always draws secret DP randomness
    )


def _per_example_grads(model, batch) -> list[torch.Tensor]:
    """Each example's own gradient, by a separate backward pass (the independent reference)."""
    grads = []
    for i in range(len(batch)):
        model.zero_grad()
        x = batch[i : i + 1]
        logits, _ = model(x[:, :-1])
        sequence_losses(logits, x[:, 1:], PAD_ID).mean().backward()
        grads.append(torch.cat([p.grad.reshape(-1).clone() for p in model.parameters()]))
    return grads


@pytest.mark.parametrize("layers", [1, 2])
def test_summed_gradient_equals_sum_of_clipped_per_example_gradients(tiny_data, layers):
    engine = build_engine("gaussian", "opacus", _setup(tiny_data, noise=0.0, layers=layers, clip=0.5))
    batch = tiny_data.train[:7]
    reference_model = engine.plain_model().train()
    grads = _per_example_grads(reference_model, batch)
    norms = torch.stack([g.norm() for g in grads])
    assert (norms > 0.5).any() and (norms < 5.0).all()
    clipped = [g * min(1.0, 0.5 / (float(n) + 1e-6)) for g, n in zip(grads, norms)]
    for c in clipped:
        assert c.norm() <= 0.5 + 1e-5  # per-example clipped norms ≤ C
    expected = torch.stack(clipped).sum(0)

    stats = engine.step(batch)
    names = [n for n, _ in reference_model.named_parameters()]
    by_name = dict(engine.module.named_parameters())
    got = torch.cat([by_name["_module." + n].summed_grad.reshape(-1) for n in names])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert stats.batch_size == 7
    assert stats.frac_clipped == pytest.approx(float((norms > 0.5).float().mean()))
    assert stats.median_grad_norm == pytest.approx(float(norms.median()), rel=1e-4)


def test_noise_std_is_sigma_times_clip_on_an_empty_batch(tiny_data):
    sigma, clip = 1.7, 0.5
    engine = build_engine("gaussian", "opacus", _setup(tiny_data, noise=sigma, clip=clip))
    stats = engine.step(tiny_data.train[:0])  # an empty Poisson batch: no crash, noise still added
    assert stats.loss is None and stats.batch_size == 0
    noise = torch.cat([p.grad.reshape(-1) for p in engine.module.parameters()]) * engine.expected_batch_size
    assert noise.numel() > 2000
    assert float(noise.std()) == pytest.approx(sigma * clip, rel=0.06)
    assert abs(float(noise.mean())) < 0.1 * sigma * clip


def test_example_gradient_does_not_depend_on_the_rest_of_the_batch(tiny_data):
    """Per-sequence loss mean and a zero initial state: example 0's gradient is the same alone or not."""
    engine = build_engine("gaussian", "opacus", _setup(tiny_data, noise=0.0, clip=1e6))
    batch = tiny_data.train[:5].clone()
    batch[1, 9:] = PAD_ID  # a padded example next to full ones
    engine.step(batch)
    together = {n: p.summed_grad.clone() for n, p in engine.module.named_parameters()}
    alone_engine = build_engine("gaussian", "opacus", _setup(tiny_data, noise=0.0, clip=1e6))
    for i in range(5):
        alone_engine.optimizer.zero_grad(set_to_none=True)
        alone_engine.step(batch[i : i + 1])
        for n, p in alone_engine.module.named_parameters():
            together[n] -= p.summed_grad
    for n, rest in together.items():
        assert rest.abs().max() < 1e-5, n


@pytest.mark.parametrize("n,b", [(200, 8), (201, 8), (10, 64), (2451, 256), (1000, 1)])
def test_sample_rate_is_one_over_ceil_n_over_b(tiny_data, n, b):
    assert sample_rate_for(n, b) == pytest.approx(1.0 / math.ceil(n / b))
    if n <= len(tiny_data.train) and b > 1:
        engine = build_engine("gaussian", "opacus", _setup(tiny_data, noise=1.0, batch=b,
                                                           train=tiny_data.train[:n]))
        assert engine.loader.sample_rate == pytest.approx(1.0 / math.ceil(n / b))


def test_poisson_batches_vary_and_average_n_times_q(tiny_data):
    engine = build_engine("gaussian", "opacus", _setup(tiny_data, noise=1.0, batch=20))
    it = engine.batches()
    sizes = [len(next(it)[0]) for _ in range(300)]
    assert len(set(sizes)) > 5  # Poisson, not fixed-size batches
    assert sum(sizes) / len(sizes) == pytest.approx(200 * 0.1, rel=0.1)


def test_same_seed_same_noise_and_batches(tiny_data):
    a = build_engine("gaussian", "opacus", _setup(tiny_data, noise=1.0, seed=3))
    b = build_engine("gaussian", "opacus", _setup(tiny_data, noise=1.0, seed=3))
    (ba, _), (bb, _) = next(a.batches()), next(b.batches())
    assert torch.equal(ba, bb)
    a.step(ba), b.step(bb)
    for pa, pb in zip(a.module.parameters(), b.module.parameters()):
        assert torch.equal(pa.grad, pb.grad)

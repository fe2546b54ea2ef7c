"""The fast (ghost-clipping) Gaussian engine against Opacus, the reference, and against brute force.

With noise off, both engines must produce the same clipped per-example gradient sum; with equal
seeds they draw the same noise and sample the same Poisson batches, so whole steps agree too.
"""

from __future__ import annotations

import pytest
import torch

from dpcore.data.tokenizer import PAD_ID
from dpcore.privacy.accounting import sample_rate_for
from dpcore.training.engines import EngineSetup, build_engine
from dpcore.training.engines.fast_gaussian import FastGaussianEngine, clipped_gradient_sum
from dpcore.training.engines.opacus_gaussian import OpacusGaussianEngine
from dpcore.training.model import ModelConfig, sequence_losses

# (vocab, embed, hidden, layers, seq_len): 1 and 2 layers, embed < and > hidden, short and long
SIZES = [(17, 5, 7, 1, 6), (40, 12, 8, 1, 11), (23, 6, 9, 2, 8), (60, 4, 16, 2, 13)]
ROUTES = ["gram", "materialize", "auto"]


def _data(vocab: int, seq_len: int, n: int = 60, seed: int = 0) -> torch.Tensor:
    """Random token windows [n, T+1], some ending in PAD targets (padded tails)."""
    gen = torch.Generator().manual_seed(seed)
    data = torch.randint(1, vocab, (n, seq_len + 1), generator=gen)
    for i in range(0, n, 3):
        data[i, seq_len // 2 + i % 3 :] = PAD_ID
    return data


def _setup(train: torch.Tensor, size: tuple, *, clip: float = 1.0, noise: float = 0.0, batch: int = 8,
           seed: int = 0, dropout: float = 0.0) -> EngineSetup:
    vocab, embed, hidden, layers, _ = size
    return EngineSetup(
        train=train, model_config=ModelConfig(vocab, embed, hidden, layers, dropout), pad_id=PAD_ID,
        batch_size=batch, lr=0.05, optimizer="sgd", clip=clip, noise_multiplier=noise,
        sample_rate=sample_rate_for(len(train), batch), seed=seed, device=torch.device("cpu"),
        dp_randomness_seed=seed,  # tests only: the trainer always draws secret DP randomness
    )


def _opacus_clipped_sum(engine: OpacusGaussianEngine, batch: torch.Tensor):
    """The reference: Opacus's own per-sample gradients, clipped and summed (p.summed_grad), no noise."""
    engine.gsm.train()
    engine.optimizer.zero_grad(set_to_none=True)
    loss = engine.batch_loss(engine.gsm, batch)
    (loss.nan_to_num(0.0) * 0.0 if len(batch) == 0 else loss).backward()
    engine.optimizer.clip_and_accumulate()
    sums = {name.removeprefix("_module."): p.summed_grad for name, p in engine.gsm.named_parameters()}
    return sums, engine.optimizer.last_norms


def _brute_force(model, batch: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """Each example's own gradient, from its own backward pass through the fused nn.GRU model."""
    grads = []
    for i in range(len(batch)):
        model.zero_grad()
        logits, _ = model(batch[i : i + 1, :-1])
        sequence_losses(logits, batch[i : i + 1, 1:], PAD_ID).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    return grads


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("route", ROUTES)
def test_clipped_sum_matches_opacus(size, route):
    train = _data(size[0], size[4], seed=sum(size))
    for b in (0, 1, 2, 9):
        batch = train[3 : 3 + b]
        fast = FastGaussianEngine(_setup(train, size))
        fast.route = route
        unclipped = fast.clipped_sum(batch).norms
        # a clip norm between the smallest and the largest per-example norm: some examples clipped
        clip = float(unclipped.median()) if b > 1 else (float(unclipped[0]) * 0.5 if b else 1.0)
        fast = FastGaussianEngine(_setup(train, size, clip=clip))
        fast.route = route
        ref = OpacusGaussianEngine(_setup(train, size, clip=clip))
        got = fast.clipped_sum(batch)
        expected, ref_norms = _opacus_clipped_sum(ref, batch)
        assert set(got.grads) == set(expected)
        for name, value in expected.items():
            torch.testing.assert_close(got.grads[name], value, rtol=1e-4, atol=1e-6, msg=name)
        torch.testing.assert_close(got.norms, ref_norms, rtol=1e-4, atol=1e-6)
        if b > 2:
            assert 0 < int((got.norms > clip).sum()) < b  # both branches of the clip exercised


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("size", SIZES[::2] + SIZES[3:])
def test_norms_and_sum_equal_a_per_example_loop(size, route):
    train = _data(size[0], size[4], seed=1)
    engine = FastGaussianEngine(_setup(train, size))
    model = engine.plain_model().train()
    batch = train[:7]
    per_example = _brute_force(model, batch)
    norms = torch.stack([torch.cat([g.reshape(-1) for g in grads.values()]).norm() for grads in per_example])
    clip = float(norms.sort().values[3])
    result = clipped_gradient_sum(engine.model, batch, PAD_ID, clip, route=route)
    torch.testing.assert_close(result.norms, norms, rtol=1e-4, atol=1e-6)
    for name in per_example[0]:
        expected = sum(min(1.0, clip / (float(n) + 1e-6)) * g[name] for g, n in zip(per_example, norms))
        torch.testing.assert_close(result.grads[name], expected, rtol=1e-4, atol=1e-6, msg=name)
    with torch.no_grad():
        losses = sequence_losses(model(batch[:, :-1])[0], batch[:, 1:], PAD_ID)
    assert float(result.loss) == pytest.approx(float(losses.mean()), rel=1e-5)


def test_dropout_uses_the_same_masks_as_opacus():
    """Dropout around the GRU draws from the global RNG in the same order as the module's forward."""
    size = SIZES[2]
    train = _data(size[0], size[4])
    fast = FastGaussianEngine(_setup(train, size, clip=0.3, dropout=0.4))
    ref = OpacusGaussianEngine(_setup(train, size, clip=0.3, dropout=0.4))
    batch = train[:6]
    torch.manual_seed(5)
    got = fast.clipped_sum(batch)
    torch.manual_seed(5)
    expected, _ = _opacus_clipped_sum(ref, batch)
    for name, value in expected.items():
        torch.testing.assert_close(got.grads[name], value, rtol=1e-4, atol=1e-6, msg=name)
    torch.manual_seed(6)
    assert not torch.allclose(fast.clipped_sum(batch).grads["head.weight"], got.grads["head.weight"])


@pytest.mark.parametrize("layers", [1, 2])
def test_whole_steps_with_noise_match_opacus(layers):
    """Same seeds: the same Poisson batches, the same noise, the same updates, step after step."""
    size = (30, 6, 10, layers, 9)
    train = _data(size[0], size[4], n=50)
    setup = _setup(train, size, clip=0.4, noise=0.8, batch=6, seed=3)
    fast, ref = build_engine("gaussian", "fast", setup), build_engine("gaussian", "opacus", setup)
    assert isinstance(fast, FastGaussianEngine)
    fast_batches, ref_batches = fast.batches(), ref.batches()
    sizes = []
    for _ in range(4):
        batch, groups = next(fast_batches)
        assert groups is None  # example-level: one row, one unit
        torch.testing.assert_close(batch, next(ref_batches)[0])
        sizes.append(len(batch))
        a, b = fast.step(batch), ref.step(batch)
        assert a.batch_size == b.batch_size == len(batch)
        if len(batch):
            assert a.loss == pytest.approx(b.loss, rel=1e-5)
            assert a.frac_clipped == b.frac_clipped
            assert a.median_grad_norm == pytest.approx(b.median_grad_norm, rel=1e-4)
        ref_params = {n.removeprefix("_module."): p for n, p in ref.module.named_parameters()}
        for name, p in fast.module.named_parameters():
            torch.testing.assert_close(p.grad, ref_params[name].grad, rtol=1e-4, atol=1e-6, msg=name)
            torch.testing.assert_close(p, ref_params[name], rtol=1e-4, atol=1e-6, msg=name)
    assert len(set(sizes)) > 1  # Poisson: batch sizes vary
    torch.testing.assert_close(fast.plain_model().state_dict(), ref.plain_model().state_dict(),
                               rtol=1e-4, atol=1e-6)


def test_noise_std_is_sigma_times_clip_on_an_empty_batch():
    sigma, clip = 1.7, 0.5
    size = (200, 16, 24, 1, 8)
    train = _data(size[0], size[4], n=100)
    engine = FastGaussianEngine(_setup(train, size, clip=clip, noise=sigma, batch=10))
    before = {n: p.detach().clone() for n, p in engine.module.named_parameters()}
    stats = engine.step(train[:0])  # an empty Poisson batch: noise is still added, the step taken
    assert stats.loss is None and stats.batch_size == 0
    assert stats.frac_clipped is None and stats.median_grad_norm is None
    noise = torch.cat([p.grad.reshape(-1) for p in engine.module.parameters()]) * engine.expected_batch_size
    assert noise.numel() > 5000
    assert float(noise.std()) == pytest.approx(sigma * clip, rel=0.05)
    assert abs(float(noise.mean())) < 0.05 * sigma * clip
    assert all(not torch.equal(p, before[n]) for n, p in engine.module.named_parameters())


def test_step_stats_report_the_batch():
    size = SIZES[1]
    train = _data(size[0], size[4])
    engine = FastGaussianEngine(_setup(train, size, clip=1.0))
    batch = train[:5]
    norms = engine.clipped_sum(batch).norms
    engine = FastGaussianEngine(_setup(train, size, clip=float(norms.median())))
    model = engine.plain_model()
    with torch.no_grad():
        expected_loss = float(sequence_losses(model(batch[:, :-1])[0], batch[:, 1:], PAD_ID).mean())
    stats = engine.step(batch)
    assert stats.batch_size == 5
    assert stats.loss == pytest.approx(expected_loss, rel=1e-5)
    assert stats.frac_clipped == pytest.approx(2 / 5)  # the two norms above the median
    assert stats.median_grad_norm == pytest.approx(float(norms.median()), rel=1e-5)


def test_setup_is_checked_like_the_reference():
    size = SIZES[0]
    train = _data(size[0], size[4])
    setup = _setup(train, size)
    with pytest.raises(AssertionError, match="sample rate"):
        FastGaussianEngine(EngineSetup(**{**setup.__dict__, "sample_rate": 8 / len(train)}))
    with pytest.raises(ValueError, match="noise multiplier"):
        FastGaussianEngine(EngineSetup(**{**setup.__dict__, "noise_multiplier": None}))
    engine = FastGaussianEngine(setup)
    assert engine.loader.sample_rate == setup.sample_rate
    assert engine.guarantee == "dp"
    assert set(engine.module.state_dict()) == set(engine.plain_model().state_dict())

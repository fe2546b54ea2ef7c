"""Private decoders: the probability ratio of any token under two models never exceeds e^ε."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from dpcore.decoding import DecoderSpec, advanced_composition, decode, text_guarantee
from dpcore.errors import DPCoreError
from dpcore.model import ModelConfig, build_model


def _max_log_ratio(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.max(np.abs(np.log(p) - np.log(q))))


def _noisy_max_probs(u: np.ndarray, b: float) -> np.ndarray:
    """Exact P(argmax(u + Laplace(b)) = i) by numerical integration (an independent computation)."""
    x = np.linspace(-60 * b + u.min(), 60 * b + u.max(), 400_001)
    dx = x[1] - x[0]
    pdf = np.exp(-np.abs(x[None, :] - u[:, None]) / b) / (2 * b)
    z = x[None, :] - u[:, None]
    cdf = np.where(z < 0, 0.5 * np.exp(np.minimum(z, 0) / b), 1 - 0.5 * np.exp(-np.maximum(z, 0) / b))
    out = []
    for i in range(len(u)):
        others = np.prod(np.delete(cdf, i, axis=0), axis=0)
        out.append(float((pdf[i] * others).sum() * dx))
    return np.array(out)


def _adversarial_pairs(v: int, bound: float, rng: np.random.Generator):
    corners = [np.array(c, dtype=float) * bound for c in itertools.product([-1, 1], repeat=v)]
    pairs = [(a, b) for a in corners for b in corners]
    pairs += [(rng.uniform(-3 * bound, 3 * bound, v), rng.uniform(-3 * bound, 3 * bound, v)) for _ in range(50)]
    return pairs


def test_exponential_mechanism_ratio_is_bounded_and_tight():
    spec = DecoderSpec("exponential", logit_bound=1.0, temperature=1.0)
    eps = spec.epsilon_per_token(vocab_size=6)
    assert eps == pytest.approx(4.0)
    rng = np.random.default_rng(0)
    worst = max(_max_log_ratio(spec.distribution(torch.tensor(a)).numpy(), spec.distribution(torch.tensor(b)).numpy())
                for a, b in _adversarial_pairs(6, 1.0, rng))
    assert worst <= eps + 1e-9
    big = DecoderSpec("exponential", logit_bound=1.0, temperature=1.0)
    a = torch.tensor([1.0] + [-1.0] * 199)
    ratio = _max_log_ratio(big.distribution(a).numpy(), big.distribution(-a).numpy())
    assert ratio >= 0.95 * eps  # the bound is reached in the limit of a large vocabulary


def test_noisy_max_ratio_is_bounded_and_comes_close():
    spec = DecoderSpec("noisy-max", logit_bound=1.0, noise_scale=1.0)
    eps = spec.epsilon_per_token(vocab_size=5)
    assert eps == pytest.approx(4.0)
    u = np.array([1.0, -1.0, -1.0, -1.0, -1.0])
    worst = _max_log_ratio(_noisy_max_probs(u, 1.0), _noisy_max_probs(-u, 1.0))
    assert worst <= eps
    assert worst >= 0.75 * eps
    rng = np.random.default_rng(1)
    for _ in range(10):
        a, b = np.clip(rng.normal(0, 3, 3), -1, 1), np.clip(rng.normal(0, 3, 3), -1, 1)
        assert _max_log_ratio(_noisy_max_probs(a, 1.0), _noisy_max_probs(b, 1.0)) <= eps


def test_noisy_max_sampler_matches_its_exact_distribution():
    spec = DecoderSpec("noisy-max", logit_bound=1.0, noise_scale=1.0)
    u = torch.tensor([1.0, 0.2, -1.0])
    gen = torch.Generator().manual_seed(0)
    counts = np.bincount([spec.pick(u, gen) for _ in range(6000)], minlength=3) / 6000
    np.testing.assert_allclose(counts, _noisy_max_probs(u.numpy().astype(float), 1.0), atol=0.025)


def test_mixing_ratio_is_bounded_and_tight():
    v, lam = 10, 0.3
    spec = DecoderSpec("mix", mix=lam, temperature=1.0)
    eps = spec.epsilon_per_token(vocab_size=v)
    assert eps == pytest.approx(math.log(1 + lam * v / (1 - lam)))
    rng = np.random.default_rng(2)
    for _ in range(200):
        a, b = torch.tensor(rng.normal(0, 20, v)), torch.tensor(rng.normal(0, 20, v))
        assert _max_log_ratio(spec.distribution(a).numpy(), spec.distribution(b).numpy()) <= eps + 1e-9
    a = torch.full((v,), -80.0)
    a[0] = 80.0
    b = torch.full((v,), -80.0)
    b[1] = 80.0
    assert _max_log_ratio(spec.distribution(a).numpy(), spec.distribution(b).numpy()) == pytest.approx(eps, rel=1e-6)


def test_naive_logits_has_no_bound_and_claims_nothing():
    spec = DecoderSpec("naive-logits", noise_scale=1.0)
    assert spec.epsilon_per_token(50) is None and not spec.has_guarantee
    # unclipped logits: the same noise leaves the ratio unbounded as logits grow
    for scale in (5.0, 20.0):
        u = np.array([scale, -scale, -scale])
        assert _max_log_ratio(_noisy_max_probs(u, 1.0), _noisy_max_probs(-u, 1.0)) > scale / 2


def test_decode_tracks_epsilon_token_by_token(tiny_data):
    model = build_model(ModelConfig(tiny_data.tokenizer.vocab_size, 8, 12, 1), seed=0).eval()
    spec = DecoderSpec("exponential", logit_bound=0.5, temperature=1.0)
    out = decode(model, tiny_data.tokenizer, "my ", spec, max_tokens=20, seed=0)
    n = len(out.epsilon_basic)
    assert 1 <= n <= 20
    assert out.epsilon_basic == pytest.approx([2.0 * (i + 1) for i in range(n)])
    assert out.epsilon_advanced[-1] == pytest.approx(advanced_composition(2.0, n, 1e-6))
    assert out.epsilon == min(out.epsilon_basic[-1], out.epsilon_advanced[-1])
    assert out.text.startswith("my ")
    again = decode(model, tiny_data.tokenizer, "my ", spec, max_tokens=20, seed=0)
    assert again.text == out.text
    # non-private model: the decoder's ε is what holds; a DP-trained model's ε caps it
    assert text_guarantee(out, spec, {"epsilon": None}).epsilon == out.epsilon
    assert text_guarantee(out, spec, {"epsilon": 1.5, "delta": 1e-5}).epsilon == min(1.5, out.epsilon)
    plain = DecoderSpec("plain")
    assert text_guarantee(out, plain, {"epsilon": None}).epsilon is None
    assert text_guarantee(out, plain, {"epsilon": 3.0, "delta": 1e-5}).epsilon == 3.0
    assert text_guarantee(out, DecoderSpec("naive-logits"), {"epsilon": 3.0, "delta": 1e-5}).epsilon is None


@pytest.mark.parametrize("kwargs", [{"name": "magic"}, {"name": "mix", "mix": 1.0}, {"logit_bound": 0.0},
                                    {"temperature": -1.0}, {"noise_scale": float("nan")}])
def test_bad_decoder_settings_are_refused(kwargs):
    with pytest.raises(DPCoreError):
        DecoderSpec(**kwargs).validate()

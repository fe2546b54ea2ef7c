"""Private decoders: the probability ratio of any token under two models never exceeds e^ε."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from dpcore.data.tokenizer import EOS_ID
from dpcore.errors import DPCoreError
from dpcore.privacy.composition import advanced_composition, ledger_statements, ledger_summary, text_guarantee
from dpcore.privacy.decoders import DecoderSpec
from dpcore.training.generate import decode
from dpcore.training.model import ModelConfig, build_model
from dpcore.training.result import RunResult


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
    assert 1 <= n <= 20 and out.picks == n
    assert out.epsilon_basic == pytest.approx([2.0 * (i + 1) for i in range(n)])
    assert out.epsilon_advanced[-1] == pytest.approx(advanced_composition(2.0, n, 1e-6))  # prefix of n choices
    assert out.epsilon_basic_total == out.epsilon_basic[-1]
    basic, advanced = out.statements()
    assert (basic.epsilon, basic.delta) == (out.epsilon_basic[-1], 0.0)
    # the whole text's advanced figure is at the 20 choices charged, whatever length it drew
    assert (advanced.epsilon, advanced.delta) == (pytest.approx(advanced_composition(2.0, 20, 1e-6)), 1e-6)
    assert out.text.startswith("my ")


def test_text_guarantee_lists_statements_and_never_takes_a_min(tiny_data):
    model = build_model(ModelConfig(tiny_data.tokenizer.vocab_size, 8, 12, 1), seed=0).eval()
    spec = DecoderSpec("exponential", logit_bound=0.5, temperature=1.0)
    out = decode(model, tiny_data.tokenizer, "my ", spec, max_tokens=20)
    # non-private model: only the decoder's statements hold
    g = text_guarantee(out, spec, RunResult.from_dict({"epsilon": None}))
    assert [(s.epsilon, s.delta) for s in g.statements] == [(out.epsilon_basic[-1], 0.0),
                                                            (out.epsilon_advanced_total, 1e-6)]
    assert g.epsilon == out.epsilon_basic[-1]  # the headline: the decoder's basic composition
    # DP-trained model: the training pair is shown beside the decoder's, none replaces another
    dp = RunResult.from_dict({"epsilon": 1.5, "delta": 1e-5, "epsilon_replace_one": 2.9,
                              "neighbours": "add or remove one training sequence; N treated as public"})
    g = text_guarantee(out, spec, dp)
    pairs = [(s.label, s.epsilon, s.delta) for s in g.statements]
    assert pairs[:2] == [(s.label, s.epsilon, s.delta) for s in out.statements()]
    assert ("training", 1.5, 1e-5) in pairs and ("training", 2.9, 1e-5) in pairs
    assert g.epsilon == out.epsilon_basic[-1] != 1.5  # not min(training ε, decoder ε)
    assert any("add or remove one training sequence" in s.relation for s in g.statements)
    assert all("any change to the model" in s.relation for s in g.statements[:2])
    assert "none is combined" in g.explanation
    plain = DecoderSpec("plain")
    assert text_guarantee(out, plain, RunResult.from_dict({"epsilon": None})).epsilon is None
    assert text_guarantee(out, plain, RunResult.from_dict({"epsilon": None})).statements == ()
    assert text_guarantee(out, plain, RunResult.from_dict({"epsilon": 3.0, "delta": 1e-5})).epsilon == 3.0
    naive = text_guarantee(out, DecoderSpec("naive-logits"), RunResult.from_dict({"epsilon": 3.0, "delta": 1e-5}))
    assert naive.epsilon is None and naive.statements == () and "NO privacy guarantee" in naive.explanation


@pytest.mark.parametrize("spec", [DecoderSpec("exponential", logit_bound=0.5, temperature=1.0),
                                  DecoderSpec("noisy-max", logit_bound=0.5, noise_scale=2.0),
                                  DecoderSpec("mix", mix=0.3, temperature=1.0)])
def test_private_decoders_ignore_the_seed_and_draw_secret_randomness(tiny_data, spec, monkeypatch):
    """Same prompt, model and seed: a private decoder still draws afresh (its ε needs an unknown draw)."""
    model = build_model(ModelConfig(tiny_data.tokenizer.vocab_size, 8, 12, 1), seed=0).eval()
    # B = 0.5: every token keeps probability ≥ e^-1/V, so 40 draws from a ~30-token vocabulary almost
    # surely differ somewhere (equal texts have probability far below 1e-9)
    texts = {decode(model, tiny_data.tokenizer, "my ", spec, max_tokens=40, seed=7).text for _ in range(3)}
    assert len(texts) >= 2
    # the secret seed comes from the OS's CSPRNG, once per text, and is not kept on the output
    import dpcore.privacy.decoders as decoding

    drawn = []
    real = decoding.secrets.randbits
    monkeypatch.setattr(decoding.secrets, "randbits", lambda k: drawn.append(k) or real(k))
    out = decode(model, tiny_data.tokenizer, "my ", spec, max_tokens=5, seed=7)
    assert drawn == [63]
    assert "seed" not in vars(out)


@pytest.mark.parametrize("name", ["plain", "naive-logits"])
def test_plain_and_naive_decoders_are_reproducible_from_the_seed(tiny_data, name):
    model = build_model(ModelConfig(tiny_data.tokenizer.vocab_size, 8, 12, 1), seed=0).eval()
    spec = DecoderSpec(name, temperature=1.0, noise_scale=2.0)
    a = decode(model, tiny_data.tokenizer, "my ", spec, max_tokens=40, seed=7)
    b = decode(model, tiny_data.tokenizer, "my ", spec, max_tokens=40, seed=7)
    c = decode(model, tiny_data.tokenizer, "my ", spec, max_tokens=40, seed=8)
    assert a.text == b.text and a.text != c.text
    assert spec.seedable and not DecoderSpec("mix").seedable


def test_a_text_that_ends_early_reports_advanced_composition_at_the_charged_length(tiny_data):
    """The end of a text depends on what it drew: its advanced figure must not shrink with it."""
    model = build_model(ModelConfig(tiny_data.tokenizer.vocab_size, 8, 12, 1), seed=0).eval()
    with torch.no_grad():  # the end-of-record id wins every draw: clipped at B = 20, the others get e⁻⁴⁰
        model.head.weight.zero_()
        model.head.bias.fill_(-100.0)
        model.head.bias[EOS_ID] = 100.0
    spec = DecoderSpec("exponential", logit_bound=20.0, temperature=1.0)  # ε per token 4B/T = 80
    out = decode(model, tiny_data.tokenizer, "my ", spec, max_tokens=30)
    assert out.picks == 1 and out.tokens == []  # stopped at the first choice
    assert out.epsilon_basic_total == 80.0  # basic: the choices made (a pointwise bound, valid)
    assert out.epsilon_advanced == [pytest.approx(advanced_composition(80.0, 1, 1e-6))]  # a 1-choice prefix
    _, advanced = out.statements()
    assert advanced.epsilon == pytest.approx(advanced_composition(80.0, 30, 1e-6))
    assert advanced.epsilon > advanced_composition(80.0, 1, 1e-6) * 10  # not the figure for one choice
    assert "30 charged choices" in advanced.label
    line = text_guarantee(out, spec, RunResult.from_dict({"epsilon": None})).lines[0]
    assert f"({advanced.epsilon:.3g}, 1e-06)-DP by advanced composition of the 30 choices charged" in line


def test_advanced_composition_refuses_a_meaningless_delta():
    assert advanced_composition(0.1, 0, 1e-6) == 0.0
    for bad in (0.0, 1.0, -1e-6):
        with pytest.raises(DPCoreError):
            advanced_composition(0.1, 10, bad)


def test_the_ledger_states_basic_composition_alone():
    counts = [(0.1, 80), (0.1, 40), (0.05, 200)]
    (basic,) = ledger_statements(counts)
    assert (basic.epsilon, basic.delta) == (pytest.approx(0.1 * 120 + 0.05 * 200), 0.0)
    assert "any change to the model" in basic.relation
    assert ledger_statements([])[0].epsilon == 0.0


def test_ledger_summary_makes_no_advanced_claim():
    class Entry:
        def __init__(self, eps: float, tokens: int) -> None:
            self.epsilon_per_token, self.tokens = eps, tokens

    class State:
        entries = [Entry(0.01, 50_000), Entry(0.01, 50_000), Entry(0.5, 0)]
        budget, budget_is_default = 2000.0, True

    summary = ledger_summary(State())
    assert (summary.texts, summary.tokens) == (2, 100_000)
    assert summary.basic.epsilon == pytest.approx(1000.0) and summary.basic.delta == 0.0
    assert summary.remaining == pytest.approx(1000.0)
    assert not hasattr(summary, "advanced")
    head, pairs, budget = summary.lines()
    assert "(ε = 1e+03, δ = 0)" in pairs and "no advanced composition is shown over the ledger" in pairs
    assert "δ′" not in " ".join((head, pairs, budget))  # no statement at any δ′ > 0


@pytest.mark.parametrize("kwargs", [{"name": "magic"}, {"name": "mix", "mix": 1.0}, {"logit_bound": 0.0},
                                    {"temperature": -1.0}, {"noise_scale": float("nan")}])
def test_bad_decoder_settings_are_refused(kwargs):
    with pytest.raises(DPCoreError):
        DecoderSpec(**kwargs).validate()

"""The Samples page's operating points, and texts that never show U+FFFD, whatever the model prefers."""

from __future__ import annotations

import math

import pytest
import torch

from dpcore.data.tokenizer import EOS_ID, PAD_ID, UNK_ID, ByteTokenizer, CharTokenizer
from dpcore.errors import DPCoreError
from dpcore.privacy.decoders import DECODER_CHOICES, OPERATING_POINTS, PRIVATE, READABLE, DecoderSpec, mix_weight_for
from dpcore.runs.store import DEFAULT_INFERENCE_BUDGET
from dpcore.training import model as gru
from dpcore.training.generate import decode, sample_texts
from dpcore.training.model import GRULanguageModel, ModelConfig
from dpcore.training.tokenfilter import REPLACEMENT_CHAR, TokenFilter

BYTE = 3  # ByteTokenizer: id = byte + 3


# ------------------------------------------------------------------------------ operating points
def test_two_operating_points_with_the_promised_epsilon_per_text():
    assert set(OPERATING_POINTS) == {"readable", "private"}
    assert DECODER_CHOICES[:3] == ("plain", "readable", "private")
    assert READABLE.epsilon_per_text == 128.0 and PRIVATE.epsilon_per_text == 1.0
    assert READABLE.max_tokens == PRIVATE.max_tokens  # same length: only ε differs between them
    for vocab in (16, 78, 259, 2000):  # char (tests, built-in), byte, word vocabularies
        for point in OPERATING_POINTS.values():
            spec = point.spec(vocab)
            eps0 = spec.epsilon_per_token(vocab)
            assert spec.name == "mix" and spec.has_guarantee
            assert point.epsilon_per_token * (1 - 1e-12) <= eps0 <= point.epsilon_per_token  # never above
            assert eps0 * point.max_tokens <= point.epsilon_per_text


def test_the_default_budget_affords_one_readable_text_and_not_two():
    assert READABLE.epsilon_per_text <= DEFAULT_INFERENCE_BUDGET < 2 * READABLE.epsilon_per_text
    assert PRIVATE.epsilon_per_text <= DEFAULT_INFERENCE_BUDGET - READABLE.epsilon_per_text


def test_mix_weight_inverts_the_epsilon_of_mix():
    for eps, vocab in ((8.0, 78), (0.0625, 259), (3.0, 10)):
        lam = mix_weight_for(eps, vocab)
        assert math.log1p(lam * vocab / (1 - lam)) == pytest.approx(eps, rel=1e-12)
    with pytest.raises(DPCoreError):
        mix_weight_for(0.0, 78)


# ------------------------------------------------------------------------------ no U+FFFD
def _model_preferring(vocab: int, favourites: dict[int, float]) -> GRULanguageModel:
    """A model whose next-token logits ignore the input: 0 everywhere but ``favourites``."""
    model = GRULanguageModel(ModelConfig(vocab, 4, 8, 1))
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        for i, logit in favourites.items():
            model.head.bias[i] = logit
    return model.eval()


def _invalid_byte_model() -> GRULanguageModel:
    """Prefers UNK, lone continuation bytes and bytes that never occur in UTF-8 (C0, FF), then a
    three-byte lead (E2) followed by ASCII: all invalid or truncated sequences."""
    prefer = {UNK_ID: 9.0, PAD_ID: 9.0, 0x80 + BYTE: 9.0, 0xBF + BYTE: 9.0, 0xC0 + BYTE: 9.0, 0xFF + BYTE: 9.0,
              0xE2 + BYTE: 8.0, ord("a") + BYTE: 7.0}
    return _model_preferring(ByteTokenizer().vocab_size, prefer)


ALL_DECODERS = [DecoderSpec("plain", temperature=0.5), DecoderSpec("exponential", logit_bound=8.0, temperature=0.5),
                DecoderSpec("noisy-max", logit_bound=8.0, noise_scale=0.5), DecoderSpec("mix", mix=0.99),
                DecoderSpec("naive-logits", noise_scale=0.5), READABLE.spec(259), PRIVATE.spec(259)]


def test_the_constructed_model_does_emit_invalid_utf8_without_the_filter():
    """The old plain path (PAD and UNK masked only) shows U+FFFD for this model: the test below can fail."""
    tok = ByteTokenizer()
    gen = torch.Generator().manual_seed(0)
    ids = gru.generate(_invalid_byte_model(), [EOS_ID], max_tokens=40, temperature=1.0, generator=gen)
    assert REPLACEMENT_CHAR in tok.decode(ids)


@pytest.mark.parametrize("spec", ALL_DECODERS, ids=lambda s: f"{s.name}-{s.mix:.3g}")
def test_no_decoder_shows_a_replacement_character(spec):
    tok, model = ByteTokenizer(), _invalid_byte_model()
    written = 0
    for prompt in ("", "ROMEO:", "héllo "):
        for seed in range(5):
            out = decode(model, tok, prompt, spec, max_tokens=60, seed=seed)
            assert REPLACEMENT_CHAR not in out.text and out.text.startswith(prompt)
            assert all(REPLACEMENT_CHAR not in t for t in out.tokens)
            written += len(out.text) > len(prompt)
    assert written >= 10  # they did write (an EOS first is rare even for the near-uniform private point)


def test_plain_samples_show_no_replacement_character_and_repeat_with_the_seed():
    tok, model = ByteTokenizer(), _invalid_byte_model()
    texts = sample_texts(model, tok, "ROMEO:", n=4, max_tokens=50, temperature=1.0, seed=3)
    assert all(REPLACEMENT_CHAR not in t and t.startswith("ROMEO:") for t in texts)
    assert texts == sample_texts(model, tok, "ROMEO:", n=4, max_tokens=50, temperature=1.0, seed=3)
    assert any("\u2000" <= ch <= "\u2fff" for t in texts for ch in t)  # E2-led characters, completed


def test_a_character_vocabulary_holding_u_fffd_never_emits_it():
    tok = CharTokenizer.fit(["ab\ufffdc"])  # an old checkpoint's vocabulary, fitted on text with U+FFFD
    bad = tok.stoi["\ufffd"]
    model = _model_preferring(tok.vocab_size, {bad: 12.0, UNK_ID: 12.0})
    for spec in ALL_DECODERS[:5]:
        out = decode(model, tok, "a", spec, max_tokens=30, seed=1)
        assert REPLACEMENT_CHAR not in out.text
    assert not TokenFilter(tok).allowed()[[PAD_ID, UNK_ID, bad]].any()


def test_the_byte_filter_only_ever_allows_valid_utf8():
    """A random walk through the allowed ids decodes strictly (a truncated last character aside)."""
    tok = ByteTokenizer()
    gen = torch.Generator().manual_seed(0)
    filt = TokenFilter(tok)
    data = bytearray()
    for _ in range(5000):
        allowed = filt.allowed()
        assert not allowed[PAD_ID] and not allowed[UNK_ID] and not allowed[0x0A + BYTE]
        choice = int(torch.multinomial(allowed.float(), 1, generator=gen).item())
        if choice == EOS_ID:
            data += b"\n"
            continue
        data.append(choice - BYTE)
        filt.push(choice)
    text = bytes(data).decode("utf-8", errors="strict") if filt.allowed()[EOS_ID] else \
        bytes(data).decode("utf-8", errors="ignore")
    assert any(ord(ch) > 0xFFFF for ch in text) and any(0x80 <= ord(ch) <= 0x7FF for ch in text)
    # inside a character, only its continuations (never EOS): E0 needs A0-BF next, ED 80-9F, F4 80-8F
    for lead, lo, hi in ((0xE0, 0xA0, 0xBF), (0xED, 0x80, 0x9F), (0xF4, 0x80, 0x8F), (0xC3, 0x80, 0xBF)):
        filt = TokenFilter(tok)
        filt.push(lead + BYTE)
        ok = [i - BYTE for i in torch.nonzero(filt.allowed()).flatten().tolist()]
        assert ok == list(range(lo, hi + 1))


def test_the_filter_keeps_the_mix_floor_on_allowed_ids_and_the_epsilon_bound():
    """Restricted to a public set of ids, mix's ratio between two models stays within its ε (full V)."""
    vocab, lam = 12, 0.9
    spec = DecoderSpec("mix", mix=lam)
    allowed = torch.ones(vocab, dtype=torch.bool)
    allowed[[0, 1, 5]] = False
    eps = spec.epsilon_per_token(vocab)
    rng = torch.Generator().manual_seed(0)
    for _ in range(200):
        a, b = torch.randn(vocab, generator=rng) * 30, torch.randn(vocab, generator=rng) * 30
        p, q = spec.distribution(a, allowed), spec.distribution(b, allowed)
        assert float(p[~allowed].sum()) == 0.0 and float(p.sum()) == pytest.approx(1.0)
        ratio = (p[allowed].log() - q[allowed].log()).abs().max().item()
        assert ratio <= eps + 1e-6


def test_the_monitors_training_samples_use_the_same_filtered_sampler():
    """The trainer's per-evaluation samples (shown on the monitor and in reports) cannot show "�" either."""
    import dpcore.training.loop

    assert dpcore.training.loop.sample_texts is sample_texts

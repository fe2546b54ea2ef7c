"""Text from a stored run's model: plain samples, private decoding and the inference ledger."""

from __future__ import annotations

import pytest

from dpcore.errors import DPCoreError
from dpcore.privacy.decoders import DecoderSpec
from dpcore.runs import inference
from dpcore.runs.store import InferenceBudgetExceeded, RunStore
from tests.apptest_support import TINY, write_run


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path)


def test_decode_text_private_plain_and_naive(store):
    dp = write_run(store, "o", checkpoint=True)
    base = write_run(store, "o", TINY.replace(mechanism="none"), checkpoint=True)
    spec = DecoderSpec("exponential", 2.0, 8.0)
    with pytest.raises(DPCoreError, match="charged to a viewer"):
        inference.decode_text(store, dp, "he", spec, viewer=None, max_tokens=5)
    out, g = inference.decode_text(store, dp, "he", spec, viewer="v", max_tokens=5, seed=1)
    assert out.epsilon_per_token == 1.0 and g.epsilon == out.epsilon_basic[-1] == out.picks
    assert [s.label for s in g.statements][-1] == "training" and g.statements[-1].epsilon == 2.5
    assert len(out.epsilon_basic) == len(out.epsilon_advanced) >= 1
    (entry,) = store.ledger(dp.id).entries  # charged up to 5 tokens, settled to the tokens drawn
    assert (entry.viewer, entry.tokens, entry.epsilon) == ("v", out.picks, float(out.picks))
    store.set_inference_budget(dp.id, "o", store.ledger(dp.id).spent + 4.0)
    with pytest.raises(InferenceBudgetExceeded):  # up to 5 tokens × 1 > 4 left: refused before decoding
        inference.decode_text(store, dp, "he", spec, viewer="v", max_tokens=5)
    assert len(store.ledger(dp.id).entries) == 1
    _, g = inference.decode_text(store, base, "he", DecoderSpec("plain"), viewer=None, max_tokens=5)
    assert g.epsilon is None
    _, g = inference.decode_text(store, dp, "he", DecoderSpec("naive-logits"), viewer=None, max_tokens=5)
    assert g.epsilon is None and "NO privacy guarantee" in g.explanation
    assert len(store.ledger(dp.id).entries) == 1  # neither plain nor naive-logits is charged


def test_prompts_are_bounded_and_encoded_once(store, monkeypatch):
    run = write_run(store, "o", checkpoint=True)
    with pytest.raises(DPCoreError, match="the limit is 500"):
        inference.generate_samples(store, run, "x" * (inference.MAX_PROMPT_CHARS + 1), viewer="o", n=2, max_tokens=3)
    with pytest.raises(DPCoreError, match="the limit is 500"):
        inference.decode_text(store, run, "x" * 10_000, DecoderSpec("plain"), viewer="o", max_tokens=3)
    import dpcore.training.model as model_mod

    primes = []
    original = model_mod.prime
    monkeypatch.setattr(model_mod, "prime", lambda m, ids: primes.append(len(ids)) or original(m, ids))
    texts = inference.generate_samples(store, run, "hello", viewer="o", n=4, max_tokens=3, seed=1)
    assert len(texts) == 4 and primes == [6]  # [EOS] + 5 characters, run through the model once for 4 samples

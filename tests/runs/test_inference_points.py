"""Operating points on a stored model: the default budget affords a readable text, the ledger keeps
exactly the ε each text shows, and no text from a stored model shows U+FFFD."""

from __future__ import annotations

import pytest

from dpcore.data.tokenizer import ByteTokenizer
from dpcore.privacy.decoders import PRIVATE, READABLE, DecoderSpec
from dpcore.runs import inference
from dpcore.runs.store import DEFAULT_INFERENCE_BUDGET, InferenceBudgetExceeded, RunStore
from dpcore.training.checkpoint import save_checkpoint
from dpcore.training.tokenfilter import REPLACEMENT_CHAR
from tests.apptest_support import TINY, write_run
from tests.training.test_decoding_points import _invalid_byte_model


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path)


def test_a_readable_text_fits_the_default_budget_and_the_ledger_keeps_what_it_shows(store, monkeypatch):
    run = write_run(store, "o", checkpoint=True)
    assert store.ledger(run.id).budget == DEFAULT_INFERENCE_BUDGET  # nobody set one
    charged = []
    real = store.charge_inference
    monkeypatch.setattr(store, "charge_inference",
                        lambda *a: charged.append(a[3] * a[4]) or real(*a))  # ε₀ × max tokens, before decoding
    out, guarantee = inference.decode_point(store, run, "he", READABLE, viewer="v")
    assert charged and charged[0] <= READABLE.epsilon_per_text
    assert out.epsilon_per_token == pytest.approx(8.0) and out.epsilon_per_token <= 8.0
    (entry,) = store.ledger(run.id).entries
    assert entry.tokens == out.picks <= READABLE.max_tokens
    assert entry.epsilon == out.epsilon_basic_total == guarantee.epsilon  # exactly what the text shows
    assert entry.decoder == "mix" and REPLACEMENT_CHAR not in out.text
    assert inference.epsilon_per_text(store, run, inference.point_spec(store, run, READABLE), 16) == \
        pytest.approx(128.0)


def test_after_one_full_readable_text_the_default_budget_refuses_another_but_not_a_private_one(store):
    run = write_run(store, "o", checkpoint=True)
    spec = inference.point_spec(store, run, READABLE)
    eps0 = spec.epsilon_per_token(16)
    store.charge_inference(run.id, "someone", "mix", eps0, READABLE.max_tokens)  # a readable text, in full
    with pytest.raises(InferenceBudgetExceeded, match="ask for fewer tokens"):
        inference.decode_point(store, run, "he", READABLE, viewer="v")
    for _ in range(3):
        out, _ = inference.decode_point(store, run, "he", PRIVATE, viewer="v")
        assert out.epsilon_basic_total <= PRIVATE.epsilon_per_text
    ledger = inference.ledger(store, run)
    assert ledger.texts == 4 and ledger.basic.epsilon <= READABLE.epsilon_per_text + 3 * PRIVATE.epsilon_per_text


def test_texts_from_a_stored_byte_model_never_show_u_fffd(store):
    run = write_run(store, "o", TINY.replace(mechanism="none"))
    model = _invalid_byte_model()
    store.run_dir(run.id).mkdir(parents=True, exist_ok=True)
    path = store.run_dir(run.id) / "model.pt"
    save_checkpoint(path, model.state_dict(), model.cfg, ByteTokenizer(), TINY.to_dict(), {})
    store.add_artifact(run.id, "checkpoint", path)
    texts = inference.generate_samples(store, run, "ROMEO:", viewer="o", n=5, max_tokens=40, temperature=1.0, seed=0)
    assert len(texts) == 5 and all(REPLACEMENT_CHAR not in t for t in texts)
    out, _ = inference.decode_point(store, run, "ROMEO:", READABLE, viewer="v")
    assert REPLACEMENT_CHAR not in out.text
    for spec in (DecoderSpec("naive-logits", noise_scale=0.5), DecoderSpec("exponential", 1.0, 64.0)):
        out, _ = inference.decode_text(store, run, "ROMEO:", spec, viewer="v", max_tokens=30)
        assert REPLACEMENT_CHAR not in out.text

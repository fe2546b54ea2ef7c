"""What a config means before launch: sizes, calibrated noise, the predicted ε curve and the wording."""

from __future__ import annotations

import math

import pytest

from dpcore.config import TrainConfig
from dpcore.config.presets import (
    EPSILON_CHOICES,
    PRESETS,
    WORKSHOP,
    epsilon_choices,
    get_preset,
    model_size_name,
    per_sequence_presets,
    workshop_presets,
)
from dpcore.errors import ConfigError
from dpcore.privacy.accounting import compute_epsilon
from dpcore.privacy.delta import default_delta
from dpcore.privacy.plan import plan
from dpcore.runs.preview import accept_upload, check, predicted_curve, preview, upload_columns
from dpcore.runs.store import RunStore
from dpcore.views.meaning import (
    delta_sentence,
    epsilon_sentence,
    odds_multiplier,
    preview_delta_sentence,
    preview_epsilon_sentence,
)

FAST = WORKSHOP.replace(max_steps=40)  # small enough for RDP calibration in well under a second


def test_odds_wording_matches_the_explanations_that_work():
    assert odds_multiplier(1) == "2.7"
    assert odds_multiplier(3) == "20"
    assert odds_multiplier(10) == "22,026"
    assert odds_multiplier(50) == "5.2 × 10^21"
    text = epsilon_sentence(1.0, seq_len=32)
    assert text == ("With ε = 1, any one training sequence (a 32-character snippet of someone's text) can change "
                    "the odds of any outcome by at most e^1 ≈ 2.7×.")
    assert "any one person, with all of their messages," in epsilon_sentence(2.0, privacy_unit="one user (user-level)")
    assert "any one person" in epsilon_sentence(2.0, privacy_unit="user")
    assert "person" not in epsilon_sentence(2.0, privacy_unit="sequence")


def test_delta_sentence_sets_delta_against_one_over_n():
    text = delta_sentence(1e-5, 4586, is_default=True)
    assert "small chance that this promise fails" in text and "1 in 4,586" in text and "default" in text
    assert "it is not" in delta_sentence(0.01, 1000)


def test_preview_agrees_with_the_trainers_plan_and_accountant():
    pv = preview(FAST)
    p = plan(FAST, pv.num_train)
    assert FAST.unit == "user" and pv.unit == "user"  # user-level: N counts users
    assert pv.num_train == pv.data["num_train_users"] > 1000
    assert (pv.sample_rate, pv.steps, pv.noise_multiplier, pv.delta) == (
        p.sample_rate, p.steps, p.noise_multiplier, p.delta)
    assert pv.expected_batch_size == p.expected_batch_size
    assert pv.delta == default_delta(pv.num_train)
    steps, eps = zip(*pv.curve)
    assert steps[0] == 0 and steps[-1] == FAST.max_steps and list(eps) == sorted(eps)
    assert pv.final_epsilon == pytest.approx(
        compute_epsilon("gaussian", pv.noise_multiplier, pv.sample_rate, pv.steps, pv.delta, "rdp"))
    assert pv.final_epsilon <= FAST.epsilon
    said = preview_epsilon_sentence(pv, FAST)
    assert "can change the odds" in said and "any one person" in said
    assert "users" in preview_delta_sentence(pv, FAST)


def _upload_like_corpus():
    """A CSV upload: users with short and long records, one of another script (bytes, UNK words)."""
    import csv
    import io
    import random

    from dpcore.data import load_corpus_bytes

    rng = random.Random(7)
    words = "the quick brown fox jumps over lazy dogs while rain falls on quiet streets tonight".split()
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["author", "body"])
    for i in range(300):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 40)))
        writer.writerow([f"user{i % 37}", text + ("" if i % 50 else " 你好, Grüße!")])
    return load_corpus_bytes(buf.getvalue().encode(), "posts.csv", text_column="body", user_column="author")


@pytest.mark.parametrize("tokenizer", ["char", "word"])
@pytest.mark.parametrize("seq_len", [1, 7, 32])
def test_torch_free_summary_equals_the_built_data_summary(tokenizer, seq_len):
    from dpcore.data import build_lm_data, load_corpus, summarize_lm_data

    for corpus in (load_corpus("builtin"), _upload_like_corpus()):
        for split_seed in (0, 3):
            kwargs = dict(tokenizer=tokenizer, seq_len=seq_len, val_fraction=0.15, max_vocab=500,
                          split_seed=split_seed)
            expected = build_lm_data(corpus, **kwargs).summary()
            assert summarize_lm_data(corpus, **kwargs) == expected
            assert list(summarize_lm_data(corpus, **kwargs)) == list(expected)  # same keys, same order


def test_torch_free_summary_refuses_what_the_build_refuses():
    from dpcore.data import Corpus, Record, build_lm_data, summarize_lm_data
    from dpcore.errors import CorpusError

    short = Corpus("short", [Record("a", "x"), Record("b", "y")], [], {})  # one training window
    for corpus, kwargs in ((short, dict(seq_len=16)), (_upload_like_corpus(), dict(seq_len=0)),
                           (_upload_like_corpus(), dict(val_fraction=1.5)),
                           (_upload_like_corpus(), dict(tokenizer="bpe"))):
        with pytest.raises(CorpusError) as built:
            build_lm_data(corpus, **kwargs)
        with pytest.raises(CorpusError) as summarized:
            summarize_lm_data(corpus, **kwargs)
        assert str(summarized.value) == str(built.value)


def test_preview_data_summary_is_the_built_data_summary():
    from dpcore.data import build_lm_data, load_corpus
    from dpcore.runs.preview import data_summary

    built = build_lm_data(load_corpus("builtin"), tokenizer=FAST.tokenizer, seq_len=FAST.seq_len,
                          val_fraction=FAST.val_fraction, max_vocab=FAST.max_vocab)
    assert data_summary(FAST) == built.summary() == preview(FAST).data


def test_preview_of_runs_without_a_guarantee_has_no_epsilon():
    for mechanism, guarantee in (("none", "none"), ("naive", "no-guarantee")):
        pv = preview(FAST.replace(mechanism=mechanism))
        assert pv.guarantee == guarantee and pv.curve == [] and pv.final_epsilon is None
        assert pv.noise_multiplier is None and preview_epsilon_sentence(pv, FAST) == ""


def test_check_puts_each_problem_at_its_field():
    assert check(FAST).errors == {} and check(FAST).preview is not None
    assert set(check(FAST.changed(lr=-1.0, clip=0.0)).errors) == {"lr", "clip"}
    bad_delta = check(FAST.replace(delta=0.01))
    assert set(bad_delta.errors) == {"delta"} and "is not below 1/N" in bad_delta.errors["delta"]
    assert bad_delta.errors["delta"].startswith("δ = 0.01 is not below") and bad_delta.errors["delta"].endswith(".")
    assert check(FAST.changed(lr=-1.0)).errors["lr"].startswith("Learning rate must be")
    assert set(check(FAST.changed(mechanism="laplace", accountant="rdp")).errors) == {"config"}
    missing = check(FAST.replace(corpus="/no/such/file.txt"))
    assert set(missing.errors) == {"corpus"}


def test_unreachable_epsilon_is_reported_at_epsilon():
    checked = check(FAST.replace(epsilon=0.1, max_steps=5000, batch_size=4000, unit="sequence"))
    assert set(checked.errors) == {"epsilon"} and "cannot be reached" in checked.errors["epsilon"]
    assert checked.errors["epsilon"].startswith("ε = 0.1 cannot be reached")


def test_predicted_curve_is_cached_and_increasing():
    a = predicted_curve("gaussian", 1.0, 0.02, 1e-5, "rdp", 100)
    assert a is predicted_curve("gaussian", 1.0, 0.02, 1e-5, "rdp", 100)
    assert [e for _, e in a] == sorted(e for _, e in a)


def test_uploads_are_checked_before_they_are_stored(tmp_path):
    from dpcore.errors import DPCoreError

    store = RunStore(tmp_path)
    with pytest.raises(DPCoreError, match="binary"):
        accept_upload(store, "browser:x", "a.txt", b"\x00\x01 binary")
    with pytest.raises(DPCoreError, match="unsupported file type"):
        accept_upload(store, "browser:x", "a.pdf", b"%PDF")
    assert store.list_uploads("browser:x") == []
    csv = b"user,text\n" + b"\n".join(b"u%d,hello number %d" % (i % 5, i) for i in range(10))
    upload = accept_upload(store, "browser:x", "posts.csv", csv)  # columns are chosen later
    assert upload_columns(upload.path) == ["user", "text"]


def test_presets_are_valid_and_comparable():
    names = [p.name for p in PRESETS]
    assert len(names) == len(set(names))
    workshop = workshop_presets()
    assert [p.config.mechanism for p in workshop] == ["gaussian"] * 3 + ["none"]
    assert [p.config.epsilon for p in workshop[:3]] == [1.0, 3.0, 8.0]
    assert all(p.config.unit == "user" for p in workshop[:3])  # per person by default
    per_seq = per_sequence_presets()
    assert [p.config.epsilon for p in per_seq] == [1.0, 3.0, 8.0] and all(p.config.unit == "sequence" for p in per_seq)
    for p in [*workshop[:3], *per_seq, workshop[3]]:  # only the privacy differs (unit and its batch size included)
        same = p.config.replace(mechanism="gaussian", epsilon=1.0, engine=WORKSHOP.engine, unit="user",
                                batch_size=WORKSHOP.batch_size)
        assert same == workshop[0].config, p.name
    # the same ~256 sequences a step: 64 users × at most 4 sequences, or 256 sequences
    assert WORKSHOP.batch_size * WORKSHOP.user_cap == per_seq[0].config.batch_size == workshop[3].config.batch_size
    assert get_preset("workshop-laplace").config.accountant == "pld"
    with pytest.raises(ConfigError, match="no preset named"):
        get_preset("x")


def test_form_choices():
    assert EPSILON_CHOICES[0] == 0.1 and EPSILON_CHOICES[-1] == 50.0
    assert all(math.log(b) > math.log(a) for a, b in zip(EPSILON_CHOICES, EPSILON_CHOICES[1:]))
    assert 2.5 in epsilon_choices(2.5) and epsilon_choices(None) == list(EPSILON_CHOICES)
    assert model_size_name(16, 64) == "small (16 / 64)" and model_size_name(3, 5) == "custom (3 / 5)"


def test_default_config_preview_is_valid():
    assert check(TrainConfig(max_steps=30)).errors == {}


def test_an_unavailable_device_is_reported_at_the_device_control():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    checked = check(FAST.replace(device="cuda"))
    assert set(checked.errors) == {"device"} and "no CUDA GPU" in checked.errors["device"]


def test_a_slow_preview_answers_too_long_instead_of_hanging(monkeypatch):
    import threading
    import time

    from dpcore.runs import preview as pv

    release = threading.Event()

    def slow(config, items):
        release.wait(5)
        return "done"

    monkeypatch.setattr(pv, "_preview_cached", slow)
    monkeypatch.setattr(pv, "PREVIEW_TIMEOUT_S", 0.2)
    started = time.perf_counter()
    checked = pv.check(TrainConfig(accountant="rdp", max_steps=400, epsilon=4.321))
    assert time.perf_counter() - started < 3
    assert "would take too long to predict" in checked.errors["config"]
    release.set()


def test_links_past_the_server_budget_are_refused_before_any_accounting(monkeypatch):
    from dpcore.runs import preview as pv

    def never(*_a, **_k):
        raise AssertionError("no accounting should run")

    monkeypatch.setattr(pv, "_preview_cached", never)
    for cfg in (TrainConfig(accountant="prv", max_steps=1_000_000),
                TrainConfig(epochs=1000.0, max_steps=None, batch_size=1),
                TrainConfig(mechanism="laplace", accountant="pld", engine="opacus", max_steps=1_000_000),
                TrainConfig(hidden_size=4096, seq_len=1024, tokenizer="word", max_vocab=50_000)):
        checked = pv.check(cfg)
        assert checked.preview is None and "config" in checked.errors, cfg


@pytest.mark.parametrize("n", [2, 100, 4_500, 30_562, 1_000_000])
def test_the_default_delta_is_far_below_one_over_n_for_every_n(n):
    from dpcore.views.meaning import delta_sentence

    assert default_delta(n) <= 0.1 / n
    sentence = delta_sentence(default_delta(n), n, is_default=True)
    assert "not far below" not in sentence and "min(10⁻⁵, 1/(10·N))" in sentence

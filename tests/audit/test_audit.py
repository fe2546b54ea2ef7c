"""Privacy audits: the one-run ε lower bound, canary exposure and user-level membership inference.

The models here are tiny and trained for a few hundred Adam steps on a handful of rows, so each
test runs in seconds; every random draw is seeded.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random

import numpy as np
import pytest
import torch
from scipy import optimize, special, stats

from dpcore.audit import (
    NoCanariesError,
    canary_exposure,
    canary_exposures,
    exposure_by_insertions,
    make_audit_canaries,
    one_run_audit,
    one_run_bound,
    per_sequence_losses,
    roc_curve,
    run_audit,
    score_canaries,
)
from dpcore.audit.exposure import NO_CANARIES_MESSAGE, encode_candidates
from dpcore.audit.one_run import count_correct, epsilon_lower_bound, guess_grid, p_value
from dpcore.config import TrainConfig
from dpcore.data import Canary, CharTokenizer, WordTokenizer, build_lm_data, builtin_corpus
from dpcore.data.tokenizer import EOS_ID, PAD_ID
from dpcore.errors import CheckpointError, DPCoreError
from dpcore.training.model import ModelConfig, build_model, sequence_losses

SECRET_PREFIX = "Zed Quorum's PIN is "
UNSEEN_PREFIX = "Yara Blix's PIN is "
FILLER = ["my bus leaves at 7 4 5", "call me on 0 2 9 8 1", "the gate code is 1 1 0 9", "room 3 0 6 then lunch"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Models this small gain nothing from threads, and extra threads on a busy CPU cost many times over."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _train(rows: torch.Tensor, vocab: int, *, steps: int, seed: int = 0, hidden: int = 32):
    """A tiny GRU fitted to ``rows`` [N, T+1] with full-batch Adam, as training does it (zero state, PAD ignored)."""
    torch.manual_seed(seed)
    model = build_model(ModelConfig(vocab, embed_dim=16, hidden_size=hidden), seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(steps):
        logits, _ = model(rows[:, :-1])
        loss = sequence_losses(logits, rows[:, 1:], PAD_ID).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def _rows(tok: CharTokenizer, texts: list[str]) -> torch.Tensor:
    """One window per text, ``[EOS] + text + [EOS]`` padded, as build_lm_data lays out records."""
    ids = [[EOS_ID, *tok.encode(t), EOS_ID] for t in texts]
    width = max(len(r) for r in ids)
    return torch.tensor([r + [PAD_ID] * (width - len(r)) for r in ids], dtype=torch.long)


@pytest.fixture(scope="module")
def memorised():
    """(model, tokenizer, planted canary): the canary is one of five training rows, seen many times."""
    planted = Canary(id="planted", prefix=SECRET_PREFIX, secret="3 1 4 1", insertions=50)
    texts = [planted.text(), *FILLER]
    tok = CharTokenizer.fit([*texts, UNSEEN_PREFIX, "0123456789"])
    return _train(_rows(tok, texts), tok.vocab_size, steps=120), tok, planted


# ------------------------------------------------------------------------------ exposure
def test_memorised_canary_has_near_maximal_exposure(memorised):
    model, tok, planted = memorised
    res = canary_exposure(model, tok, planted)
    assert res.method == "exact" and res.candidates == 10_000 and res.num_scored == 10_000
    assert res.max_exposure == pytest.approx(math.log2(10_000))
    assert res.rank <= 2
    assert res.exposure >= res.max_exposure - 1.0
    assert "2^" in res.plain and "10,000" in res.plain


def test_never_seen_canaries_have_exposure_near_zero(memorised):
    """Secrets the model never saw rank like random candidates: mean exposure ≈ 1/ln 2 ≈ 1.44 bits."""
    model, tok, _ = memorised
    rng = np.random.default_rng(1)
    unseen = [Canary(id=f"u{i}", prefix=UNSEEN_PREFIX, secret=" ".join(map(str, rng.integers(0, 10, 4))),
                     insertions=1) for i in range(8)]
    results = canary_exposures(model, tok, unseen)
    mean = float(np.mean([r.exposure for r in results]))
    assert mean <= 3.0
    assert all(0.0 <= r.exposure <= r.max_exposure for r in results)


def test_sampled_exposure_extrapolates_like_the_exact_rank(memorised):
    """Forced to sample 2,000 of the 10^4 candidates, the skew-normal tail still finds the memorised secret."""
    model, tok, planted = memorised
    exact = canary_exposure(model, tok, planted)
    sampled = canary_exposure(model, tok, planted, max_enumerate=100, num_samples=2000, seed=3)
    assert sampled.method == "sampled" and sampled.num_scored == 2000
    assert sampled.exposure >= 9.0
    assert sampled.log_perplexity == pytest.approx(exact.log_perplexity, abs=1e-6)
    unseen = Canary(id="u", prefix=UNSEEN_PREFIX, secret="8 6 2 5", insertions=1)
    assert canary_exposure(model, tok, unseen, max_enumerate=100, num_samples=2000).exposure <= 4.0


def test_ties_count_against_the_canary(memorised):
    """A model that scores every candidate alike must give exposure 0, not a lucky first rank."""
    _, tok, planted = memorised
    flat = build_model(ModelConfig(tok.vocab_size, embed_dim=4, hidden_size=8), seed=0).eval()
    with torch.no_grad():
        flat.head.weight.zero_()
        flat.head.bias.zero_()
    res = canary_exposure(flat, tok, planted)
    assert res.rank == 10_000 and res.exposure == 0.0
    assert canary_exposure(flat, tok, planted, max_enumerate=100, num_samples=500).exposure == 0.0


def test_candidates_are_tokenized_in_context_for_word_tokenizer():
    tok = WordTokenizer.fit(["Zed Quorum's PIN is 3 1 4 1", "0 1 2 3 4 5 6 7 8 9"])
    canary = Canary(id="c", prefix=SECRET_PREFIX, secret="3 1 4 1", insertions=1)
    prefix_ids, suffixes = encode_candidates(tok, canary, [("3", "1", "4", "1"), ("0", "0", "0", "9")])
    assert prefix_ids == [EOS_ID, *tok.encode(SECRET_PREFIX)]  # the context a record's window starts with
    assert suffixes.tolist() == [tok.encode("3 1 4 1"), tok.encode("0 0 0 9")]


def test_exposure_by_insertions_groups_and_averages(memorised):
    model, tok, planted = memorised
    other = Canary(id="u", prefix=UNSEEN_PREFIX, secret="8 6 2 5", insertions=1)
    results = canary_exposures(model, tok, [planted, other])
    groups = exposure_by_insertions(results)
    assert [g["insertions"] for g in groups] == [1, 50]
    assert groups[1]["mean_exposure"] == pytest.approx(results[0].exposure)
    assert groups[0]["canary_ids"] == ["u"]


def test_no_canaries_is_a_clear_error(memorised):
    model, tok, _ = memorised
    with pytest.raises(NoCanariesError, match="no planted canaries"):
        canary_exposures(model, tok, [])


# ------------------------------------------------------------------------- membership
def test_roc_auc_equals_mann_whitney_and_tpr_at_low_fpr():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1.0, 1.0, 300).round(1), rng.normal(0.0, 1.0, 400).round(1)  # rounding makes ties
    roc = roc_curve(pos, neg)
    u = stats.mannwhitneyu(pos, neg).statistic
    assert roc.auc == pytest.approx(u / (len(pos) * len(neg)))
    assert roc.fpr[0] == 0 and roc.tpr[-1] == 1 and np.all(np.diff(roc.fpr) >= 0)
    perfect = roc_curve(np.array([5.0, 6.0]), np.array([1.0, 2.0, 3.0]))
    assert perfect.auc == 1.0 and perfect.tpr_at_fpr(0.001) == 1.0
    assert roc_curve(np.array([1.0, 3.0]), np.array([2.0, 4.0])).tpr_at_fpr(0.01) == 0.0


def test_membership_auc_is_chance_for_a_model_that_saw_neither_set():
    data = build_lm_data(builtin_corpus(seed=0, num_users=40), seq_len=16)
    model = _train(data.val[:64], data.tokenizer.vocab_size, steps=15, hidden=16)  # saw only validation rows
    half = len(data.train) // 2
    a, b = data.train[:half], data.train[half : 2 * half]
    roc = roc_curve(-per_sequence_losses(model, a), -per_sequence_losses(model, b))
    assert 0.42 <= roc.auc <= 0.58


def test_membership_detects_memorised_rows():
    """The attack is not blind: 24 random strings fitted hard are told apart from 24 fresh ones."""
    rng = np.random.default_rng(0)
    tok = CharTokenizer.fit(["abcdefghij"])
    strings = ["".join(rng.choice(list("abcdefghij"), 16)) for _ in range(48)]
    rows = _rows(tok, strings)
    model = _train(rows[:24], tok.vocab_size, steps=100, hidden=48)
    roc = roc_curve(-per_sequence_losses(model, rows[:24]), -per_sequence_losses(model, rows[24:]))
    assert roc.auc >= 0.95


# ------------------------------------------------------------------------- one-run audit
def test_seeded_canaries_are_reproducible_and_secret_coins_are_not():
    a = make_audit_canaries(20, 16, 300, rng=np.random.default_rng(3))
    b = make_audit_canaries(20, 16, 300, rng=np.random.default_rng(3))
    assert torch.equal(a.rows, b.rows) and np.array_equal(a.included, b.included)
    assert a.rows.shape == (300, 17) and a.rows.dtype == torch.long
    assert (a.rows[:, 0] == EOS_ID).all() and (a.rows[:, 1:] >= 3).all() and (a.rows[:, 1:] < 20).all()
    assert a.included.dtype == bool and 100 < a.num_included < 200
    assert torch.equal(a.training_rows(), a.rows[torch.from_numpy(a.included)])
    assert "included" not in repr(a)  # the coins are the audit's secret
    s1, s2 = make_audit_canaries(20, 16, 300), make_audit_canaries(20, 16, 300)  # from the OS's CSPRNG
    assert not np.array_equal(s1.included, s2.included) and not torch.equal(s1.rows, s2.rows)


def _binomial_root(r: int, v: int, alpha: float) -> float:
    """The ε at which P[Binomial(r, e^ε/(1+e^ε)) ≥ v] = α (0 when the tail at ε = 0 is already ≥ α)."""
    tail = lambda eps: stats.binom.sf(v - 1, r, special.expit(eps)) - alpha  # noqa: E731
    return 0.0 if tail(0.0) >= 0 else optimize.brentq(tail, 0.0, 50.0, xtol=1e-10)


@pytest.mark.parametrize(("r", "v"), [(40, 30), (40, 40), (200, 120), (1000, 560), (1000, 1000), (7, 7)])
def test_pure_dp_bound_is_the_binomial_tail(r, v):
    """δ = 0: W is dominated by Binomial(r, e^ε/(1+e^ε)); the bound is where its tail at W reaches α."""
    alpha = 0.05
    root = 0.0 if stats.binom.sf(v - 1, r, 0.5) > alpha else _binomial_root(r, v, alpha)
    assert epsilon_lower_bound(1000, r, v, delta=0.0, alpha=alpha) == pytest.approx(root, abs=2e-4)
    assert epsilon_lower_bound(1000, r, v, delta=0.0, alpha=alpha) <= root  # rounded down, never up
    assert p_value(1000, r, v, root, 0.0) == pytest.approx(alpha, rel=1e-6)


def test_one_run_bound_uses_the_guess_grid_with_a_union_bound():
    rng = np.random.default_rng(0)
    included = rng.random(1000) < 0.5
    scores = included + rng.normal(0, 0.7, 1000)
    res = one_run_bound(scores, included, delta=0.0, confidence=0.95)
    grid = guess_grid(1000)
    assert [(t["k_plus"], t["k_minus"]) for t in res["tried"]] == grid == [(20, 20), (50, 50), (100, 100),
                                                                          (250, 250), (500, 500)]
    assert res["alpha_per_guess_count"] == pytest.approx(0.05 / 5)
    best = max(res["tried"], key=lambda t: t["epsilon"])
    assert res["epsilon_lower_bound"] == best["epsilon"] > 0
    assert res["epsilon_lower_bound"] == pytest.approx(_binomial_root(best["guesses"], best["correct"], 0.01),
                                                       abs=2e-4)
    assert count_correct(scores, included, best["k_plus"], best["k_minus"]) == best["correct"]
    single = one_run_bound(scores, included, delta=0.0, guesses=[(50, 50)])
    assert single["alpha_per_guess_count"] == pytest.approx(0.05)
    with_delta = one_run_bound(scores, included, delta=1e-3)
    assert with_delta["epsilon_lower_bound"] <= res["epsilon_lower_bound"]  # δ > 0 can only cost


def test_bound_is_zero_at_chance_and_grows_with_correct_guesses():
    assert epsilon_lower_bound(1000, 200, 100, delta=1e-5, alpha=0.05) == 0.0
    assert epsilon_lower_bound(1000, 200, 0, delta=1e-5, alpha=0.05) == 0.0
    values = [epsilon_lower_bound(1000, 200, v, delta=1e-5, alpha=0.05) for v in range(100, 201, 10)]
    assert values == sorted(values) and values[-1] > 3.0


def test_one_run_bound_holds_for_a_known_epsilon():
    """Randomised response on each coin is exactly ε-DP in the coins: the bound exceeds ε at most ~5% of the time."""
    eps, over, over_fdp, bounds = 1.0, 0, 0, []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        included = rng.random(1000) < 0.5
        kept = rng.random(1000) < special.expit(eps)
        released = np.where(kept, included, ~included)
        res = one_run_bound(released + rng.random(1000) * 0.01, included, delta=0.0)
        bounds.append(res["epsilon_lower_bound"])
        over += res["epsilon_lower_bound"] > eps
        over_fdp += res["epsilon_lower_bound_fdp"] > eps  # the (ε, 0) curve at δ = 0: randomised response's own
    assert over <= 20 and over_fdp <= 20  # 5% of 200 is 10 in expectation
    assert np.mean(bounds) >= 0.6  # and it has power: close to the ε it audits


@pytest.fixture(scope="module")
def one_run_setup():
    """(canaries, model trained on filler + the included canaries, model trained on the filler only)."""
    canaries = make_audit_canaries(20, 16, 200, rng=np.random.default_rng(7))
    filler = make_audit_canaries(20, 16, 64, rng=np.random.default_rng(8)).rows
    trained = _train(torch.cat([filler, canaries.training_rows()]), 20, steps=150, hidden=48)
    without = _train(filler, 20, steps=150, hidden=48)
    return canaries, trained, without


def test_one_run_audit_of_a_memorising_run_is_clearly_positive(one_run_setup):
    canaries, trained, _ = one_run_setup
    res = one_run_audit(trained, canaries, delta=1e-5)
    assert res["m"] == 200 and res["num_included"] == canaries.num_included
    assert res["correct"] == res["guesses"] and res["epsilon_lower_bound"] >= 2.5
    assert res["epsilon_lower_bound"] <= res["max_certifiable"]
    assert res["confidence"] == 0.95 and res["delta"] == 1e-5 and res["attack"].startswith("one-run")
    assert "ε ≥ " in res["plain"] and "coin" in res["plain"]
    json.dumps(res, allow_nan=False)
    scores = score_canaries(trained, canaries, method="loss")
    assert scores[canaries.included].min() > scores[~canaries.included].max()


@pytest.mark.parametrize("score", ["calibrated", "loss"])
def test_one_run_audit_of_a_model_that_saw_no_canary_is_near_zero(one_run_setup, score):
    canaries, _, without = one_run_setup
    untrained = build_model(ModelConfig(20, embed_dim=16, hidden_size=48), seed=0).eval()
    for model in (without, untrained):
        assert one_run_audit(model, canaries, delta=1e-5, score=score)["epsilon_lower_bound"] <= 0.1


# -------------------------------------------------------------------------- run_audit
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """(run folder, the real data, the audit canaries): trained on the real windows + the included canaries,
    as the trainer does when the audit is ticked."""
    from dpcore.training.loop import run_training

    out = tmp_path_factory.mktemp("run")
    config = TrainConfig(seq_len=16, embed_dim=8, hidden_size=16, batch_size=64, max_steps=4, eval_every=4,
                         num_samples=0, mechanism="none", lr=0.01)
    data = build_lm_data(builtin_corpus(seed=0, num_users=40), seq_len=16)
    canaries = make_audit_canaries(data.tokenizer.vocab_size, 16, 100, rng=np.random.default_rng(5))
    trained_on = dataclasses.replace(data, train=torch.cat([data.train, canaries.training_rows()]))
    run_training(config, out, data=trained_on)
    return out, data, canaries


def test_run_audit_writes_the_report(tiny_run, tmp_path):
    run_dir, data, canaries = tiny_run
    py_state, np_state = random.getstate(), np.random.get_state()
    audit = run_audit(run_dir / "model.pt", tmp_path, data=data, max_examples=60, reference_steps=3,
                      audit_canaries=canaries)
    assert random.getstate() == py_state  # training the reference reseeded these; the audit restores them
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    on_disk = json.loads((tmp_path / "audit.json").read_text(encoding="utf-8"))
    assert on_disk["format"] == "dpcore-audit" and on_disk["auc"] == audit["auc"]
    assert [g["insertions"] for g in audit["exposure_by_insertions"]] == [1, 3, 10, 30]
    assert len(audit["exposure"]) == 8 and audit["exposure_note"] == ""
    assert audit["claimed_epsilon"] is None and audit["delta"] > 0
    # per window, and the same attacks with whole users as the trials (a user's mean score)
    assert set(audit["membership"]["attacks"]) == {"loss", "calibrated", "user-loss", "user-calibrated"}
    whole = audit["membership"]["attacks"]["user-loss"]
    assert whole["num_members"] < 60 and whole["num_nonmembers"] < 60 and "whole users" in whole["description"]
    assert audit["membership"]["num_members"] == audit["membership"]["num_nonmembers"] == 60
    assert set(audit["tpr_at_fpr"]) == {"0.001", "0.01"}
    # the one-run audit is THE empirical ε; membership inference is user-level and carries no ε
    one = audit["one_run"]
    assert one["m"] == 100 and one["num_included"] == canaries.num_included and one["delta"] == audit["delta"]
    assert set(audit["empirical_epsilon"]) == {"value", "confidence", "attack", "max_certifiable", "value_fdp",
                                               "attack_fdp", "fdp_family", "max_certifiable_fdp", "exceeds_claim",
                                               "alarm"}
    # the f-DP bound (Mahloujifar et al. 2024) on the same guesses, as its own key; no claim, so no alarm
    assert audit["empirical_epsilon"]["value_fdp"] == one["epsilon_lower_bound_fdp"] >= 0.0
    assert one["max_certifiable_fdp"] >= one["max_certifiable"] and one["fdp_family"] == "gaussian"
    assert audit["bug_alarm"] is None and one["exceeds_claim"] == [] and audit["version"] == 3
    assert audit["empirical_epsilon"]["attack"] == "one-run (Steinke et al. 2023)"
    assert audit["empirical_epsilon"]["confidence"] == 0.95
    assert audit["empirical_epsilon"]["value"] == one["epsilon_lower_bound"]
    assert 0.0 <= audit["empirical_epsilon"]["value"] <= audit["empirical_epsilon"]["max_certifiable"]
    assert audit["membership"]["level"] == "user"
    for attack in audit["membership"]["attacks"].values():
        assert "epsilon_lower_bound" not in attack and attack["level"] == "user"
    assert "confidence_per_attack" not in audit["membership"]
    assert audit["plain"][0] == one["plain"] and "One-run audit" in audit["plain"][0]
    assert any(line.startswith("User-level membership inference") for line in audit["plain"])
    assert "user-level" in audit["caveat"] and "Clopper" not in json.dumps(audit)
    assert any("2^" in line for line in audit["plain"])


def test_run_audit_counts_the_included_canaries(tiny_run, tmp_path):
    """The checkpoint trained on real windows + included canaries: without the canaries the sizes differ."""
    run_dir, data, canaries = tiny_run
    with pytest.raises(DPCoreError, match="can only be audited with them"):
        run_audit(run_dir / "model.pt", tmp_path, data=data, reference="none")
    other = make_audit_canaries(data.tokenizer.vocab_size, 16, 100, rng=np.random.default_rng(6))
    if other.num_included != canaries.num_included:
        with pytest.raises(DPCoreError, match="included audit canaries"):
            run_audit(run_dir / "model.pt", tmp_path, data=data, reference="none", audit_canaries=other)


def test_reference_model_sees_no_attacked_user(tiny_run):
    """Members come from half the training users; the reference trains only on the other half."""
    from dpcore.audit.reference import reference_data
    from dpcore.audit.run import _targets

    _, data, _ = tiny_run
    members, nonmembers, user_rows, num_users = _targets(data, 60, seed=0)
    assert len(members) == len(nonmembers) == 60 and num_users == len(data.train_users) // 2
    assert set(members.tolist()) <= set(user_rows.tolist())
    canary_rows = {i for rows in data.canary_rows.values() for i in rows}
    assert not canary_rows & set(members.tolist())
    attacked = {data.train_example_users[i] for i in members}
    ref = reference_data(data, user_rows)
    assert not attacked & set(ref.train_example_users)
    assert len(ref.train) == len(data.train) - len(user_rows)
    excluded = set(user_rows.tolist())
    for cid, rows in data.canary_rows.items():  # canary row indices follow the removal
        kept = [i for i in rows if i not in excluded]
        assert torch.equal(ref.train[ref.canary_rows[cid]], data.train[kept])


def test_dp_run_bound_stays_below_its_claimed_epsilon(tmp_path):
    from dpcore.training.loop import run_training

    data = build_lm_data(builtin_corpus(seed=0, num_users=40), seq_len=16)
    canaries = make_audit_canaries(data.tokenizer.vocab_size, 16, 200, rng=np.random.default_rng(9))
    config = TrainConfig(seq_len=16, embed_dim=8, hidden_size=16, batch_size=64, max_steps=4, eval_every=4,
                         num_samples=0, mechanism="gaussian", epsilon=1.0, lr=0.01,
                         unit="sequence")  # the canaries are appended as bare rows, with no user
    trained_on = dataclasses.replace(data, train=torch.cat([data.train, canaries.training_rows()]))
    result = run_training(config, tmp_path / "run", data=trained_on)
    assert result.num_train_examples == len(data.train) + canaries.num_included
    audit = run_audit(tmp_path / "run" / "model.pt", tmp_path, data=data, reference="none", max_examples=100,
                      audit_canaries=canaries)
    assert audit["claimed_epsilon"] == pytest.approx(result.epsilon) and audit["delta"] == result.delta
    assert audit["one_run"]["delta"] == result.delta
    assert audit["empirical_epsilon"]["value"] <= audit["claimed_epsilon"]
    assert audit["empirical_epsilon"]["value_fdp"] <= audit["claimed_epsilon"] and audit["bug_alarm"] is None
    assert f"the run claims ε = {result.epsilon:.2f}" in audit["plain"][0]


def test_run_audit_refuses_a_changed_corpus(tiny_run, tmp_path):
    run_dir, _, _ = tiny_run
    other = build_lm_data(builtin_corpus(seed=0, num_users=40), seq_len=16, val_fraction=0.3)
    with pytest.raises(DPCoreError, match="differs from the one this run was trained on"):
        run_audit(run_dir / "model.pt", tmp_path, data=other, reference="none")


def test_corpus_without_canaries_still_gets_membership_inference(tmp_path):
    from dpcore.data import load_corpus
    from dpcore.training.loop import run_training

    rng = np.random.default_rng(0)
    words = ["tea", "bus", "rain", "code", "park", "milk", "call", "mail", "desk", "song"]
    lines = [" ".join(rng.choice(words, 12)) for _ in range(400)]
    path = tmp_path / "notes.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = TrainConfig(corpus=str(path), seq_len=16, embed_dim=4, hidden_size=8, batch_size=64, max_steps=2,
                         eval_every=2, num_samples=0, mechanism="none")
    assert load_corpus(str(path)).canaries == []
    run_training(config, tmp_path / "run")
    audit = run_audit(tmp_path / "run" / "model.pt", tmp_path / "audit", reference="none", max_examples=100)
    assert audit["exposure"] == [] and audit["exposure_note"] == NO_CANARIES_MESSAGE
    assert audit["auc"] is not None and any("no planted canaries" in line for line in audit["plain"])


def test_bad_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        run_audit(tmp_path / "missing.pt", tmp_path)
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable dpcore checkpoint"):
        run_audit(bad, tmp_path)
    assert not (tmp_path / "audit.json").exists()


@pytest.fixture()
def cli_main():
    """``python -m dpcore`` in-process (the audit command is registered by :mod:`dpcore.cli.main`)."""
    from dpcore.cli import main

    return main


def test_cli_audit_rebuilds_the_run_data(cli_main, tmp_path, capsys):
    """Without ``data=`` the audit rebuilds the built-in corpus from the checkpoint's config."""
    from dpcore.training.loop import run_training

    config = TrainConfig(seq_len=64, embed_dim=4, hidden_size=8, batch_size=256, max_steps=1, eval_every=1,
                         num_samples=0, mechanism="none")
    run_training(config, tmp_path / "run")
    argv = ["audit", "--checkpoint", str(tmp_path / "run" / "model.pt"), "--out", str(tmp_path / "audit"),
            "--reference", "none", "--max-examples", "50"]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    summary = json.loads(out[0])
    assert set(summary["exposure_by_insertions"]) == {"1", "3", "10", "30"}
    audit = json.loads((tmp_path / "audit" / "audit.json").read_text(encoding="utf-8"))
    assert set(audit["membership"]["attacks"]) == {"loss", "user-loss"} and audit["membership"]["num_members"] == 50
    # no canaries were planted before training: no one-run bound, and the report says why
    assert audit["one_run"] is None and summary["empirical_epsilon"]["value"] is None
    assert "tick \"audit\" at launch" in audit["empirical_epsilon"]["note"]
    assert any("no one-run ε bound" in line.lower() for line in out)
    assert out[-1].startswith("wrote ")


def test_cli_audit_errors_are_one_line(cli_main, tiny_run, tmp_path, capsys):
    run_dir, _, _ = tiny_run
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    assert cli_main(["audit", "--checkpoint", str(bad), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a readable dpcore checkpoint" in err
    # trained on a 40-user corpus, but its config names the 400-user built-in one
    assert cli_main(["audit", "--checkpoint", str(run_dir / "model.pt"), "--out", str(tmp_path)]) == 2
    assert "differs from the one this run was trained on" in capsys.readouterr().err
    assert cli_main(["audit", "--checkpoint", str(bad), "--out", str(tmp_path), "--confidence", "1.5"]) == 2

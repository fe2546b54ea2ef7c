"""Privacy audits: canary exposure, membership inference and the empirical ε lower bound.

The models here are tiny and trained for a few hundred Adam steps on a handful of rows, so each
test runs in seconds; every random draw is seeded.
"""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch
from scipy import optimize, stats

from dpcore.audit import (
    NoCanariesError,
    canary_exposure,
    canary_exposures,
    clopper_pearson,
    empirical_epsilon,
    epsilon_from_rates,
    exposure_by_insertions,
    per_sequence_losses,
    roc_curve,
    run_audit,
)
from dpcore.audit.exposure import NO_CANARIES_MESSAGE, encode_candidates
from dpcore.config import TrainConfig
from dpcore.data import Canary, CharTokenizer, WordTokenizer, build_lm_data, builtin_corpus
from dpcore.data.tokenizer import EOS_ID, PAD_ID
from dpcore.errors import CheckpointError, DPCoreError
from dpcore.model import ModelConfig, build_model, sequence_losses

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
    """One window per text, ``text + EOS`` padded, as build_lm_data lays out canary records."""
    ids = [[*tok.encode(t), EOS_ID] for t in texts]
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
    assert prefix_ids == tok.encode(SECRET_PREFIX)
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
def test_clopper_pearson_matches_scipy():
    for k, n in [(0, 10), (3, 10), (10, 10), (1, 1000), (497, 1000), (0, 128)]:
        ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        lo, hi = clopper_pearson(k, n, 0.95)
        assert lo == pytest.approx(ref.low, abs=1e-12) and hi == pytest.approx(ref.high, abs=1e-12)
    assert clopper_pearson(0, 10, 0.95)[1] == pytest.approx(1 - 0.025 ** (1 / 10))
    lo, hi = clopper_pearson(np.array([0, 5, 10]), 10, 0.9)
    assert lo[0] == 0.0 and hi[2] == 1.0 and lo[1] < 0.5 < hi[1]


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


def test_epsilon_from_rates_is_the_dp_inequality():
    assert epsilon_from_rates(0.5, 0.05, 0.0) == pytest.approx(math.log(10))
    assert epsilon_from_rates(0.99, 0.5, 0.0) == pytest.approx(math.log(0.5 / 0.01))
    assert epsilon_from_rates(0.3, 0.3, 1e-5) == 0.0
    assert epsilon_from_rates(0.2, 0.4, 0.0) == 0.0  # worse than chance forces nothing


def _gdp_epsilon(mu: float, delta: float) -> float:
    """ε of μ-GDP at δ (Dong, Roth, Su 2019): δ(ε) = Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2)."""
    def gap(eps: float) -> float:
        return stats.norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * stats.norm.cdf(-eps / mu - mu / 2) - delta
    return optimize.brentq(gap, 0.0, 100.0)


@pytest.mark.parametrize("mu", [0.5, 1.0, 2.0])
def test_empirical_epsilon_never_exceeds_a_known_guarantee(mu):
    """Scores N(μ,1) vs N(0,1) are exactly what a μ-GDP mechanism lets the best attacker see."""
    delta = 1e-5
    true_eps = _gdp_epsilon(mu, delta)
    bounds = []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        res = empirical_epsilon(rng.normal(mu, 1, 4000), rng.normal(0, 1, 4000), delta, seed=seed)
        assert res["confidence"] == 0.95 and res["num_members_eval"] == 2000
        assert res["value"] <= res["max_certifiable"]
        bounds.append(res["value"])
    assert max(bounds) <= true_eps
    if mu >= 2.0:
        assert min(bounds) >= 1.0  # and the audit has power: it certifies a good part of the true ε


def test_no_leak_gives_no_epsilon():
    """Members and non-members from one distribution: the bound stays 0 (the threshold is chosen out of sample)."""
    values = []
    for seed in range(10):
        rng = np.random.default_rng(100 + seed)
        values.append(empirical_epsilon(rng.normal(0, 1, 2000), rng.normal(0, 1, 2000), 1e-5, seed=seed)["value"])
    assert max(values) == 0.0


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


# -------------------------------------------------------------------------- run_audit
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from dpcore.training import run_training

    out = tmp_path_factory.mktemp("run")
    config = TrainConfig(seq_len=16, embed_dim=8, hidden_size=16, batch_size=64, max_steps=4, eval_every=4,
                         num_samples=0, mechanism="none", lr=0.01)
    data = build_lm_data(builtin_corpus(seed=0, num_users=40), seq_len=16)
    run_training(config, out, data=data)
    return out, data


def test_run_audit_writes_the_report(tiny_run, tmp_path):
    run_dir, data = tiny_run
    py_state, np_state = random.getstate(), np.random.get_state()
    audit = run_audit(run_dir / "model.pt", tmp_path, data=data, max_examples=60, reference_steps=3)
    assert random.getstate() == py_state  # training the reference reseeded these; the audit restores them
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    on_disk = json.loads((tmp_path / "audit.json").read_text(encoding="utf-8"))
    assert on_disk["format"] == "dpcore-audit" and on_disk["auc"] == audit["auc"]
    assert [g["insertions"] for g in audit["exposure_by_insertions"]] == [1, 3, 10, 30]
    assert len(audit["exposure"]) == 8 and audit["exposure_note"] == ""
    assert audit["claimed_epsilon"] is None and audit["delta"] > 0
    assert set(audit["membership"]["attacks"]) == {"loss", "calibrated"}
    assert audit["membership"]["num_members"] == audit["membership"]["num_nonmembers"] == 60
    assert audit["membership"]["confidence_per_attack"] == pytest.approx(0.975)
    assert set(audit["tpr_at_fpr"]) == {"0.001", "0.01"}
    assert audit["empirical_epsilon"]["confidence"] == 0.95
    assert 0.0 <= audit["empirical_epsilon"]["value"] <= audit["empirical_epsilon"]["max_certifiable"]
    assert any("2^" in line for line in audit["plain"])


def test_reference_model_sees_no_attacked_user(tiny_run):
    """Members come from half the training users; the reference trains only on the other half."""
    from dpcore.audit.reference import reference_data
    from dpcore.audit.run import _targets

    _, data = tiny_run
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
    from dpcore.training import run_training

    data = build_lm_data(builtin_corpus(seed=0, num_users=40), seq_len=16)
    config = TrainConfig(seq_len=16, embed_dim=8, hidden_size=16, batch_size=64, max_steps=4, eval_every=4,
                         num_samples=0, mechanism="gaussian", epsilon=1.0, lr=0.01)
    result = run_training(config, tmp_path / "run", data=data)
    audit = run_audit(tmp_path / "run" / "model.pt", tmp_path, data=data, reference="none", max_examples=100)
    assert audit["claimed_epsilon"] == pytest.approx(result["epsilon"]) and audit["delta"] == result["delta"]
    assert audit["empirical_epsilon"]["value"] <= audit["claimed_epsilon"]
    assert "The run claims ε = " in " ".join(audit["plain"])


def test_run_audit_refuses_a_changed_corpus(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    other = build_lm_data(builtin_corpus(seed=0, num_users=40), seq_len=16, val_fraction=0.3)
    with pytest.raises(DPCoreError, match="differs from the one this run was trained on"):
        run_audit(run_dir / "model.pt", tmp_path, data=other, reference="none")


def test_corpus_without_canaries_still_gets_membership_inference(tmp_path):
    from dpcore.data import load_corpus
    from dpcore.training import run_training

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
def cli_main(monkeypatch):
    """``dpcore.cli.main`` with the audit command registered (whether or not cli.py registers it yet)."""
    from dpcore import cli
    from dpcore.audit import cli as audit_cli

    build = cli.build_parser

    def build_with_audit():
        parser = build()
        sub = next(a for a in parser._actions if a.dest == "command")
        if "audit" not in sub.choices:
            audit_cli.register(sub)
        return parser

    monkeypatch.setattr(cli, "build_parser", build_with_audit)
    return cli.main


def test_cli_audit_rebuilds_the_run_data(cli_main, tmp_path, capsys):
    """Without ``data=`` the audit rebuilds the built-in corpus from the checkpoint's config."""
    from dpcore.training import run_training

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
    assert set(audit["membership"]["attacks"]) == {"loss"} and audit["membership"]["num_members"] == 50
    assert out[-1].startswith("wrote ")


def test_cli_audit_errors_are_one_line(cli_main, tiny_run, tmp_path, capsys):
    run_dir, _ = tiny_run
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    assert cli_main(["audit", "--checkpoint", str(bad), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a readable dpcore checkpoint" in err
    # trained on a 40-user corpus, but its config names the 400-user built-in one
    assert cli_main(["audit", "--checkpoint", str(run_dir / "model.pt"), "--out", str(tmp_path)]) == 2
    assert "differs from the one this run was trained on" in capsys.readouterr().err
    assert cli_main(["audit", "--checkpoint", str(bad), "--out", str(tmp_path), "--confidence", "1.5"]) == 2

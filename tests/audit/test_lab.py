"""The attack lab's scoring (dpcore.audit.lab): the audit's own bound on the same guesses, a failure rate
shared by every pool size, an order that ignores the coins, and a secret file that stays private."""

from __future__ import annotations

import math
import stat

import numpy as np
import pytest

from dpcore.audit.lab import (
    LAB_FILE,
    ROUNDS,
    LabCanaries,
    best_success,
    canary_order,
    load_lab_canaries,
    max_games,
    pool_alpha,
    pooled_score,
    save_lab_canaries,
)
from dpcore.audit.one_run import count_correct, epsilon_lower_bound, one_run_bound
from dpcore.runs.lifecycle import ARTIFACT_FILES


def _lab(m: int = 1000, seed: int = 0) -> LabCanaries:
    rng = np.random.default_rng(seed)
    included = rng.random(m) < 0.5
    return LabCanaries(texts=tuple(f"canary {i}" for i in range(m)),
                       scores=rng.normal(size=m) + 0.8 * included, included=included)


def test_a_pool_scores_its_guesses_with_the_audits_own_bound():
    """Guesses a pool makes as the audit would (top scores "in", bottom "out") give the audit's number."""
    lab = _lab()
    games, k = 5, ROUNDS * 5 // 2
    v = count_correct(lab.scores, lab.included, k, k)
    score = pooled_score(lab.m, games, 2 * k, v, delta=1e-5)
    audit = one_run_bound(lab.scores, lab.included, delta=1e-5, confidence=1 - score.alpha, guesses=[(k, k)])
    assert score.r == 2 * k and audit["correct"] == v
    assert score.epsilon == pytest.approx(audit["epsilon_lower_bound"], abs=1e-9)
    assert score.epsilon_fdp == pytest.approx(audit["epsilon_lower_bound_fdp"], abs=1e-9)
    assert score.ceiling == pytest.approx(audit["max_certifiable"], abs=1e-9)
    assert score.epsilon > 0  # these scores separate members from the rest: the bound sees it


def test_skips_count_as_guesses_not_made_and_can_only_lower_the_bound():
    full = pooled_score(1000, 1, ROUNDS, ROUNDS, delta=1e-5)
    skipped = pooled_score(1000, 1, ROUNDS - 4, ROUNDS - 4, delta=1e-5)
    assert full.r == skipped.r == ROUNDS and skipped.epsilon <= full.epsilon
    assert skipped.success == 1.0 and full.epsilon == pytest.approx(full.ceiling)


def test_every_pool_size_shares_one_failure_rate():
    for m in (20, 100, 1000):
        most = max_games(m)
        assert sum(pool_alpha(g, most) for g in range(1, most + 1)) <= 0.05 + 1e-12
    with pytest.raises(Exception, match="a pool holds"):
        pool_alpha(max_games(1000) + 1, max_games(1000))


def test_playing_on_until_ahead_raises_no_bound_against_coins_it_cannot_see():
    """A guesser who sees nothing (a perfectly private model) and plays game after game while the bound is 0:
    the bound turns positive at most 5 % of the time over the whole session (optional stopping included)."""
    m, delta = 1000, 1e-5
    most = max_games(m)
    # the fewest right guesses that give a positive bound, per number of games
    need = []
    for g in range(1, most + 1):
        lo, hi = 0, g * ROUNDS + 1
        alpha = pool_alpha(g, most)
        while lo < hi:
            mid = (lo + hi) // 2
            if epsilon_lower_bound(m, g * ROUNDS, mid, delta=delta, alpha=alpha) > 0:
                hi = mid
            else:
                lo = mid + 1
        need.append(lo)
    rng = np.random.default_rng(7)
    trials = 4000
    right = rng.binomial(ROUNDS, 0.5, size=(trials, most)).cumsum(axis=1)
    ever = (right >= np.array(need)).any(axis=1).mean()
    assert ever <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / trials), ever


def test_the_order_depends_on_its_key_alone():
    order = canary_order(1000, "run\x00solo:a")
    assert sorted(order) == list(range(1000)) and order == canary_order(1000, "run\x00solo:a")
    assert order != canary_order(1000, "run\x00solo:b")


def test_the_secret_file_is_private_and_keeps_its_coins_out_of_repr(tmp_path):
    lab = _lab(m=50)
    path = save_lab_canaries(tmp_path, [*lab.texts[:-1], "tab\there\x00"], lab.scores, lab.included)
    assert path.name == LAB_FILE == ARTIFACT_FILES["lab"] and stat.S_IMODE(path.stat().st_mode) == 0o600
    back = load_lab_canaries(tmp_path)
    assert back is not None and back.texts[-1] == "tab·here·"
    assert np.array_equal(back.included, lab.included) and np.allclose(back.scores, lab.scores)
    assert "included" not in repr(back) and "True" not in repr(back)
    c = back.candidate(0)
    assert c.loss == pytest.approx(-lab.scores[0]) and c.rank == 1 + int((lab.scores > lab.scores[0]).sum())
    assert not hasattr(c, "included") and load_lab_canaries(tmp_path / "none") is None
    (tmp_path / LAB_FILE).write_bytes(b"not a file")
    with pytest.raises(Exception, match="cannot be read"):
        load_lab_canaries(tmp_path)


def test_the_best_any_attacker_can_do_at_each_epsilon():
    assert best_success(None, 0.0) == 1.0
    assert best_success(0.0, 0.0) == pytest.approx(0.5)
    assert best_success(1.0, 0.0) == pytest.approx(math.e / (1 + math.e))
    assert best_success(8.0, 1e-5) > 0.999
    assert [best_success(e, 1e-5) for e in (0.5, 1, 2, 4)] == sorted(best_success(e, 1e-5) for e in (0.5, 1, 2, 4))

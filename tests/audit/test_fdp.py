"""The f-DP one-run bound (Mahloujifar, Melis & Chaudhuri 2024) beside Steinke et al.'s, and the bug alarm.

Idealised canaries: a canary's score is μ·(trained on) + N(0, 1), exactly a μ-GDP release of its coin,
so the truth is known. Every random draw is seeded; the Monte Carlo runs take seconds.
"""

from __future__ import annotations

import dp_accounting
import numpy as np
import pytest
from scipy import special, stats

from dpcore.audit.fdp import epsilon_lower_bound_fdp, family_inverse_blowup, fdp_ceiling, fdp_p_value
from dpcore.audit.one_run import (
    claim_exceeded,
    count_correct,
    epsilon_lower_bound,
    guess_grid,
    one_run_bound,
    one_run_plain,
    p_value,
)
from dpcore.privacy.tradeoff import gaussian_inverse_blowup, gdp_mu


def _canaries(rng: np.random.Generator, m: int, mu: float) -> tuple[np.ndarray, np.ndarray]:
    included = rng.random(m) < 0.5
    return mu * included + rng.standard_normal(m), included


@pytest.mark.parametrize("k,v", [(40, 30), (100, 70), (200, 160), (500, 400), (500, 500)])
def test_pure_dp_curve_orders_with_the_binomial_tail_of_steinke(k, v):
    """At δ = 0 the exact worst case is randomised response, P[Binomial(k, e^ε/(1+e^ε)) ≥ v] (Steinke et al.'s
    tail, attained): the f-DP tail bound can never be below it, equals it with every guess right, and the two
    ε bounds order (f-DP ≤ Steinke) and nearly agree."""
    for eps in (0.5, 1.0, 2.0, 4.0):
        p = fdp_p_value(1000, k, v, family_inverse_blowup("approx", eps, 0.0))
        exact = stats.binom.sf(v - 1, k, special.expit(eps))
        assert p >= exact * (1 - 1e-6)
        if v == k:
            assert p == pytest.approx(exact, rel=1e-5)
    ours = epsilon_lower_bound_fdp(1000, k, v, delta=0.0, alpha=0.05, family="approx")
    theirs = epsilon_lower_bound(1000, k, v, delta=0.0, alpha=0.05)
    assert theirs - 0.05 <= ours <= theirs + 1e-3


def test_gaussian_tail_bound_holds_against_a_monte_carlo_of_the_guesses():
    """P[C ≥ v] of a top/bottom guesser on μ-GDP canaries, simulated, never exceeds the f-DP bound."""
    rng = np.random.default_rng(7)
    m, half, mu, trials = 200, 50, 1.0, 4000
    counts = np.empty(trials, dtype=int)
    for t in range(trials):
        scores, included = _canaries(rng, m, mu)
        counts[t] = count_correct(scores, included, half, half)
    b = lambda y: gaussian_inverse_blowup(y, mu)  # noqa: E731
    for v in range(55, 100, 5):
        tail = float(np.mean(counts >= v))
        bound = fdp_p_value(m, 2 * half, v, b)
        assert bound >= tail - 3.0 * np.sqrt(max(tail, 1e-4) / trials), (v, tail, bound)
    # and it is informative: the best count seen is one it calls rare, where Steinke et al.'s tail at the same
    # (ε, δ) of this μ-GDP curve calls it almost certain
    top = int(counts.max())
    assert fdp_p_value(m, 2 * half, top, b) < 0.1
    eps = float(dp_accounting.get_epsilon_gaussian(1.0 / mu, 1e-5))
    assert p_value(m, 2 * half, top, eps, 1e-5) > 0.5


def test_gaussian_family_orders_above_the_approx_family_and_steinke():
    """μ-GDP at (ε, δ) lies above the (ε, δ) curve, so it is rejected sooner: its bound is never lower."""
    for v in (260, 300, 350, 400, 450, 500):
        g = epsilon_lower_bound_fdp(1000, 500, v, delta=1e-5, alpha=0.05, family="gaussian")
        a = epsilon_lower_bound_fdp(1000, 500, v, delta=1e-5, alpha=0.05, family="approx")
        s = epsilon_lower_bound(1000, 500, v, delta=1e-5, alpha=0.05)
        assert g >= a - 1e-4 and g >= s
        assert a == pytest.approx(s, abs=0.05)  # two derivations for the same (ε, δ) claim


def test_ceilings_at_a_thousand_canaries():
    """500 of 1000 guessed, all right, 95 %, δ = 1e-5: the f-DP bound reaches ≈ 9.9, Steinke et al.'s ≈ 5.1."""
    assert fdp_ceiling(1000, 500, delta=1e-5, alpha=0.05) == pytest.approx(9.9, abs=0.1)
    assert epsilon_lower_bound(1000, 500, 500, delta=1e-5, alpha=0.05) == pytest.approx(5.1, abs=0.1)


def _fdp_grid_bound(scores: np.ndarray, included: np.ndarray, *, delta: float = 1e-5) -> float:
    """What one_run_bound reports as ``epsilon_lower_bound_fdp``, without its ceilings (for speed)."""
    grid = guess_grid(len(scores))
    alpha = 0.05 / len(grid)
    return max(epsilon_lower_bound_fdp(len(scores), kp + km, count_correct(scores, included, kp, km), delta=delta,
                                       alpha=alpha) for kp, km in grid)


def test_null_model_reports_zero_at_most_at_the_failure_rate():
    """Random scores (no leakage): ε̂ > 0 in at most ~5 % of audits, and 0 in the typical one."""
    rng = np.random.default_rng(11)
    found = []
    for _ in range(300):
        included = rng.random(1000) < 0.5
        found.append(_fdp_grid_bound(rng.standard_normal(1000), included))
    found = np.array(found)
    assert np.median(found) == 0.0
    assert np.mean(found > 0) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / len(found))
    rng = np.random.default_rng(12)
    scores, included = _canaries(rng, 1000, 0.0)
    assert one_run_bound(scores, included, delta=1e-5)["epsilon_lower_bound_fdp"] == _fdp_grid_bound(scores, included)


def test_without_privacy_the_bound_is_clearly_positive():
    """Perfectly separated scores: the f-DP bound is far above Steinke et al.'s, near its ceiling."""
    rng = np.random.default_rng(3)
    scores, included = _canaries(rng, 1000, 50.0)
    res = one_run_bound(scores, included, delta=1e-5)
    assert res["epsilon_lower_bound_fdp"] > res["epsilon_lower_bound"] + 2.0 > 6.0
    assert res["epsilon_lower_bound_fdp"] >= 0.8 * res["max_certifiable_fdp"]


def _alarms(rng: np.random.Generator, true_eps: float, claimed: float, trials: int) -> float:
    mu = gdp_mu(true_eps, 1e-5)
    hits = 0
    for _ in range(trials):
        scores, included = _canaries(rng, 500, mu)
        hits += bool(claim_exceeded(one_run_bound(scores, included, delta=1e-5, guesses=[(100, 100)]), claimed))
    return hits / trials


def test_bug_alarm_stays_within_its_level_for_a_correct_run_and_fires_for_a_buggy_one():
    """A run that is exactly what it claims (μ-GDP at ε = 1.5) is flagged in ≤ 5 % (+ noise) of audits; one that
    leaks like ε = 6 while claiming 1.5 is flagged almost always."""
    rng = np.random.default_rng(5)
    correct = _alarms(rng, 1.5, 1.5, 150)
    assert correct <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 150)
    assert _alarms(rng, 6.0, 1.5, 30) >= 0.9


def test_alarm_is_the_first_sentence_when_a_bound_exceeds_the_claim():
    rng = np.random.default_rng(2)
    scores, included = _canaries(rng, 1000, 50.0)
    res = one_run_bound(scores, included, delta=1e-5)
    assert claim_exceeded(res, 1.0) == ["steinke", "fdp"]
    assert one_run_plain(res, 1.0).startswith("BUG ALARM")
    assert claim_exceeded(res, 20.0) == [] and "BUG ALARM" not in one_run_plain(res, 20.0)
    assert claim_exceeded(res, None) == []


def test_the_alarm_tests_both_bounds_together_each_at_half_the_failure_rate():
    """Two level-5 % tests side by side would flag a correct run up to 10 % of the time: the alarm reads
    each bound at α/2 (Bonferroni), below the reported bounds, so the pair holds at the stated level."""
    rng = np.random.default_rng(3)
    scores, included = _canaries(rng, 1000, 1.5)
    res = one_run_bound(scores, included, delta=1e-5)
    level = res["alarm_level"]
    assert level["alpha_per_test"] == pytest.approx(res["alpha_per_guess_count"] / 2)
    assert level["epsilon_lower_bound"] <= res["epsilon_lower_bound"]
    assert level["epsilon_lower_bound_fdp"] <= res["epsilon_lower_bound_fdp"]
    assert res["epsilon_lower_bound_fdp"] > 0
    # a claim between the alarm's bound and the reported one: the reported bound alone is above it,
    # the joint test is not, so no alarm
    claim = (level["epsilon_lower_bound_fdp"] + res["epsilon_lower_bound_fdp"]) / 2
    if level["epsilon_lower_bound_fdp"] < res["epsilon_lower_bound_fdp"]:
        assert "fdp" not in claim_exceeded(res, claim)
    assert claim_exceeded(res, level["epsilon_lower_bound_fdp"] / 2 if level["epsilon_lower_bound_fdp"] else -1.0)

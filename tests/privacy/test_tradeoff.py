"""The risk dial: TPR bounds from a mechanism's own privacy profile, checked against brute-force Monte Carlo.

1-D examples whose optimal attack is a threshold on the released number (monotone likelihood ratio), so
the simulated threshold attack is the best attack. Every draw is seeded; each test takes about a second.
"""

from __future__ import annotations

import numpy as np
import pytest

from dpcore.errors import ConfigError
from dpcore.privacy.tradeoff import (
    approx_dp_profile,
    gaussian_tpr,
    mechanism_tpr,
    noise_for_tpr,
    risk_at,
    risk_sentence,
)

N = 400_000


def _threshold_attack(null: np.ndarray, alt: np.ndarray, fpr: float) -> tuple[float, float]:
    """(empirical FPR, TPR) of "member if the output exceeds the null's (1 − fpr) quantile"."""
    t = np.quantile(null, 1.0 - fpr)
    return float(np.mean(null > t)), float(np.mean(alt > t))


def _se(p: float) -> float:
    return float(np.sqrt(max(p * (1 - p), 1e-6) / N))


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_gaussian_dial_matches_monte_carlo_of_one_release(sigma):
    rng = np.random.default_rng(0)
    null, alt = rng.normal(0.0, sigma, N), rng.normal(1.0, sigma, N)
    for fpr in (0.01, 0.05, 0.2):
        f_emp, t_emp = _threshold_attack(null, alt, fpr)
        bound = mechanism_tpr("gaussian", sigma, 1.0, 1, f_emp)
        assert bound >= t_emp - 4 * _se(t_emp)  # no attack beats it
        assert bound == pytest.approx(t_emp, abs=4 * _se(t_emp) + 2e-3)  # and the best attack reaches it
        assert bound == pytest.approx(float(gaussian_tpr(f_emp, 1.0 / sigma)), abs=1e-3)  # Φ(Φ⁻¹(α) + 1/σ)


def test_laplace_dial_matches_monte_carlo_of_one_release():
    rng = np.random.default_rng(1)
    lam = 1.0
    null, alt = rng.laplace(0.0, lam, N), rng.laplace(1.0, lam, N)
    for fpr in (0.01, 0.1, 0.3):
        f_emp, t_emp = _threshold_attack(null, alt, fpr)
        bound = mechanism_tpr("laplace", lam, 1.0, 1, f_emp)
        assert bound >= t_emp - 4 * _se(t_emp)
        assert bound == pytest.approx(t_emp, abs=4 * _se(t_emp) + 3e-3)
    # pure ε = 1/λ: in the tail the curve is e^ε·α
    assert mechanism_tpr("laplace", lam, 1.0, 1, 0.01) == pytest.approx(np.e * 0.01, rel=2e-3)


@pytest.mark.parametrize("q", [0.3, 0.05])
def test_poisson_sampled_gaussian_dial_bounds_monte_carlo_in_both_directions(q):
    """One Poisson-sampled step: the member is in the batch with probability q. Both tests stay under the bound."""
    rng = np.random.default_rng(2)
    sigma = 0.7
    out = rng.normal(0.0, sigma, N)
    mixed = rng.normal(0.0, sigma, N) + (rng.random(N) < q)
    bound_tight = 0.0
    for fpr in (0.01, 0.1):
        for null, alt in ((out, mixed), (-mixed, -out)):  # "in" against "out", and the reverse test
            f_emp, t_emp = _threshold_attack(null, alt, fpr)
            bound = mechanism_tpr("gaussian", sigma, q, 1, f_emp)
            assert bound >= t_emp - 4 * _se(t_emp)
            bound_tight = max(bound_tight, t_emp / bound)
    assert bound_tight > 0.9  # the symmetric curve is reached by one of the two directions


def test_dial_is_monotone_in_epsilon_and_above_guessing():
    """Less noise, higher ε, more members caught at the same FPR; never below random guessing."""
    tprs = [risk_at("gaussian", s, 0.0345, 300, 1e-5) for s in (3.0, 2.0, 1.2, 0.8, 0.6)]
    eps = [r.epsilon for r in tprs]
    assert eps == sorted(eps)
    values = [r.tpr for r in tprs]
    assert values == sorted(values) and values[0] >= 0.01 and values[-1] < 1.0
    lap = [mechanism_tpr("laplace", lam, 0.1, 20, 0.01) for lam in (20.0, 10.0, 5.0)]
    assert lap == sorted(lap)


def test_approx_dp_curve_is_the_textbook_bound():
    prof = approx_dp_profile(1.0, 1e-3)
    assert prof.tpr_bound(0.01) == pytest.approx(np.e * 0.01 + 1e-3)
    assert prof.tpr_bound(0.9) == pytest.approx(1 - np.exp(-1.0) * (1 - 1e-3 - 0.9))
    y = np.linspace(0.05, 0.95, 7)
    assert np.allclose(prof.tpr_bound(prof.inverse_blowup(y)), y)


def test_reverse_dial_finds_the_least_noise_for_a_target():
    point = noise_for_tpr("gaussian", 0.0345, 300, 1e-5, target_tpr=0.05, fpr=0.01)
    assert point.tpr <= 0.05
    assert mechanism_tpr("gaussian", point.noise_multiplier * 0.99, 0.0345, 300, 0.01) > 0.05
    assert point.epsilon > 0
    with pytest.raises(ConfigError):
        noise_for_tpr("gaussian", 0.0345, 300, 1e-5, target_tpr=0.01, fpr=0.01)


def test_sentence_rounds_towards_the_attacker():
    text = risk_sentence(3.0, 0.01, 0.04321)
    assert text.startswith("At ε = 3, an attacker who wrongly accuses 1 in 100 non-members catches at most 4.4 in 100")

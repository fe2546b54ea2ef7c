"""Accountants against dp-accounting computed inside the tests, and calibration."""

from __future__ import annotations

import dp_accounting as dpa
import pytest
from dp_accounting import pld, rdp

from dpcore.errors import ConfigError
from dpcore.privacy.accounting import EpsilonCurve, calibrate_noise, compute_epsilon, epsilon_spent


def _oracle(kind: str, q: float, sigma: float, steps: int, delta: float) -> float:
    event = dpa.SelfComposedDpEvent(dpa.PoissonSampledDpEvent(q, dpa.GaussianDpEvent(sigma)), steps)
    acc = pld.PLDAccountant() if kind == "pld" else rdp.RdpAccountant()
    return acc.compose(event).get_epsilon(delta)


CASES = [(0.01, 1.0, 1000, 1e-5), (0.1, 0.8, 300, 1e-5), (0.05, 2.0, 200, 1e-6)]


@pytest.mark.parametrize("q,sigma,steps,delta", CASES)
def test_every_accountant_agrees_with_dp_accounting(q, sigma, steps, delta):
    tight = _oracle("pld", q, sigma, steps, delta)
    loose = _oracle("rdp", q, sigma, steps, delta)
    assert compute_epsilon("gaussian", sigma, q, steps, delta, "pld") == pytest.approx(tight, rel=1e-6)
    assert compute_epsilon("gaussian", sigma, q, steps, delta, "prv") == pytest.approx(tight, abs=0.03, rel=0.02)
    assert compute_epsilon("gaussian", sigma, q, steps, delta, "rdp") == pytest.approx(loose, rel=0.02)
    assert loose >= tight  # RDP is the looser (but valid) bound


def test_known_values_from_the_notes():
    assert compute_epsilon("gaussian", 1.0, 0.01, 1000, 1e-5, "prv") == pytest.approx(1.838, abs=0.01)
    assert compute_epsilon("laplace", 1.0, 0.01, 1000, 1e-5, "pld") == pytest.approx(1.124, abs=0.01)


@pytest.mark.parametrize("accountant", ["rdp", "prv", "pld"])
@pytest.mark.parametrize("target", [1.0, 8.0])
def test_calibrated_noise_meets_the_target(accountant, target):
    q, steps, delta = 0.1, 200, 1e-5
    sigma = calibrate_noise("gaussian", target, delta, q, steps, accountant)
    eps = compute_epsilon("gaussian", sigma, q, steps, delta, accountant)
    assert eps <= target
    assert eps >= 0.98 * target  # not wastefully noisy
    # and an independent accountant agrees that the bound holds
    assert _oracle("pld", q, sigma, steps, delta) <= target * 1.01


def test_laplace_calibration_and_pld_only():
    lam = calibrate_noise("laplace", 3.0, 1e-5, 0.01, 1000, "pld")
    assert lam == pytest.approx(0.464, abs=0.01)
    with pytest.raises(ConfigError, match="PLD"):
        compute_epsilon("laplace", 1.0, 0.01, 100, 1e-5, "rdp")


def test_epsilon_curve_is_an_upper_bound_and_monotone():
    for accountant in ("rdp", "prv"):
        curve = EpsilonCurve("gaussian", 1.0, 0.05, 1e-5, accountant, 200, grid_points=10)
        values = [curve.at(s) for s in range(0, 201, 7)]
        assert values == sorted(values)
        for s in (1, 13, 57, 200):
            assert curve.at(s) >= compute_epsilon("gaussian", 1.0, 0.05, s, 1e-5, accountant) - 1e-9
        assert curve.at(200) == pytest.approx(curve.final(200).epsilon)


def test_bad_inputs_are_refused():
    with pytest.raises(ConfigError):
        compute_epsilon("gaussian", 0.0, 0.01, 10, 1e-5)
    with pytest.raises(ConfigError):
        compute_epsilon("gaussian", 1.0, 0.01, 10, 1.5)
    with pytest.raises(ConfigError, match="no DP guarantee"):
        compute_epsilon("naive", 1.0, 0.01, 10, 1e-5)
    with pytest.raises(ConfigError):
        calibrate_noise("gaussian", -1.0, 1e-5, 0.01, 10)
    with pytest.raises(ConfigError, match="cannot be reached"):
        calibrate_noise("gaussian", 1e-4, 1e-9, 1.0, 100000)
    assert epsilon_spent("gaussian", 1.0, 0.01, 0, 1e-5).epsilon == 0.0

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


def _opacus_rdp(q: float, sigma: float, steps: int, delta: float) -> float:
    import warnings

    from opacus.accountants import RDPAccountant

    acc = RDPAccountant()
    acc.history = [(sigma, q, steps)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return acc.get_epsilon(delta)


@pytest.mark.filterwarnings("ignore:Optimal order")
def test_torch_free_rdp_gives_opacus_numbers():
    """The ported RDP accountant (no torch) reports what Opacus's RDPAccountant reports, to 1e-9."""
    import numpy as np
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis import rdp as opacus_rdp

    from dpcore.privacy.accounting import RDP_ORDERS, compute_rdp, rdp_to_epsilon

    assert list(RDP_ORDERS) == RDPAccountant.DEFAULT_ALPHAS
    orders = RDPAccountant.DEFAULT_ALPHAS
    for q in (1e-4, 0.004, 0.05, 0.5, 1.0):
        for sigma in (0.4, 1.0, 3.0):
            ours = compute_rdp(q=q, noise_multiplier=sigma, steps=1)
            theirs = opacus_rdp.compute_rdp(q=q, noise_multiplier=sigma, steps=1, orders=orders)
            # Tiny RDP values (q = 1e-4) are log(1 + ~1e-9): both sums carry ~1e-13 absolute rounding,
            # which is all the two orders of summation differ by; ε below is compared at 1e-9 relative.
            np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
            for steps in (1, 300, 20000):
                for delta in (1e-5, 1e-9):
                    expected, _ = opacus_rdp.get_privacy_spent(orders=orders, rdp=theirs * steps, delta=delta)
                    case = (q, sigma, steps, delta)
                    assert rdp_to_epsilon(rdp=ours * steps, delta=delta) == pytest.approx(expected, rel=1e-9), case
    for q, sigma, steps, delta in ((0.01, 1.0, 1000, 1e-5), (0.004, 0.7, 10000, 1e-6), (1.0, 5.0, 50, 1e-5)):
        expected = _opacus_rdp(q, sigma, steps, delta)
        assert compute_epsilon("gaussian", sigma, q, steps, delta, "rdp") == pytest.approx(expected, rel=1e-9)


@pytest.mark.filterwarnings("ignore:Optimal order")
def test_torch_free_rdp_curve_and_calibration_give_opacus_numbers():
    from opacus.accountants.utils import get_noise_multiplier

    curve = EpsilonCurve("gaussian", 0.9, 0.02, 1e-6, "rdp", 500)
    for step in (1, 17, 250, 500, 777):
        assert curve.at(step) == pytest.approx(_opacus_rdp(0.02, 0.9, step, 1e-6), rel=1e-9, abs=0)
    sigma = calibrate_noise("gaussian", 3.0, 1e-5, 0.01, 1000, "rdp")
    assert _opacus_rdp(0.01, sigma, 1000, 1e-5) <= 3.0
    assert sigma == pytest.approx(0.865, abs=0.002)  # the notes' RDP value
    opacus_sigma = get_noise_multiplier(target_epsilon=3.0, target_delta=1e-5, sample_rate=0.01, steps=1000,
                                        accountant="rdp", epsilon_tolerance=0.005)
    assert sigma == pytest.approx(opacus_sigma, rel=0.01)


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

"""The vectorised RDP (dpcore.privacy.rdp_vec) against the loop-for-loop port of Opacus's arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from dpcore.privacy import rdp_vec
from dpcore.privacy.accounting import (
    RDP_ORDERS,
    _log_a_frac,
    compute_rdp,
    compute_rdp_reference,
    rdp_to_epsilon,
)

QS = (1e-4, 0.004, 0.05, 0.11, 0.5, 0.9, 1.0)
SIGMAS = (0.05, 0.3, 0.8, 1.0, 1.37, 3.0, 20.0)


@pytest.mark.parametrize("q", QS)
def test_vectorised_rdp_is_the_reference_arithmetic(q):
    ours = rdp_vec.rdp_table(q, SIGMAS, RDP_ORDERS, _log_a_frac)
    reference = np.array([compute_rdp_reference(q=q, noise_multiplier=s, steps=1) for s in SIGMAS])
    # log A_α of a tiny RDP is log(1 + ~1e-9): both carry ~1e-13 absolute rounding (summation order)
    np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=1e-12)
    for i, sigma in enumerate(SIGMAS):
        np.testing.assert_array_equal(compute_rdp(q=q, noise_multiplier=sigma, steps=3), ours[i] * 3)
        for steps in (1, 300, 20_000):
            for delta in (1e-5, 1e-9):
                exact = rdp_to_epsilon(rdp=reference[i] * steps, delta=delta)
                vec = rdp_vec.epsilons(ours[i] * steps, delta, RDP_ORDERS)
                assert vec == pytest.approx(exact, rel=1e-9), (q, sigma, steps, delta)


def test_epsilons_vectorise_over_noise_and_steps():
    table = rdp_vec.rdp_table(0.02, [0.7, 1.1], RDP_ORDERS, _log_a_frac)
    steps = np.array([1, 10, 500])
    eps = rdp_vec.epsilons(table[:, None, :] * steps[None, :, None], 1e-6, RDP_ORDERS)
    assert eps.shape == (2, 3)
    for i in range(2):
        for j, t in enumerate(steps):
            assert eps[i, j] == pytest.approx(rdp_to_epsilon(rdp=table[i] * t, delta=1e-6), rel=1e-12)
    assert (np.diff(eps, axis=1) > 0).all() and (eps[0] > eps[1]).all()  # more steps, less noise: more ε


def test_pairs_the_arrays_cannot_finish_go_to_the_scalar_loop(monkeypatch):
    """A series longer than MAX_TERMS is summed by the scalar loop: same numbers, not a truncated sum."""
    full = rdp_vec.rdp_table(0.3, [0.5, 1.0], RDP_ORDERS, _log_a_frac)
    calls = []

    def scalar(q, sigma, alpha):
        calls.append(alpha)
        return _log_a_frac(q, sigma, alpha)

    monkeypatch.setattr(rdp_vec, "MAX_TERMS", 64)
    cut = rdp_vec.rdp_table(0.3, [0.5, 1.0], RDP_ORDERS, scalar)
    assert calls  # σ ≈ 0.5–1 at q = 0.3 needs thousands of terms for the low orders
    np.testing.assert_allclose(cut, full, rtol=1e-9, atol=1e-12)


def test_special_cases_follow_the_scalar_port():
    assert (rdp_vec.rdp_table(0.0, [1.0], RDP_ORDERS, _log_a_frac) == 0).all()
    q1 = rdp_vec.rdp_table(1.0, [2.0], RDP_ORDERS, _log_a_frac)[0]
    np.testing.assert_allclose(q1, np.asarray(RDP_ORDERS) / 8.0)
    assert np.isinf(rdp_vec.rdp_table(0.1, [0.0], RDP_ORDERS, _log_a_frac)).all()
    with_inf = rdp_vec.rdp_table(0.1, [1.0], (1.5, 2.0, float("inf")), _log_a_frac)[0]
    assert np.isinf(with_inf[2]) and np.isfinite(with_inf[:2]).all()
    assert rdp_vec.epsilons(np.full(len(RDP_ORDERS), np.nan), 1e-5, RDP_ORDERS) == np.inf


def test_both_agree_with_a_high_precision_integral():
    """A_α = E_{z~N(0,σ²)}[((1−q) + q·e^{(2z−1)/(2σ²)})^α] (Mironov et al. 2019), at 50 digits."""
    mp = pytest.importorskip("mpmath").mp
    mp.dps = 50
    for q, sigma in ((1e-3, 1.0), (0.05, 0.8), (0.3, 2.0)):
        ours = compute_rdp(q=q, noise_multiplier=sigma, steps=1)
        for alpha in (1.5, 2.5, 7.0, 40.0):
            qq, ss = mp.mpf(q), mp.mpf(sigma)

            def f(z, qq=qq, ss=ss, alpha=alpha):
                return mp.npdf(z, 0, ss) * ((1 - qq) + qq * mp.e ** ((2 * z - 1) / (2 * ss**2))) ** alpha

            exact = float(mp.log(mp.quad(f, [-mp.inf, -10 * ss, 0, 10 * ss, 60 * ss, mp.inf])) / (alpha - 1))
            assert ours[RDP_ORDERS.index(alpha)] == pytest.approx(exact, rel=1e-7, abs=1e-13), (q, sigma, alpha)

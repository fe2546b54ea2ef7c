"""Noise-to-signal comparison of Gaussian and Laplace DP-SGD at equal ε."""

from __future__ import annotations

import math

import pytest
import torch

from dpcore.privacy.accounting import compute_epsilon
from dpcore.privacy.mechanisms import comparison_sentences, noise_to_signal


def test_both_mechanisms_meet_the_same_epsilon_and_laplace_loses_by_sqrt_d():
    rows = noise_to_signal(3.0, 1e-5, 0.1, 200, [100, 10_000, 1_000_000])
    for row in rows:
        assert compute_epsilon("gaussian", row.gaussian_sigma, 0.1, 200, 1e-5, "pld") <= 3.0
        assert compute_epsilon("laplace", row.laplace_lambda, 0.1, 200, 1e-5, "pld") <= 3.0
    gaps = [r.laplace_ratio_dense / r.gaussian_ratio for r in rows]
    assert gaps[1] / gaps[0] == pytest.approx(10.0, rel=1e-6)  # 100× more parameters → 10× worse
    assert gaps[-1] > 100
    assert "barely trains" in " ".join(comparison_sentences(rows, 3.0))


def test_noise_norms_match_sampled_noise():
    row = noise_to_signal(3.0, 1e-5, 0.1, 200, [50_000])[0]
    gen = torch.Generator().manual_seed(0)
    gauss = torch.normal(0.0, row.gaussian_sigma, size=(50_000,), generator=gen)
    assert float(gauss.norm()) == pytest.approx(row.gaussian_noise_norm, rel=0.02)
    e1 = torch.empty(50_000).exponential_(1.0, generator=gen)
    e2 = torch.empty(50_000).exponential_(1.0, generator=gen)
    lap = row.laplace_lambda * (e1 - e2)
    assert float(lap.norm()) == pytest.approx(row.laplace_noise_norm, rel=0.03)
    assert row.laplace_ratio_dense == pytest.approx(row.laplace_noise_norm * math.sqrt(50_000))

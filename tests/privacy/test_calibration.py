"""calibrate_noise: the contract (ε ≤ target, not wastefully noisy), few exact evaluations, reuse of known values."""

from __future__ import annotations

import pytest

from dpcore.privacy import accounting
from dpcore.privacy.accounting import compute_epsilon
from dpcore.privacy.calcache import calibrate_noise, clear_calibration_memo


@pytest.fixture(autouse=True)
def _fresh_memo():
    clear_calibration_memo()
    yield
    clear_calibration_memo()


def _counting(monkeypatch) -> dict[str, int]:
    counts: dict[str, int] = {}
    real = accounting.compute_epsilon

    def counted(mechanism, noise, q, steps, delta, accountant="rdp"):
        counts[accountant] = counts.get(accountant, 0) + 1
        return real(mechanism, noise, q, steps, delta, accountant)

    monkeypatch.setattr(accounting, "compute_epsilon", counted)
    return counts


CASES = [  # mechanism, accountant, ε, q, steps, δ
    ("gaussian", "rdp", 0.3, 0.01, 1000, 1e-6),
    ("gaussian", "rdp", 3.0, 0.11, 300, 1e-5),
    ("gaussian", "rdp", 50.0, 0.5, 40, 1e-5),
    ("gaussian", "pld", 1.0, 0.05, 400, 1e-5),
    ("gaussian", "pld", 8.0, 0.2, 100, 1e-7),
    ("gaussian", "prv", 3.0, 0.02, 1000, 1e-5),
    ("laplace", "pld", 3.0, 0.1, 150, 1e-5),
]


@pytest.mark.parametrize("mechanism,accountant,target,q,steps,delta", CASES)
def test_the_answer_meets_the_target_without_wasting_noise(mechanism, accountant, target, q, steps, delta):
    sigma = calibrate_noise(mechanism, target, delta, q, steps, accountant)
    eps = compute_epsilon(mechanism, sigma, q, steps, delta, accountant)
    assert (1 - 0.005) * target <= eps <= target


def test_a_tight_accountant_needs_few_exact_evaluations(monkeypatch):
    """RDP brackets PRV/PLD from above; false position then lands in the window in a step or two.

    (The bisection this replaced needed 12–14 PLD evaluations for these cases.)
    """
    counts = _counting(monkeypatch)
    for target, q, steps in ((3.0, 0.11, 300), (8.0, 0.0625, 300), (0.5, 0.01, 2000)):
        counts.clear()
        calibrate_noise("gaussian", target, 1e-5, q, steps, "pld")
        assert counts["pld"] <= 6, (target, counts)


def test_a_new_target_for_the_same_settings_reuses_known_values(monkeypatch):
    """The ε slider: values computed for earlier targets bracket the next one (they are exact, not guesses)."""
    first = calibrate_noise("gaussian", 3.0, 1e-5, 0.05, 400, "pld")
    counts = _counting(monkeypatch)
    again = calibrate_noise("gaussian", 3.0, 1e-5, 0.05, 400, "pld")
    assert again == first and counts.get("pld", 0) <= 1 and "rdp" not in counts
    counts.clear()
    nearby = calibrate_noise("gaussian", 3.2, 1e-5, 0.05, 400, "pld")
    assert counts.get("pld", 0) <= 3
    clear_calibration_memo()
    fresh = calibrate_noise("gaussian", 3.2, 1e-5, 0.05, 400, "pld")
    assert nearby == pytest.approx(fresh, rel=0.01)
    assert compute_epsilon("gaussian", nearby, 0.05, 400, 1e-5, "pld") <= 3.2


def test_values_are_remembered_per_setting_not_across_settings(monkeypatch):
    calibrate_noise("gaussian", 3.0, 1e-5, 0.05, 400, "rdp")
    counts = _counting(monkeypatch)
    calibrate_noise("gaussian", 3.0, 1e-5, 0.05, 401, "rdp")  # one step more: nothing known
    assert counts["rdp"] >= 3


def test_tiny_noise_and_unreachable_targets_keep_their_answers():
    # a huge ε at q = 1 stops at the small end, as before
    sigma = calibrate_noise("gaussian", 1e4, 1e-5, 1.0, 1, "rdp")
    assert sigma < 1.5 * accounting.MIN_NOISE
    assert compute_epsilon("gaussian", sigma, 1.0, 1, 1e-5, "rdp") <= 1e4
    with pytest.raises(accounting.ConfigError, match="cannot be reached"):
        calibrate_noise("gaussian", 1e-4, 1e-9, 1.0, 100_000)


@pytest.mark.parametrize("mechanism,noise,q,steps", [("gaussian", 1.3, 0.05, 300), ("gaussian", 0.9, 0.004, 300),
                                                     ("laplace", 0.8, 0.11, 300), ("gaussian", 4.0, 1.0, 20)])
def test_a_pld_curve_builds_one_step_once_and_gets_the_accountants_numbers(mechanism, noise, q, steps, monkeypatch):
    curve = accounting.EpsilonCurve(mechanism, noise, q, 1e-6, "pld", steps, grid_points=4)
    expected = [compute_epsilon(mechanism, noise, q, s, 1e-6, "pld") for s in curve.grid]
    built = []
    real = accounting._sampled_pld
    monkeypatch.setattr(accounting, "_sampled_pld", lambda *a: built.append(a) or real(*a))
    assert [curve.at(s) for s in curve.grid] == expected  # the very floats, not approximately
    assert len(built) == (1 if q < 1 else 0)

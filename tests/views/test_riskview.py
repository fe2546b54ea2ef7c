"""The risk sentence next to an ε, and the audit view's two bounds and bug alarm (no Streamlit, no torch)."""

from __future__ import annotations

import pytest

from dpcore.privacy.tradeoff import mechanism_tpr
from dpcore.training.result import RunResult
from dpcore.views import auditview, riskview


def test_result_sentence_uses_the_runs_own_mechanism():
    result = {"mechanism": "gaussian", "noise_multiplier": 1.2, "sample_rate": 0.05, "steps": 100, "delta": 1e-5,
              "epsilon": 3.0, "privacy_unit": "user"}
    text = riskview.result_risk_sentence(RunResult.from_dict(result))
    tpr = mechanism_tpr("gaussian", 1.2, 0.05, 100, 0.01)
    assert text.startswith("At ε = 3, an attacker who wrongly accuses 1 in 100 non-members (the people")
    assert "catches at most" in text and "in 100 members" in text
    assert riskview.risk_point("gaussian", 1.2, 0.05, 100, 1e-5).tpr == pytest.approx(tpr)
    assert riskview.result_risk_sentence(RunResult.from_dict({**result, "mechanism": "none"})) is None
    assert riskview.result_risk_sentence(RunResult.from_dict({**result, "noise_multiplier": None})) is None


def test_plan_sentence_reads_a_plan_or_a_dict():
    from types import SimpleNamespace

    fields = {"noise_multiplier": 1.2, "sample_rate": 0.05, "steps": 100, "delta": 1e-5}
    assert riskview.plan_risk_sentence("gaussian", SimpleNamespace(**fields), 3.0) == \
        riskview.plan_risk_sentence("gaussian", fields, 3.0) is not None


def test_target_row_reverses_the_dial():
    row = riskview.target_row("gaussian", 0.05, 100, 1e-5, 0.1)
    assert row["TPR bound"] <= 0.1 and row["ε"] > 0


def _audit(value: float, fdp: float, claimed: float | None) -> dict:
    one = {"epsilon_lower_bound": value, "max_certifiable": 5.0, "guesses": 200, "correct": 150,
           "epsilon_lower_bound_fdp": fdp, "max_certifiable_fdp": 9.0, "fdp_family": "gaussian",
           "guesses_fdp": 100, "correct_fdp": 90, "confidence": 0.95}
    return {"version": 3, "one_run": one, "claimed_epsilon": claimed,
            "empirical_epsilon": {"value": value, "value_fdp": fdp, "confidence": 0.95}}


def test_both_bounds_and_the_alarm_when_one_exceeds_the_claim():
    ok = _audit(0.5, 1.1, 3.0)
    assert [r["ε ≥"] for r in auditview.bound_rows(ok)] == [0.5, 1.1]
    assert auditview.fdp_bound(ok)["value"] == 1.1 and auditview.bug_alarm(ok) is None
    bad = _audit(0.5, 3.4, 3.0)
    alarm = auditview.bug_alarm(bad)
    assert alarm.startswith("BUG ALARM") and "3.40" in alarm and "f-DP" in alarm
    assert [r["above the claim"] for r in auditview.bound_rows(bad)] == [False, True]
    assert auditview.bug_alarm(_audit(9.0, 9.5, None)) is None  # no claim, no alarm
    assert auditview.bug_alarm({**ok, "bug_alarm": "BUG ALARM: stored"}) == "BUG ALARM: stored"

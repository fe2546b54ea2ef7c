"""The one table from a supervisor's verdict (or a worker's ending) to a run's final status and sentence.

Both executors settle runs through it, so these cases pin what the local and the Ray executor write;
and the registry that picks an executor by name, without importing Ray unless asked.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dpcore.errors import DPCoreError
from dpcore.runs.executors.registry import EXECUTOR_KINDS, executor_kind
from dpcore.runs.lifecycle import (
    DIED_MESSAGE,
    Ending,
    Verdict,
    conclude,
    duration_text,
    live_verdict,
    settle,
)
from dpcore.runs.limits import ServerLimits
from dpcore.runs.store import Run, Status

LIMITS = ServerLimits(max_run_seconds=7200)


def run(**kw) -> Run:
    return Run(id="r1", owner="o", status="running", config={}, created_at=0.0, started_at=0.0, host="h", **kw)


def outcome(verdict: Verdict, **kw):
    return settle(run(**kw), verdict, grace_s=5, stale_after_s=60, limits=LIMITS)


def test_status_is_a_str_enum_equal_to_the_stored_strings() -> None:
    assert Status.FAILED == "failed" and f"{Status.CANCELLED}" == "cancelled"
    assert [s for s in Status if s.is_terminal] == ["finished", "failed", "cancelled"]


@pytest.mark.parametrize(("verdict", "kw", "status", "error", "kill"), [
    (Verdict.DEAD, {}, "failed", DIED_MESSAGE, False),
    (Verdict.DEAD, {"cancel_requested_at": 1.0}, "cancelled", None, False),
    (Verdict.DEAD, {"stop_reason": "the cap"}, "failed", "the cap", False),
    (Verdict.STUCK, {}, "failed", "the worker stopped responding (no heartbeat for over 60 s: stopped or hung), so "
     "it was killed; the metrics it had written are kept", True),
    (Verdict.KILL, {"cancel_requested_at": 1.0}, "cancelled",
     "did not stop within 5 s of the cancel request, so it was killed", True),
    (Verdict.KILL, {"cancel_requested_at": 1.0, "stop_reason": "the cap"}, "failed", "the cap", True),
    (Verdict.STALE, {}, "failed", "the worker on h stopped sending heartbeats (none for over 60 s)", False),
])
def test_each_verdict_ends_the_run_one_way(verdict, kw, status, error, kill) -> None:
    got = outcome(verdict, **kw)
    assert (got.status, got.error, got.kill, got.stop_reason) == (status, error, kill, None)


def test_overtime_asks_the_run_to_stop_with_the_caps_sentence() -> None:
    got = outcome(Verdict.OVERTIME)
    assert got.status is None and not got.kill
    assert got.stop_reason.startswith("the run reached this server's limit of 2 h of wall time per run")
    assert [duration_text(s) for s in (7200, 5400, 45)] == ["2 h", "90 min", "45 s"]


def test_a_live_run_is_left_alone_until_it_is_overdue_silent_or_past_the_cap() -> None:
    assert live_verdict(run(), 10.0, False, 5, LIMITS) is None
    assert live_verdict(run(cancel_requested_at=1.0), 10.0, False, 5, LIMITS) is Verdict.KILL
    assert live_verdict(run(), 10.0, True, 5, LIMITS) is Verdict.STUCK
    assert live_verdict(run(), 7201.0, False, 5, LIMITS) is Verdict.OVERTIME


def test_the_workers_last_word_follows_the_server() -> None:
    stopped = Ending(Status.CANCELLED, None, {"stopped": True})
    failed = Ending(Status.FAILED, "the cap", stopped.result)
    assert conclude(stopped, run(stop_reason="the cap"), outside="x") == failed
    assert conclude(stopped, run(), outside="by SIGTERM").error == "by SIGTERM"
    assert conclude(stopped, run(cancel_requested_at=1.0), outside="x") == stopped
    finished = Ending(Status.FINISHED, None, {})
    assert conclude(finished, run(stop_reason="the cap"), outside="x") == finished


def test_an_unknown_executor_lists_the_known_ones() -> None:
    assert EXECUTOR_KINDS == ("local", "ray")
    with pytest.raises(DPCoreError, match="DPCORE_EXECUTOR must be one of local, ray, got 'slurm'"):
        executor_kind("slurm")


def test_the_registry_and_the_local_executor_do_not_import_ray() -> None:
    code = ("import sys; from dpcore.runs.executors.registry import make_executor; import dpcore.runs.worker; "
            "assert 'ray' not in sys.modules, 'ray was imported'")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr

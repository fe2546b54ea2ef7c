"""Views of a run's privacy audit (``audit.json``) for the dashboard: load, shape, compare.

Pure data shaping (no Streamlit, no plotting): the pages call these and hand the result to
:mod:`dpcore.views.charts`. An audit is the JSON :func:`dpcore.audit.run.run_audit` writes; the run's
artifact is named ``audit``. Missing or malformed parts give ``None``/empty, never an exception,
so an old or partial audit still shows what it has.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dpcore.runs.store import Run, RunStore
from dpcore.views.meaning import guarantee_of, run_epsilon, run_label

AUDIT_ARTIFACT = "audit"
#: Exposure is compared across runs on canaries planted at least this many times.
MIN_INSERTIONS = 10


def load_audit(store: RunStore, run: Run) -> dict[str, Any] | None:
    """The run's audit.json as a dict, or None when it has none (or it cannot be read)."""
    path = store.artifacts(run.id).get(AUDIT_ARTIFACT)
    if not path:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def how_to_audit(checkpoint: str | None) -> str:
    """One sentence on how to get an audit for a run that has none."""
    cli = (f"`python -m dpcore audit --checkpoint {checkpoint} --out <folder>`" if checkpoint
           else "`python -m dpcore audit --checkpoint <model.pt> --out <folder>`")
    return ("This run has no privacy audit. Tick **Audit privacy at the end** on the New run form for the next "
            f"run, or audit this checkpoint from a terminal: {cli}.")


def attacks(audit: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The membership attacks (``loss``, ``calibrated``), wherever this audit version keeps them."""
    found = audit.get("attacks")
    if not isinstance(found, Mapping):
        found = (audit.get("membership") or {}).get("attacks")
    return {k: dict(v) for k, v in (found or {}).items() if isinstance(v, Mapping)}


def roc_curves(audit: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One {name, auc, fpr, tpr} per attack that has a ROC curve."""
    out = []
    for name, attack in attacks(audit).items():
        roc = attack.get("roc") or {}
        if roc.get("fpr") and roc.get("tpr"):
            out.append({"name": name, "auc": attack.get("auc"), "fpr": list(roc["fpr"]), "tpr": list(roc["tpr"])})
    return out


def exposure_groups(audit: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Exposure per insertion count, sorted by insertions."""
    groups = [dict(g) for g in audit.get("exposure_by_insertions") or [] if g.get("insertions") is not None]
    return sorted(groups, key=lambda g: g["insertions"])


def mean_exposure(audit: Mapping[str, Any], min_insertions: int = MIN_INSERTIONS) -> float | None:
    """Mean exposure of canaries planted at least ``min_insertions`` times (None: no such canaries)."""
    groups = [g for g in exposure_groups(audit) if g["insertions"] >= min_insertions
              and g.get("mean_exposure") is not None]
    if not groups:
        return None
    weights = [max(1, int(g.get("num_canaries") or 1)) for g in groups]
    return sum(g["mean_exposure"] * w for g, w in zip(groups, weights)) / sum(weights)


def empirical_epsilon(audit: Mapping[str, Any]) -> dict[str, Any] | None:
    """{value, confidence, attack, max_certifiable} of the audit's ε lower bound, or None.

    Only the one-run audit (Steinke et al. 2023) gives one. Audits written before it (version 1)
    took theirs from user-level membership inference with Clopper–Pearson intervals, which is not a
    sound bound on the example-level ε: those are not shown (None).
    """
    emp = audit.get("empirical_epsilon")
    if not isinstance(emp, Mapping) or emp.get("value") is None or one_run(audit) is None:
        return None
    return dict(emp)


def one_run(audit: Mapping[str, Any]) -> dict[str, Any] | None:
    """The one-run audit's full result (m, guesses, correct, bound, …), or None when the run planted no canaries."""
    found = audit.get("one_run")
    return dict(found) if isinstance(found, Mapping) and found.get("epsilon_lower_bound") is not None else None


def fdp_bound(audit: Mapping[str, Any]) -> dict[str, Any] | None:
    """{value, max_certifiable, family, attack, guesses, correct} of the f-DP bound (Mahloujifar et al. 2024), or None.

    Audits before version 3 have none.
    """
    one = one_run(audit)
    if one is None or one.get("epsilon_lower_bound_fdp") is None:
        return None
    return {"value": one["epsilon_lower_bound_fdp"], "max_certifiable": one.get("max_certifiable_fdp"),
            "family": one.get("fdp_family"), "attack": one.get("fdp_attack"), "guesses": one.get("guesses_fdp"),
            "correct": one.get("correct_fdp"), "confidence": one.get("confidence")}


def bound_rows(audit: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Both one-run bounds side by side (a table for the report and the lab); empty without a one-run audit."""
    one = one_run(audit)
    if one is None:
        return []
    rows = [{"bound": "Steinke, Nasr & Jagielski (2023)", "ε ≥": one["epsilon_lower_bound"],
             "most it could show": one.get("max_certifiable"), "guesses": one.get("guesses"),
             "correct": one.get("correct")}]
    fdp = fdp_bound(audit)
    if fdp is not None:
        rows.append({"bound": f"f-DP, Mahloujifar, Melis & Chaudhuri (2024), {fdp['family']} curves",
                     "ε ≥": fdp["value"], "most it could show": fdp["max_certifiable"], "guesses": fdp["guesses"],
                     "correct": fdp["correct"]})
    claimed = audit.get("claimed_epsilon")
    for row in rows:
        row["above the claim"] = bool(claimed is not None and row["ε ≥"] > claimed)
    return rows


def bug_alarm(audit: Mapping[str, Any]) -> str | None:
    """The bug alarm's sentence when a one-run bound exceeds the run's claimed ε, else None.

    Recomputed from the bounds and the claim as well as read, so that an audit.json whose sentence was
    lost, or an older one, still raises it.
    """
    found = audit.get("bug_alarm")
    if found:
        return str(found)
    one = one_run(audit)
    claimed = audit.get("claimed_epsilon")
    if one is None or claimed is None:
        return None
    rows = bound_rows(audit)
    level_bounds = one.get("alarm_level")  # both bounds at α/2 each (Bonferroni); older audits: the bounds
    if isinstance(level_bounds, Mapping):
        tested = [level_bounds.get("epsilon_lower_bound"), level_bounds.get("epsilon_lower_bound_fdp")]
        above = [row for row, value in zip(rows, tested, strict=False) if value is not None and value > claimed]
    else:
        above = [row for row in rows if row["above the claim"]]
    if not above:
        return None
    shown = " and ".join(f"{row['bound']} shows ε ≥ {row['ε ≥']:.2f}" for row in above)
    level = 1.0 - float(one.get("confidence") or 0.95)
    return (f"BUG ALARM: the audit proves more leakage than this run claims: {shown}, above the claimed "
            f"ε = {claimed:.2f}. Both bounds are tested together (each at {1 - level / 2:.1%}): a correct DP run "
            f"raises this alarm at most {level:.0%} of the time.")


def no_bound_reason(audit: Mapping[str, Any]) -> str | None:
    """Why the audit has no empirical ε (None when it has one)."""
    if empirical_epsilon(audit) is not None:
        return None
    emp = audit.get("empirical_epsilon")
    note = emp.get("note") if isinstance(emp, Mapping) else None
    if note:
        return str(note)
    return ("No sound empirical ε: this audit predates the one-run audit (its membership-inference bound was "
            "user-level and assumed independent trials, so it is not shown). Launch a run with the audit ticked "
            "for a one-run bound.")


def plain_lines(audit: Mapping[str, Any]) -> list[str]:
    """The audit's plain sentences, without the unsound membership-inference ε of version-1 audits."""
    lines = [str(line) for line in audit.get("plain") or []]
    if _version(audit) < 2:
        lines = [line for line in lines if "the attack shows ε ≥" not in line]
    return lines


def _version(audit: Mapping[str, Any]) -> int:
    try:
        return int(audit.get("version") or 1)
    except (TypeError, ValueError):
        return 1


def audit_points(store: RunStore, runs: Sequence[Run]) -> list[dict[str, Any]]:
    """One point per audited run: label, ε (None: no guarantee), mean exposure (k ≥ 10) and AUC."""
    points = []
    for run in runs:
        audit = load_audit(store, run)
        if audit is None:
            continue
        private = guarantee_of(run) == "dp"
        eps = run_epsilon(run) if private else None
        if eps is None and private:
            eps = audit.get("claimed_epsilon")
        points.append({"label": run_label(run), "run": run.id, "mechanism": run.config.get("mechanism"),
                       "epsilon": eps, "private": private, "mean_exposure": mean_exposure(audit),
                       "auc": audit.get("auc")})
    return points

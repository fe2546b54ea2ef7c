"""A small fake audit.json (the schema dpcore.audit.run.run_audit writes) for view and page tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dpcore.runs.store import RunStore

ONE_RUN = "one-run (Steinke et al. 2023)"


def fake_one_run(value: float = 0.21) -> dict[str, Any]:
    return {"m": 1000, "num_included": 497, "guesses": 200, "correct": 121, "k_plus": 100, "k_minus": 100,
            "epsilon_lower_bound": value, "confidence": 0.95, "delta": 1e-5, "alpha_per_guess_count": 0.01,
            "max_certifiable": 5.3, "tried": [], "attack": ONE_RUN, "score": "loss", "method": "…",
            "plain": f"One-run audit (Steinke et al. 2023): … shows ε ≥ {value:.2f} with 95% confidence"}


def fake_audit(claimed: float | None = 3.0, auc: float = 0.52, exposure: float = 2.0,
               one_run: bool = True) -> dict[str, Any]:
    """An audit.json as run_audit writes it (version 2); ``one_run=False``: a run that planted no audit canaries."""
    empirical = ({"value": 0.21, "confidence": 0.95, "attack": ONE_RUN, "max_certifiable": 5.3} if one_run else
                 {"value": None, "confidence": 0.95, "attack": None, "max_certifiable": None,
                  "note": "No one-run ε bound: this run planted no audit canaries (tick \"audit\" at launch)."})
    return {
        "format": "dpcore-audit", "version": 2, "claimed_epsilon": claimed, "delta": 1e-5, "auc": auc,
        "tpr_at_fpr": {"0.01": 0.012, "0.001": 0.001},
        "empirical_epsilon": empirical,
        "one_run": fake_one_run() if one_run else None,
        "plain": [fake_one_run()["plain"] if one_run else empirical["note"],
                  "Canaries planted 10 time(s): mean exposure 2.0 of 13.3 bits; guessing such a secret would take "
                  "about 2^11.3 tries"],
        "exposure": [{"canary_id": "c1", "insertions": 1, "exposure": 1.0},
                     {"canary_id": "c2", "insertions": 10, "exposure": exposure}],
        "exposure_by_insertions": [
            {"insertions": 1, "num_canaries": 1, "mean_exposure": 1.0, "min_exposure": 1.0, "max_exposure": 1.0,
             "max_possible": 13.3},
            {"insertions": 10, "num_canaries": 1, "mean_exposure": exposure, "min_exposure": exposure,
             "max_exposure": exposure, "max_possible": 13.3},
        ],
        "exposure_note": None,
        "membership": {"level": "user", "attacks": {
            "loss": {"name": "loss", "level": "user", "auc": auc - 0.01,
                     "roc": {"fpr": [0.0, 0.001, 0.1, 1.0], "tpr": [0.0, 0.002, 0.11, 1.0]}},
            "calibrated": {"name": "calibrated", "level": "user", "auc": auc,
                           "roc": {"fpr": [0.0, 0.001, 0.1, 1.0], "tpr": [0.0, 0.003, 0.13, 1.0]}},
        }},
        "caveat": "An audit gives a lower bound on leakage.",
    }


def add_audit(store: RunStore, run_id: str, audit: dict[str, Any]) -> Path:
    folder = store.run_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "audit.json"
    path.write_text(json.dumps(audit), encoding="utf-8")
    store.add_artifact(run_id, "audit", path)
    return path

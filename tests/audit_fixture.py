"""A small fake audit.json (the schema dpcore.audit.run.run_audit writes) for view and page tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dpcore.store import RunStore


def fake_audit(claimed: float | None = 3.0, auc: float = 0.52, exposure: float = 2.0) -> dict[str, Any]:
    return {
        "format": "dpcore-audit", "version": 1, "claimed_epsilon": claimed, "delta": 1e-5, "auc": auc,
        "tpr_at_fpr": {"0.01": 0.012, "0.001": 0.001},
        "empirical_epsilon": {"value": 0.21, "confidence": 0.95, "attack": "calibrated", "max_certifiable": 4.1},
        "plain": ["Canaries planted 10 time(s): mean exposure 2.0 of 13.3 bits; guessing such a secret would take "
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
        "membership": {"attacks": {
            "loss": {"name": "loss", "auc": auc - 0.01,
                     "roc": {"fpr": [0.0, 0.001, 0.1, 1.0], "tpr": [0.0, 0.002, 0.11, 1.0]},
                     "epsilon_lower_bound": {"value": 0.1, "max_certifiable": 4.1}},
            "calibrated": {"name": "calibrated", "auc": auc,
                           "roc": {"fpr": [0.0, 0.001, 0.1, 1.0], "tpr": [0.0, 0.003, 0.13, 1.0]},
                           "epsilon_lower_bound": {"value": 0.21, "max_certifiable": 4.1}},
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

"""Privacy audits of trained runs: what an attacker actually gets, beside the claimed ε.

* :mod:`dpcore.audit.one_run` — the run's empirical ε: the one-run audit of Steinke, Nasr and
  Jagielski (2023), canaries included by secret coin flips before training, a sound lower bound;
* :mod:`dpcore.audit.fdp` — the f-DP bound of Mahloujifar, Melis and Chaudhuri (2024) on the same
  one-run guesses, tighter for Gaussian-shaped trade-off curves;
* :mod:`dpcore.audit.exposure` — canary exposure (the "secret sharer" test);
* :mod:`dpcore.audit.membership` — user-level membership inference: ROC/AUC, TPR at low FPR (no ε);
* :mod:`dpcore.audit.reference` — the reference model of the calibrated attack;
* :mod:`dpcore.audit.run` — :func:`run_audit`: a checkpoint in, ``audit.json`` out;
* :mod:`dpcore.cli.audit` — ``python -m dpcore audit``.

The names below load their module on first use (PEP 562), so registering the CLI command does not
import scipy and the trainer into every ``python -m dpcore`` call.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ExposureResult": "exposure",
    "NoCanariesError": "exposure",
    "canary_exposure": "exposure",
    "canary_exposures": "exposure",
    "exposure_by_insertions": "exposure",
    "Roc": "membership",
    "attack_report": "membership",
    "per_sequence_losses": "membership",
    "roc_curve": "membership",
    "epsilon_lower_bound_fdp": "fdp",
    "fdp_p_value": "fdp",
    "AuditCanaries": "one_run",
    "make_audit_canaries": "one_run",
    "one_run_audit": "one_run",
    "one_run_bound": "one_run",
    "score_canaries": "one_run",
    "AUDIT_FILE": "run",
    "run_audit": "run",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dpcore.audit' has no attribute {name!r}")
    return getattr(importlib.import_module(f"dpcore.audit.{_EXPORTS[name]}"), name)

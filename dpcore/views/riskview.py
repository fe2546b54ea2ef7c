"""The risk dial in words, for every place that shows an ε: what an attacker can achieve against this run.

Torch-free: it reads a run's mechanism, noise, q, steps and δ (from ``result.json`` or a plan) and asks
:mod:`dpcore.privacy.tradeoff` for the trade-off curve of that very (q, σ, T): "at ε = 3, an attacker
who wrongly accuses 1 in 100 non-members catches at most X in 100 members". Computed each time from the
mechanism's privacy-loss distribution, never looked up. A run without a guarantee gets no sentence
from here (its ε is ∞; :mod:`dpcore.views.meaning` says so).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

from dpcore.errors import DPCoreError
from dpcore.privacy.registry import PRIVATE_MECHANISMS
from dpcore.privacy.tradeoff import DEFAULT_FPR, RiskPoint, noise_for_tpr, risk_at
from dpcore.training.result import RunResult

#: Who the attacker tries to tell apart, per privacy unit.
UNIT_WORDS = {"user": "people", "sequence": "sequences"}


@functools.lru_cache(maxsize=256)
def risk_point(mechanism: str | None, noise: float | None, sample_rate: float | None, steps: int | None,
               delta: float | None, epsilon: float | None = None, fpr: float = DEFAULT_FPR) -> RiskPoint | None:
    """The dial's reading for these settings, or None when they carry no guarantee or are incomplete."""
    if mechanism not in PRIVATE_MECHANISMS or not noise or not sample_rate or not steps or not delta:
        return None
    if epsilon is not None and not math.isfinite(epsilon):
        return None
    try:
        return risk_at(str(mechanism), float(noise), float(sample_rate), int(steps), float(delta), fpr,
                       epsilon=epsilon)
    except DPCoreError:
        return None


def risk_sentence_for(mechanism: str | None, noise: float | None, sample_rate: float | None, steps: int | None,
                      delta: float | None, epsilon: float | None = None, fpr: float = DEFAULT_FPR,
                      unit: str | None = None) -> str | None:
    """The sentence for these settings (members named by the privacy unit), or None (see :func:`risk_point`)."""
    point = risk_point(mechanism, noise, sample_rate, steps, delta, epsilon, fpr)
    if point is None:
        return None
    text = point.sentence
    words = UNIT_WORDS.get(unit or "")
    if words:
        text = text.replace("non-members", f"non-members (the {words} it was not trained on)", 1)
    return text


def result_risk_sentence(result: RunResult, fpr: float = DEFAULT_FPR) -> str | None:
    """The sentence for a finished run's result (its own mechanism, σ, q, steps, δ and ε)."""
    return risk_sentence_for(result.mechanism, result.noise_multiplier, result.sample_rate, result.steps,
                             result.delta, result.epsilon, fpr, result.privacy_unit)


def plan_risk_sentence(mechanism: str, plan: Any, epsilon: float | None,
                       fpr: float = DEFAULT_FPR, unit: str | None = None) -> str | None:
    """The sentence for a run about to launch, from :func:`dpcore.privacy.plan.plan`'s Plan, a Preview or a dict
    with ``noise_multiplier``, ``sample_rate``, ``steps`` and ``delta``."""
    def get(name: str) -> Any:
        return plan.get(name) if isinstance(plan, Mapping) else getattr(plan, name, None)

    return risk_sentence_for(mechanism, get("noise_multiplier"), get("sample_rate"), get("steps"), get("delta"),
                             epsilon, fpr, unit)


def target_row(mechanism: str, sample_rate: float, steps: int, delta: float, target_tpr: float,
               fpr: float = DEFAULT_FPR) -> dict[str, Any]:
    """The reverse dial as one table row: the noise and ε that keep every attacker at or below ``target_tpr``."""
    point = noise_for_tpr(mechanism, sample_rate, steps, delta, target_tpr, fpr)
    return {"mechanism": mechanism, "target TPR": target_tpr, "at FPR": fpr,
            "noise multiplier": round(point.noise_multiplier, 4), "ε": round(point.epsilon, 3),
            "TPR bound": round(point.tpr, 4)}

"""Membership inference on training sequences, and the empirical lower bound on ε it implies.

The attacker gets one sequence and must say whether it was trained on. Members are training
windows; non-members are windows of the held-out (validation) users, whom the split chose at random
before training. Both sets are the same size, so an AUC of 0.5 means the attacker does no better
than a coin.

Scores are "higher = more likely a member": the negative per-sequence loss for the loss-threshold
attack (Yeom et al. 2018), or the loss a reference model expects minus the target's loss for the
calibrated attack (Watson et al. 2022): an example that is just easy has a low loss under both
models, a memorised one only under the target.

**From rates to ε.** Under (ε, δ)-DP every test between "trained with x" and "trained without x"
satisfies TPR ≤ e^ε·FPR + δ and 1 − FPR ≤ e^ε·(1 − TPR) + δ (Kairouz et al. 2015), so a threshold
with rates (FPR, TPR) shows

    ε ≥ max( log((TPR − δ) / FPR),  log((1 − FPR − δ) / (1 − TPR)) ).

The rates are estimates from finitely many examples, so the bound uses the Clopper–Pearson lower
limit of TPR and upper limit of FPR, each one-sided at (1 − confidence)/2: both hold together with
probability ≥ ``confidence`` (union bound). Picking the best of many thresholds on the same data
would overstate the bound (a multiple-comparison problem), so the threshold is chosen on one
random half of the examples and the bound is evaluated on the other half, once.

Caveat, stated in the output too: DP's guarantee is about one example in or out of otherwise
identical training sets; this audit instead treats many examples of one trained model as
independent trials (windows of one user are correlated). It is the usual practical audit and a
*lower* bound on leakage, not a proof of a privacy failure; a value above the claimed ε beyond the
confidence interval would point to a bug worth investigating.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats

from dpcore.audit.defaults import CONFIDENCE
from dpcore.data.tokenizer import PAD_ID
from dpcore.model import GRULanguageModel, sequence_losses

#: False-positive rates at which the attack's true-positive rate is reported.
LOW_FPRS = (0.001, 0.01)
#: ROC points kept in the report (dense at low FPR, where attacks matter).
ROC_POINTS = 200


@torch.no_grad()
def per_sequence_losses(model: GRULanguageModel, rows: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Mean next-token loss (nats) of each window in ``rows`` [N, T+1], PAD targets ignored — as in training."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        out = []
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size].to(device)
            logits, _ = model(batch[:, :-1])
            out.append(sequence_losses(logits.double(), batch[:, 1:], PAD_ID).cpu().numpy())
        return np.concatenate(out) if out else np.empty(0)
    finally:
        model.train(was_training)


# ---------------------------------------------------------------------------------- ROC
@dataclass(frozen=True)
class Roc:
    """ROC of the rule "member if score ≥ threshold", one point per distinct threshold (plus (0, 0))."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray  # thresholds[0] = +inf: nobody flagged
    true_positives: np.ndarray  # counts behind the rates, for confidence intervals
    false_positives: np.ndarray
    num_members: int
    num_nonmembers: int

    @property
    def auc(self) -> float:
        """Area under the curve (ties count one half, as in the Mann–Whitney statistic)."""
        return float(np.sum(np.diff(self.fpr) * (self.tpr[1:] + self.tpr[:-1]) / 2.0))

    def tpr_at_fpr(self, max_fpr: float) -> float:
        """Best TPR among thresholds whose FPR is at most ``max_fpr`` (no interpolation: achievable)."""
        return float(self.tpr[self.fpr <= max_fpr + 1e-12].max())

    def thinned(self, points: int = ROC_POINTS) -> dict[str, list[float]]:
        """At most about ``points`` points, log-spaced in index so the low-FPR corner keeps its detail."""
        n = len(self.fpr)
        if n <= points:
            idx = np.arange(n)
        else:
            idx = np.unique(np.concatenate([
                np.round(np.geomspace(1, n, points // 2)).astype(int) - 1,
                np.round(np.linspace(0, n - 1, points // 2)).astype(int),
            ]))
        return {"fpr": [float(x) for x in self.fpr[idx]], "tpr": [float(x) for x in self.tpr[idx]]}


def roc_curve(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> Roc:
    """The ROC from scores where higher means "more likely a member" (numpy only)."""
    pos = np.asarray(member_scores, dtype=np.float64)
    neg = np.asarray(nonmember_scores, dtype=np.float64)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("an ROC needs at least one member and one non-member score")
    scores = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last_of_run = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[last_of_run]
    fps = last_of_run + 1 - tps
    return Roc(
        fpr=np.r_[0.0, fps / len(neg)], tpr=np.r_[0.0, tps / len(pos)], thresholds=np.r_[np.inf, s[last_of_run]],
        true_positives=np.r_[0, tps].astype(int), false_positives=np.r_[0, fps].astype(int),
        num_members=len(pos), num_nonmembers=len(neg),
    )


# ------------------------------------------------------------------- confidence and ε bound
def clopper_pearson(k: int | np.ndarray, n: int, confidence: float = CONFIDENCE) -> tuple[Any, Any]:
    """Exact two-sided (lower, upper) binomial confidence limits for k successes in n trials.

    Each limit alone is one-sided at level 1 − (1 − confidence)/2. Works elementwise on arrays.
    """
    k = np.asarray(k, dtype=np.float64)
    alpha = 1.0 - confidence
    with np.errstate(invalid="ignore"):
        lower = np.where(k > 0, stats.beta.ppf(alpha / 2, k, n - k + 1), 0.0)
        upper = np.where(k < n, stats.beta.ppf(1 - alpha / 2, k + 1, n - k), 1.0)
    if lower.ndim == 0:
        return float(lower), float(upper)
    return lower, upper


def epsilon_from_rates(tpr: Any, fpr: Any, delta: float) -> Any:
    """The ε that rates (FPR, TPR) force under (ε, δ)-DP; 0 where they force nothing. Elementwise."""
    tpr = np.asarray(tpr, dtype=np.float64)
    fpr = np.asarray(fpr, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        e1 = np.where((tpr - delta > 0) & (fpr > 0), np.log((tpr - delta) / fpr), 0.0)
        e1 = np.where((tpr - delta > 0) & (fpr <= 0), np.inf, e1)
        e2 = np.where((1 - fpr - delta > 0) & (tpr < 1), np.log((1 - fpr - delta) / (1 - tpr)), 0.0)
        e2 = np.where((1 - fpr - delta > 0) & (tpr >= 1), np.inf, e2)
    out = np.maximum(0.0, np.maximum(e1, e2))
    return float(out) if out.ndim == 0 else out


def epsilon_lower_bound(true_positives: Any, num_members: int, false_positives: Any, num_nonmembers: int,
                        delta: float, confidence: float = CONFIDENCE) -> Any:
    """ε lower bound holding with probability ≥ ``confidence``: the rates' worst case inside their CIs."""
    tpr_lo, _ = clopper_pearson(true_positives, num_members, confidence)
    _, fpr_hi = clopper_pearson(false_positives, num_nonmembers, confidence)
    return epsilon_from_rates(tpr_lo, fpr_hi, delta)


def _split_halves(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    perm = rng.permutation(n)
    return perm[: n // 2], perm[n // 2 :]


def _rates_at(threshold: float, pos: np.ndarray, neg: np.ndarray) -> tuple[int, int]:
    return int(np.count_nonzero(pos >= threshold)), int(np.count_nonzero(neg >= threshold))


def empirical_epsilon(member_scores: np.ndarray, nonmember_scores: np.ndarray, delta: float, *,
                      confidence: float = CONFIDENCE, seed: int = 0) -> dict[str, Any]:
    """The ε lower bound with a threshold chosen on one half of the examples and tested on the other.

    The selection half picks the threshold whose own lower bound is largest (or, when no threshold
    shows anything, the one maximising TPR − FPR); the evaluation half then yields the one reported
    bound, so no multiple-comparison correction is needed.
    """
    pos = np.asarray(member_scores, dtype=np.float64)
    neg = np.asarray(nonmember_scores, dtype=np.float64)
    if len(pos) < 2 or len(neg) < 2:
        raise ValueError("the ε lower bound needs at least two members and two non-members")
    rng = np.random.default_rng(seed)
    pos_sel, pos_ev = _split_halves(len(pos), rng)
    neg_sel, neg_ev = _split_halves(len(neg), rng)
    sel = roc_curve(pos[pos_sel], neg[neg_sel])
    sel_bounds = epsilon_lower_bound(sel.true_positives, sel.num_members, sel.false_positives,
                                     sel.num_nonmembers, delta, confidence)
    pick = int(np.argmax(sel_bounds)) if np.max(sel_bounds) > 0 else int(np.argmax(sel.tpr - sel.fpr))
    threshold = float(sel.thresholds[pick])
    p_ev, n_ev = pos[pos_ev], neg[neg_ev]
    tp, fp = _rates_at(threshold, p_ev, n_ev)
    tpr_lo, tpr_hi = clopper_pearson(tp, len(p_ev), confidence)
    fpr_lo, fpr_hi = clopper_pearson(fp, len(n_ev), confidence)
    value = float(epsilon_lower_bound(tp, len(p_ev), fp, len(n_ev), delta, confidence))
    ceiling = float(epsilon_lower_bound(len(p_ev), len(p_ev), 0, len(n_ev), delta, confidence))
    point = float(epsilon_from_rates(tp / len(p_ev), fp / len(n_ev), delta))
    return {
        "value": value,
        "point_estimate": point if math.isfinite(point) else None,  # None: no false positive at all
        "confidence": confidence,
        "delta": delta,
        "threshold": threshold if math.isfinite(threshold) else None,  # None: flag nobody
        "tpr": tp / len(p_ev),
        "fpr": fp / len(n_ev),
        "tpr_interval": [tpr_lo, tpr_hi],
        "fpr_interval": [fpr_lo, fpr_hi],
        "num_members_eval": len(p_ev),
        "num_nonmembers_eval": len(n_ev),
        "max_certifiable": ceiling,
        "method": (
            f"threshold chosen on a random half of the examples, rates measured on the other half; "
            f"Clopper–Pearson limits, {confidence:.0%} joint confidence; with {len(p_ev)} + {len(n_ev)} "
            f"test examples no attack could show more than ε = {ceiling:.2f}"
        ),
    }


def attack_report(name: str, description: str, member_scores: np.ndarray, nonmember_scores: np.ndarray,
                  delta: float, *, confidence: float = CONFIDENCE, seed: int = 0) -> dict[str, Any]:
    """ROC, AUC, TPR at the low FPRs and the empirical ε lower bound of one attack."""
    roc = roc_curve(member_scores, nonmember_scores)
    return {
        "name": name,
        "description": description,
        "num_members": roc.num_members,
        "num_nonmembers": roc.num_nonmembers,
        "auc": roc.auc,
        "tpr_at_fpr": {f"{f:g}": roc.tpr_at_fpr(f) for f in LOW_FPRS},
        "low_fpr_note": _low_fpr_note(roc.num_nonmembers),
        "roc": roc.thinned(),
        "epsilon_lower_bound": empirical_epsilon(member_scores, nonmember_scores, delta,
                                                 confidence=confidence, seed=seed),
    }


def _low_fpr_note(num_nonmembers: int) -> str:
    """Say when a low FPR cannot be resolved: with n non-members the smallest non-zero FPR is 1/n."""
    unresolved = [f for f in LOW_FPRS if f * num_nonmembers < 1]
    if not unresolved:
        return ""
    shown = ", ".join(f"{f:.1%}" for f in unresolved)
    return (f"with {num_nonmembers} held-out examples the smallest non-zero FPR is {1 / num_nonmembers:.2%}, "
            f"so the TPR at {shown} FPR is the TPR at zero false positives")


def auc_plain(auc: float) -> str:
    """The AUC in words: how often the attacker tells a member from a non-member."""
    advantage = max(0.0, 2 * auc - 1)
    if advantage < 0.02:
        return (f"AUC {auc:.3f}: given one training sequence and one held-out sequence, the attacker picks "
                f"the training one {auc:.0%} of the time, as good as a coin flip")
    return (f"AUC {auc:.3f}: given one training sequence and one held-out sequence, the attacker picks "
            f"the training one {auc:.0%} of the time (a coin flip gets 50%)")


def epsilon_plain(bound: dict[str, Any], claimed: float | None) -> str:
    """The empirical ε next to the claimed one, in words."""
    measured = (f"the attack shows ε ≥ {bound['value']:.2f} with {bound['confidence']:.0%} confidence "
                f"(at most {bound['max_certifiable']:.2f} could be shown with this many examples)")
    if claimed is None or not math.isfinite(claimed):
        return f"No ε is claimed for this run; {measured}."
    return f"The run claims ε = {claimed:.2f}; {measured}."

"""User-level membership inference: ROC, AUC and TPR at low FPR. No ε comes out of it.

The attacker gets one sequence and must say whether its *user* was trained on. Members are training
windows; non-members are windows of the held-out (validation) users, whom the split chose at random
before training. Both sets are the same size, so an AUC of 0.5 means the attacker does no better
than a coin.

Scores are "higher = more likely a member": the negative per-sequence loss for the loss-threshold
attack (Yeom et al. 2018), or the loss a reference model expects minus the target's loss for the
calibrated attack (Watson et al. 2022): an example that is just easy has a low loss under both
models, a memorised one only under the target.

**Why there is no ε here.** What separates members from non-members is a whole user (their
persona, their style, all their windows), not one example, so the test measures *user-level*
leakage, while the run's ε is per example. And the trials are not independent: windows of one user
are correlated, and all of them come from one trained model, so a Clopper–Pearson interval over
them is not a valid confidence interval. An ε "lower bound" derived from these rates was therefore
unsound and has been removed; the run's empirical ε comes from the one-run audit
(:mod:`dpcore.audit.one_run`), whose canaries are single examples included by independent coins.
The AUC and the ROC stay: they show, in a way that needs no theorem, how much a model gives away
about whose text it saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dpcore.data.tokenizer import PAD_ID
from dpcore.training.model import GRULanguageModel, sequence_losses

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


def attack_report(name: str, description: str, member_scores: np.ndarray,
                  nonmember_scores: np.ndarray) -> dict[str, Any]:
    """ROC, AUC and TPR at the low FPRs of one attack (no ε: see the module docstring)."""
    roc = roc_curve(member_scores, nonmember_scores)
    return {
        "name": name,
        "description": description,
        "level": "user",
        "num_members": roc.num_members,
        "num_nonmembers": roc.num_nonmembers,
        "auc": roc.auc,
        "tpr_at_fpr": {f"{f:g}": roc.tpr_at_fpr(f) for f in LOW_FPRS},
        "low_fpr_note": _low_fpr_note(roc.num_nonmembers),
        "roc": roc.thinned(),
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
    """The AUC in words: how often the attacker tells a training user's window from a held-out user's."""
    advantage = max(0.0, 2 * auc - 1)
    head = (f"User-level membership inference, AUC {auc:.3f}: given one window of a training user and one of a "
            f"held-out user, the attacker picks the training user's {auc:.0%} of the time")
    if advantage < 0.02:
        return head + ", as good as a coin flip"
    return head + " (a coin flip gets 50%)"

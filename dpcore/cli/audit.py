"""``python -m dpcore audit``: canary exposure and user-level membership inference for a trained checkpoint.

The one-run ε lower bounds (Steinke et al.'s and the f-DP bound of Mahloujifar et al., both written to
``audit.json``) need canaries planted before training (``audit`` ticked at launch), so an audit of a
finished checkpoint reports none and says why. A bound above the claimed ε (the bug alarm) is printed
on stderr as well as in the summary.

Registered by :func:`dpcore.cli.build_parser` through :func:`register`. Prints a one-line JSON
summary and the plain-words lines; writes the full report to ``OUT/audit.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dpcore.audit.defaults import CONFIDENCE, MAX_EXAMPLES, MAX_REFERENCE_STEPS, MIN_EXAMPLES, REFERENCES
from dpcore.cli.args import nonneg_int, positive_int
from dpcore.config import DEVICES


def cmd_audit(args: argparse.Namespace) -> int:
    from dpcore.audit.run import AUDIT_FILE, run_audit  # slow imports (scipy, torch): only when auditing
    from dpcore.training.device import resolve_device

    device = str(resolve_device(args.device))
    audit = run_audit(args.checkpoint, args.out, seed=args.seed, max_examples=args.max_examples,
                      reference=args.reference, reference_steps=args.reference_steps,
                      confidence=args.confidence, device=device)
    if audit["exposure_note"]:
        print(f"dpcore: note: {audit['exposure_note']}", file=sys.stderr)
    if audit.get("bug_alarm"):  # loud on both streams: a lower bound above the claimed ε
        print(f"dpcore: {audit['bug_alarm']}", file=sys.stderr)
    summary = {
        "claimed_epsilon": audit["claimed_epsilon"],
        "delta": audit["delta"],
        "auc": audit["auc"],
        "tpr_at_fpr": audit["tpr_at_fpr"],
        "empirical_epsilon": audit["empirical_epsilon"],
        "bug_alarm": audit.get("bug_alarm"),
        "exposure_by_insertions": {str(g["insertions"]): round(g["mean_exposure"], 2)
                                   for g in audit["exposure_by_insertions"]},
    }
    print(json.dumps(summary))
    for line in audit["plain"]:
        print(line)
    print(f"wrote {Path(args.out) / AUDIT_FILE}")
    return 0


def _confidence(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.5 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0.5, 1), got {text}")
    return value


def register(subparsers: Any) -> None:
    """Add the ``audit`` command to ``python -m dpcore``'s subparsers."""

    p = subparsers.add_parser(
        "audit", help="measure canary exposure and user-level membership inference for a checkpoint",
        description="Rebuilds the run's training data from the checkpoint, ranks each planted canary "
                    "among all candidate secrets (exposure) and attacks training vs held-out users' "
                    "sequences (user-level AUC, TPR at low FPR). The empirical ε lower bound (one-run "
                    "audit) needs canaries planted before training: launch the run with the audit "
                    "ticked; here it is reported as unavailable. Writes OUT/audit.json.",
    )
    p.add_argument("--checkpoint", required=True, help="a model.pt written by 'train'")
    p.add_argument("--out", required=True, help="output folder for audit.json")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seeds the draw of attacked examples")
    p.add_argument("--max-examples", type=positive_int, default=MAX_EXAMPLES,
                   help=f"members and non-members attacked, each (at least {MIN_EXAMPLES})")
    p.add_argument("--reference", choices=REFERENCES, default="model",
                   help="'model': also run the attack calibrated by a reference model trained without the "
                        "attacked sequences (costs a short non-private training run); 'none': loss attack only")
    p.add_argument("--reference-steps", type=positive_int, default=None,
                   help=f"reference training steps (default: the run's steps, at most {MAX_REFERENCE_STEPS})")
    p.add_argument("--confidence", type=_confidence, default=CONFIDENCE,
                   help="confidence level of the empirical ε lower bound (one-run audit)")
    p.add_argument("--device", choices=DEVICES, default="cpu")
    p.set_defaults(func=cmd_audit)

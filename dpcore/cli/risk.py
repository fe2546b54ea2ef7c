"""``python -m dpcore risk``: what an attacker can achieve against a mechanism, from its own trade-off curve.

Forward: ``--noise-multiplier σ`` (or ``--epsilon``, calibrated with PLD) with ``--sample-rate q --steps T
--fpr α`` prints the sentence and, last, ``tpr=<bound>``: the most members any membership test catches at
that false-positive rate (:mod:`dpcore.privacy.tradeoff`). Reverse: ``--target-tpr`` prints the least noise
and its ε that keep every attacker at or below it, and the TPR bound last.
"""

from __future__ import annotations

import argparse
from typing import Any

from dpcore.cli.args import positive_float, positive_int, unit_float, unit_or_one
from dpcore.config import PRIVATE_MECHANISMS

DEFAULT_DELTA = 1e-5


def cmd_risk(args: argparse.Namespace) -> int:
    from dpcore.privacy.accounting import calibrate_noise
    from dpcore.privacy.tradeoff import noise_for_tpr, risk_at

    if args.target_tpr is not None:
        point = noise_for_tpr(args.mechanism, args.sample_rate, args.steps, args.delta, args.target_tpr, args.fpr)
        print(f"To keep every attacker at or below {args.target_tpr:g} of members caught at FPR {args.fpr:g}, "
              f"{args.steps} steps at q = {args.sample_rate:g} need noise {point.noise_multiplier:.4g} "
              f"(ε = {point.epsilon:.3g} at δ = {args.delta:g}, PLD).")
        print(f"noise_multiplier={point.noise_multiplier:.6g}")
        print(f"epsilon={point.epsilon:.6g}")
    else:
        noise = args.noise_multiplier
        if noise is None:
            noise = calibrate_noise(args.mechanism, args.epsilon, args.delta, args.sample_rate, args.steps, "pld")
            print(f"noise_multiplier={noise:.6g} (calibrated to ε = {args.epsilon:g} at δ = {args.delta:g}, PLD)")
        point = risk_at(args.mechanism, noise, args.sample_rate, args.steps, args.delta, args.fpr)
    print(point.sentence)
    print(f"tpr={point.tpr:.6g}")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``risk`` command to ``python -m dpcore``'s subparsers."""
    p = subparsers.add_parser(
        "risk", help="the most members an attacker can catch at a false-positive rate (the risk dial)",
        description="From the mechanism's own privacy profile (dp-accounting PLD of T Poisson-sampled steps), the "
                    "largest true-positive rate any membership attack can reach at the given false-positive rate; "
                    "or, with --target-tpr, the noise and ε that keep every attacker below it. Prints tpr=… last.",
    )
    p.add_argument("--mechanism", choices=PRIVATE_MECHANISMS, default="gaussian")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--noise-multiplier", type=positive_float, default=None,
                       help="σ (Gaussian, L2) or λ (Laplace, L1), in units of the clipping norm")
    which.add_argument("--epsilon", type=positive_float, default=None, help="calibrate the noise to this ε (PLD)")
    which.add_argument("--target-tpr", type=unit_float, default=None,
                       help="reverse: the attack success to stay under; prints the noise and ε it needs")
    p.add_argument("--sample-rate", type=unit_or_one, required=True, help="Poisson sampling rate q")
    p.add_argument("--steps", type=positive_int, required=True)
    p.add_argument("--fpr", type=unit_float, default=0.01, help="false-positive rate α (default 0.01: 1 in 100)")
    p.add_argument("--delta", type=unit_float, default=DEFAULT_DELTA,
                   help=f"δ at which ε is reported (default {DEFAULT_DELTA:g}); the TPR bound does not depend on it")
    p.set_defaults(func=cmd_risk)

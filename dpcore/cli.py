"""``python -m dpcore``: the headless twin of the dashboard.

Every command calls the same dpcore functions the app calls. Bad arguments and user errors give
one clear line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dpcore.config import ACCOUNTANTS, DEVICES, ENGINES, MECHANISMS, OPTIMIZERS, TOKENIZERS, TrainConfig
from dpcore.decoding import DECODERS
from dpcore.errors import DPCoreError


class ArgumentError(DPCoreError):
    """A malformed command line."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so errors stay one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ArgumentError(message)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _unit_float(text: str) -> float:
    value = _positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = _nonneg_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The training options, shared by ``train`` and ``runs submit``."""
    d = TrainConfig()
    g = parser.add_argument_group("data")
    g.add_argument("--corpus", default=d.corpus, help="'builtin' or a path to a UTF-8 .txt or .csv file")
    g.add_argument("--text-column", default=None, help="CSV column holding the text")
    g.add_argument("--user-column", default=None, help="CSV column holding a user id (optional)")
    g.add_argument("--tokenizer", choices=TOKENIZERS, default=d.tokenizer)
    g.add_argument("--seq-len", type=_positive_int, default=d.seq_len)
    g = parser.add_argument_group("privacy")
    g.add_argument("--mechanism", choices=MECHANISMS, default=d.mechanism)
    g.add_argument("--epsilon", type=_positive_float, default=d.epsilon, help="target ε")
    g.add_argument("--delta", type=_unit_float, default=None, help="δ (default: min(1e-5, 1/N^1.1))")
    g.add_argument("--clip", type=_positive_float, default=d.clip, help="per-example clipping norm C")
    g.add_argument("--noise-multiplier", type=_positive_float, default=None,
                   help="use this noise multiplier instead of calibrating it to --epsilon")
    g.add_argument("--accountant", choices=ACCOUNTANTS, default=None,
                   help="rdp (default for gaussian), prv, or pld (the only one for laplace)")
    g.add_argument("--engine", choices=ENGINES, default=d.engine,
                   help="Gaussian DP-SGD implementation (Laplace always runs on Opacus's per-example path)")
    g = parser.add_argument_group("training")
    length = g.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=_positive_float, default=None)
    length.add_argument("--max-steps", type=_positive_int, default=None)
    g.add_argument("--batch-size", type=_positive_int, default=d.batch_size, help="expected batch size")
    g.add_argument("--lr", type=_positive_float, default=d.lr)
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    g.add_argument("--embed-dim", type=_positive_int, default=d.embed_dim)
    g.add_argument("--hidden-size", type=_positive_int, default=d.hidden_size)
    g.add_argument("--num-layers", type=_positive_int, default=d.num_layers)
    g.add_argument("--seed", type=_nonneg_int, default=d.seed)
    g.add_argument("--device", choices=DEVICES, default=d.device)
    g.add_argument("--eval-every", type=_positive_int, default=d.eval_every)
    g.add_argument("--num-samples", type=_nonneg_int, default=d.num_samples)
    g.add_argument("--sample-prompt", default=d.sample_prompt)
    g.add_argument("--audit", action="store_true",
                   help="audit the model when training ends (canary exposure, membership inference)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A validated TrainConfig from parsed ``add_train_arguments`` options."""
    d = TrainConfig()
    accountant = args.accountant or ("pld" if args.mechanism == "laplace" else "rdp")
    max_steps = args.max_steps if args.max_steps is not None else (None if args.epochs else d.max_steps)
    return TrainConfig(
        corpus=args.corpus, text_column=args.text_column, user_column=args.user_column,
        tokenizer=args.tokenizer, seq_len=args.seq_len, mechanism=args.mechanism, epsilon=args.epsilon,
        delta=args.delta, clip=args.clip, noise_multiplier=args.noise_multiplier, accountant=accountant,
        engine=args.engine, epochs=args.epochs, max_steps=max_steps, batch_size=args.batch_size, lr=args.lr,
        optimizer=args.optimizer, embed_dim=args.embed_dim, hidden_size=args.hidden_size,
        num_layers=args.num_layers, seed=args.seed, device=args.device, eval_every=args.eval_every,
        num_samples=args.num_samples, sample_prompt=args.sample_prompt, audit=args.audit,
    ).validate()


# ---------------------------------------------------------------------------------- commands
def cmd_train(args: argparse.Namespace) -> int:
    from dpcore.progress import ProgressBar
    from dpcore.training import run_training

    config = config_from_args(args)
    result = run_training(config, args.out, callbacks=ProgressBar(quiet=args.quiet))
    summary = {k: result[k] for k in ("mechanism", "epsilon", "delta", "accountant", "noise_multiplier",
                                      "steps", "train_loss", "val_perplexity", "device")}
    print(json.dumps(summary))
    for text in result["samples"]:
        print("sample:", text)
    print(f"wrote {Path(args.out) / 'result.json'}")
    return 0


def _mechanism_accountant(args: argparse.Namespace) -> str:
    if args.mechanism == "laplace":
        if args.accountant not in (None, "pld"):
            raise ArgumentError("Poisson-sampled Laplace is accounted with PLD only: use --accountant pld")
        return "pld"
    return args.accountant or "rdp"


def cmd_epsilon(args: argparse.Namespace) -> int:
    from dpcore.privacy.accounting import epsilon_spent

    res = epsilon_spent(args.mechanism, args.noise_multiplier, args.sample_rate, args.steps, args.delta,
                        _mechanism_accountant(args))
    if res.note:
        print(res.note, file=sys.stderr)
    print(f"{res.epsilon:.6g}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from dpcore.privacy.accounting import calibrate_noise

    noise = calibrate_noise(args.mechanism, args.epsilon, args.delta, args.sample_rate, args.steps,
                            _mechanism_accountant(args))
    print(f"{noise:.6g}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """Print the text, the lines that explain what covers it, and last ``epsilon=<value>``.

    ``value``: the decoder's basic-composition ε (pure, against any change to the model) for a
    private decoder; the training ε for plain sampling from a DP-trained checkpoint; ``null``
    otherwise. It names one statement, never a minimum across statements.
    """
    from dpcore.checkpoint import load_checkpoint
    from dpcore.decoding import DecoderSpec, decode, text_guarantee

    spec = DecoderSpec(args.decoder, logit_bound=args.logit_bound, temperature=args.temperature,
                       noise_scale=args.noise_scale, mix=args.mix).validate()
    if spec.has_guarantee and args.seed is not None:
        raise ArgumentError(f"--seed applies to plain sampling (and naive-logits) only: the {spec.name} decoder "
                            "draws secret randomness, or its ε would not hold")
    ckpt = load_checkpoint(args.checkpoint)
    out = decode(ckpt.model, ckpt.tokenizer, args.prompt, spec, max_tokens=args.tokens,
                 seed=0 if args.seed is None else args.seed, delta_prime=args.delta_prime)
    print(out.text)
    guarantee = text_guarantee(out, spec, ckpt.result)
    for line in guarantee.lines:
        print(line)
    headline = guarantee.headline
    print(f"epsilon={'null' if headline is None else f'{headline.epsilon:.6g}'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m dpcore", description="DP-RNN Lab core: train, account, generate.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train a GRU language model (DP-SGD or a baseline)")
    add_train_arguments(p)
    p.add_argument("--out", required=True, help="output folder for result.json, metrics.csv, model.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    for name, func, helptext in (("epsilon", cmd_epsilon, "ε spent by a noise level over some steps"),
                                 ("calibrate", cmd_calibrate, "noise multiplier for a target ε")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--mechanism", choices=("gaussian", "laplace"), default="gaussian")
        if name == "epsilon":
            p.add_argument("--noise-multiplier", type=_positive_float, required=True,
                           help="σ (Gaussian, L2) or λ (Laplace, L1), in units of the clipping norm")
        else:
            p.add_argument("--epsilon", type=_positive_float, required=True)
        p.add_argument("--sample-rate", type=_unit_or_one, required=True, help="Poisson sampling rate q")
        p.add_argument("--steps", type=_positive_int, required=True)
        p.add_argument("--delta", type=_unit_float, required=True)
        p.add_argument("--accountant", choices=ACCOUNTANTS, default=None)
        p.set_defaults(func=func)

    p = sub.add_parser("generate", help="sample text from a checkpoint, optionally with a private decoder")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--prompt", default="")
    p.add_argument("--tokens", type=_positive_int, default=80)
    p.add_argument("--decoder", choices=DECODERS, default="plain")
    p.add_argument("--temperature", type=_positive_float, default=0.8, help="T (exponential: ε/token = 4B/T)")
    p.add_argument("--logit-bound", type=_positive_float, default=4.0, help="B: logits clipped to [-B, B]")
    p.add_argument("--noise-scale", type=_positive_float, default=1.0, help="b: Laplace scale (noisy-max)")
    p.add_argument("--mix", type=_mix_weight, default=0.5, help="λ: weight of the model vs uniform (mix)")
    p.add_argument("--delta-prime", type=_unit_float, default=1e-6, help="δ′ for advanced composition")
    p.add_argument("--seed", type=_nonneg_int, default=None,
                   help="seed for plain sampling and naive-logits (default 0); refused with a private decoder, "
                        "which draws secret randomness")
    p.set_defaults(func=cmd_generate)

    try:
        from dpcore import runs_cli
    except ImportError:  # pragma: no cover - the runs module ships with dpcore
        runs_cli = None
    if runs_cli is not None:
        runs_cli.register(sub)
    from dpcore.audit.cli import register as register_audit

    register_audit(sub)
    return parser


def _mix_weight(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (0.0 <= value < 1.0):
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _unit_or_one(text: str) -> float:
    value = _positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except DPCoreError as err:
        print(f"dpcore: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dpcore: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `python -m dpcore runs list | head`: the reader left, not an error
        # Python's documented recipe: point stdout at devnull so the exit-time flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0

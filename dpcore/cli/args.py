"""Command-line arguments shared by every ``python -m dpcore`` command (one place, no cycles).

``add_train_arguments`` / ``config_from_args`` are the training options of ``train`` and
``runs submit``; the small ``type=`` parsers turn a bad value into one line, never a traceback.
"""

from __future__ import annotations

import argparse
import math

from dpcore.config import ACCOUNTANTS, DEVICES, ENGINES, MECHANISMS, OPTIMIZERS, TOKENIZERS, TrainConfig
from dpcore.errors import DPCoreError


class ArgumentError(DPCoreError):
    """A malformed command line."""


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so errors stay one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ArgumentError(message)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def unit_float(text: str) -> float:
    value = positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, got {text}")
    return value


def positive_int(text: str) -> int:
    value = nonneg_int(text)
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
    g.add_argument("--seq-len", type=positive_int, default=d.seq_len)
    g = parser.add_argument_group("privacy")
    g.add_argument("--mechanism", choices=MECHANISMS, default=d.mechanism)
    g.add_argument("--epsilon", type=positive_float, default=d.epsilon, help="target ε")
    g.add_argument("--delta", type=unit_float, default=None, help="δ (default: min(1e-5, 1/N^1.1))")
    g.add_argument("--clip", type=positive_float, default=d.clip, help="per-example clipping norm C")
    g.add_argument("--noise-multiplier", type=positive_float, default=None,
                   help="use this noise multiplier instead of calibrating it to --epsilon")
    g.add_argument("--accountant", choices=ACCOUNTANTS, default=None,
                   help="rdp (default for gaussian), prv, or pld (the only one for laplace)")
    g.add_argument("--engine", choices=ENGINES, default=d.engine,
                   help="Gaussian DP-SGD implementation (Laplace always runs on Opacus's per-example path)")
    g = parser.add_argument_group("training")
    length = g.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=positive_float, default=None)
    length.add_argument("--max-steps", type=positive_int, default=None)
    g.add_argument("--batch-size", type=positive_int, default=d.batch_size, help="expected batch size")
    g.add_argument("--lr", type=positive_float, default=d.lr)
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    g.add_argument("--embed-dim", type=positive_int, default=d.embed_dim)
    g.add_argument("--hidden-size", type=positive_int, default=d.hidden_size)
    g.add_argument("--num-layers", type=positive_int, default=d.num_layers)
    g.add_argument("--seed", type=nonneg_int, default=d.seed)
    g.add_argument("--device", choices=DEVICES, default=d.device)
    g.add_argument("--eval-every", type=positive_int, default=d.eval_every)
    g.add_argument("--num-samples", type=nonneg_int, default=d.num_samples)
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


def mix_weight(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (0.0 <= value < 1.0):
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def unit_or_one(text: str) -> float:
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value

"""``python -m dpcore``: the headless twin of the dashboard.

Every command calls the same dpcore functions the app calls. Bad arguments and user errors give
one clear line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dpcore.cli import audit as audit_cli
from dpcore.cli import demo as demo_cli
from dpcore.cli import pretrain as pretrain_cli
from dpcore.cli import risk as risk_cli
from dpcore.cli import runs as runs_cli
from dpcore.cli.args import (
    ArgumentError,
    Parser,
    add_train_arguments,
    config_from_args,
    mix_weight,
    nonneg_int,
    positive_float,
    positive_int,
    unit_float,
    unit_or_one,
)
from dpcore.cli.progress import ProgressBar
from dpcore.config import ACCOUNTANTS, PRIVATE_MECHANISMS
from dpcore.errors import DPCoreError
from dpcore.paths import ENV_DATA_DIR, cli_owner
from dpcore.privacy.accounting import calibrate_noise, epsilon_spent
from dpcore.privacy.composition import text_guarantee
from dpcore.privacy.decoders import DECODERS, DecoderSpec
from dpcore.privacy.registry import accountant_for
from dpcore.training.checkpoint import load_checkpoint
from dpcore.training.generate import decode


# ---------------------------------------------------------------------------------- commands
def cmd_train(args: argparse.Namespace) -> int:
    from dpcore.audit.pipeline import train_and_audit  # scipy and the audit: only when training

    config = config_from_args(args)
    result = train_and_audit(config, args.out, callbacks=ProgressBar(quiet=args.quiet))
    summary = {"mechanism": result.mechanism, "epsilon": result.epsilon, "delta": result.delta,
               "accountant": result.accountant, "noise_multiplier": result.noise_multiplier, "steps": result.steps,
               "train_loss": result.train_loss, "val_perplexity": result.val_perplexity, "device": result.device}
    print(json.dumps(summary))
    for text in result.samples or ():
        print("sample:", text)
    print(f"wrote {Path(args.out) / 'result.json'}")
    return 0


def _mechanism_accountant(args: argparse.Namespace) -> str:
    """The accountant asked for if it can bound the mechanism, else refused; none asked: the mechanism's first."""
    return accountant_for(args.mechanism, args.accountant)


def cmd_epsilon(args: argparse.Namespace) -> int:
    res = epsilon_spent(args.mechanism, args.noise_multiplier, args.sample_rate, args.steps, args.delta,
                        _mechanism_accountant(args))
    if res.note:
        print(res.note, file=sys.stderr)
    print(f"{res.epsilon:.6g}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    noise = calibrate_noise(args.mechanism, args.epsilon, args.delta, args.sample_rate, args.steps,
                            _mechanism_accountant(args))
    print(f"{noise:.6g}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """Print the text, the lines that explain what covers it, and last ``epsilon=<value>``.

    ``value``: the decoder's basic-composition ε (pure, against any change to the model) for a
    private decoder; the training ε for plain sampling from a DP-trained checkpoint; ``null``
    otherwise. It names one statement, never a minimum across statements.

    ``--checkpoint``: a local file, whose holder is its owner (they hold the weights, so the text
    too), and nothing is charged. ``--run``: a model in the run store, asked for as ``--owner``
    (the key ``runs`` commands use): the same rule and ledger as the dashboard
    (:func:`dpcore.runs.inference.decode_text`), so plain or naive-logits text of someone else's
    model without a guarantee trained on an upload is refused, and private text is charged.
    """
    spec = DecoderSpec(args.decoder, logit_bound=args.logit_bound, temperature=args.temperature,
                       noise_scale=args.noise_scale, mix=args.mix).validate()
    if spec.has_guarantee and args.seed is not None:
        raise ArgumentError(f"--seed applies to plain sampling (and naive-logits) only: the {spec.name} decoder "
                            "draws secret randomness, or its ε would not hold")
    seed = 0 if args.seed is None else args.seed
    if args.run is not None:
        from dpcore.runs import inference  # the store and its checkpoints: only for --run
        from dpcore.runs.store import RunStore

        store = RunStore(args.data_dir)
        out, guarantee = inference.decode_text(store, store.get_run(args.run), args.prompt, spec, viewer=args.owner,
                                               max_tokens=args.tokens, seed=seed, delta_prime=args.delta_prime)
        print(out.text)
    else:
        ckpt = load_checkpoint(args.checkpoint)
        out = decode(ckpt.model, ckpt.tokenizer, args.prompt, spec, max_tokens=args.tokens, seed=seed,
                     delta_prime=args.delta_prime)
        print(out.text)
        guarantee = text_guarantee(out, spec, ckpt.result)
    for line in guarantee.lines:
        print(line)
    headline = guarantee.headline
    print(f"epsilon={'null' if headline is None else f'{headline.epsilon:.6g}'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m dpcore", description="DP-RNN Lab core: train, account, generate.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("train", help="train a GRU language model (DP-SGD or a baseline)")
    add_train_arguments(p)
    p.add_argument("--out", required=True, help="output folder for result.json, metrics.csv, model.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    for name, func, helptext in (("epsilon", cmd_epsilon, "ε spent by a noise level over some steps"),
                                 ("calibrate", cmd_calibrate, "noise multiplier for a target ε")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--mechanism", choices=PRIVATE_MECHANISMS, default="gaussian")
        if name == "epsilon":
            p.add_argument("--noise-multiplier", type=positive_float, required=True,
                           help="σ (Gaussian, L2) or λ (Laplace, L1), in units of the clipping norm")
        else:
            p.add_argument("--epsilon", type=positive_float, required=True)
        p.add_argument("--sample-rate", type=unit_or_one, required=True, help="Poisson sampling rate q")
        p.add_argument("--steps", type=positive_int, required=True)
        p.add_argument("--delta", type=unit_float, required=True)
        p.add_argument("--accountant", choices=ACCOUNTANTS, default=None)
        p.set_defaults(func=func)

    p = sub.add_parser("generate", help="sample text from a checkpoint or a stored run, optionally with a private "
                                        "decoder")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a local model.pt (its holder is its owner: nothing is charged)")
    source.add_argument("--run", metavar="RUN_ID",
                        help="a run in the store: decoded as --owner, under the dashboard's disclosure rule and ledger")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help=f"with --run: where runs are kept (default: ${ENV_DATA_DIR}, else ~/.local/share/dp-rnn-lab)")
    p.add_argument("--owner", default=cli_owner(),
                   help="with --run: your owner key, who asks for the text (default: %(default)s)")
    p.add_argument("--prompt", default="")
    p.add_argument("--tokens", type=positive_int, default=80)
    p.add_argument("--decoder", choices=DECODERS, default="plain")
    p.add_argument("--temperature", type=positive_float, default=0.8, help="T (exponential: ε/token = 4B/T)")
    p.add_argument("--logit-bound", type=positive_float, default=4.0, help="B: logits clipped to [-B, B]")
    p.add_argument("--noise-scale", type=positive_float, default=1.0, help="b: Laplace scale (noisy-max)")
    p.add_argument("--mix", type=mix_weight, default=0.5, help="λ: weight of the model vs uniform (mix)")
    p.add_argument("--delta-prime", type=unit_float, default=1e-6, help="δ′ for advanced composition")
    p.add_argument("--seed", type=nonneg_int, default=None,
                   help="seed for plain sampling and naive-logits (default 0); refused with a private decoder, "
                        "which draws secret randomness")
    p.set_defaults(func=cmd_generate)

    runs_cli.register(sub)
    audit_cli.register(sub)
    demo_cli.register(sub)
    pretrain_cli.register(sub)
    risk_cli.register(sub)
    return parser


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

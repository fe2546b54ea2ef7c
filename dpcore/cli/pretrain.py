"""``python -m dpcore pretrain``: build (or find) the public model a run with these settings starts from.

Takes the same options as ``train``; only those that shape the public model matter (the corpus:
built-in or a file, the tokenizer, the vocabulary size, the window length, the model size, the
device it is trained on). Prints one JSON line: the cache key and folder, whether it was built now,
what it was trained on and its validation perplexity on held-out *public* text.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dpcore.cli.args import add_train_arguments, config_from_args
from dpcore.paths import ENV_DATA_DIR


def cmd_pretrain(args: argparse.Namespace) -> int:
    from dpcore.training.pretrain import ensure_public_model  # torch: only when the command runs

    config = config_from_args(args)
    status = (lambda _text: None) if args.quiet else (lambda text: print(text, file=sys.stderr))
    model = ensure_public_model(config, data_dir=args.data_dir, force=args.force, status=status)
    print(json.dumps({
        "key": model.spec.key(),
        "path": str(model.path),
        "built": model.built,
        "public_corpus": model.spec.description,
        "steps": model.spec.steps,
        "val_perplexity": model.info.get("val_perplexity"),
        "epsilon": 0.0,
    }, ensure_ascii=False))
    return 0


def register(subparsers: Any) -> None:
    """Add the ``pretrain`` command to ``python -m dpcore``'s subparsers."""
    p = subparsers.add_parser(
        "pretrain", help="build the public model (no privacy, public text only) that runs may start from",
        description="Trains, once, a model of the run's shape on public text (the built-in generator's other "
                    "people for the built-in corpus, English prose shipped with Python for uploads) and caches "
                    "it in the data folder. Runs with --init public start from it; it costs no ε. Takes the "
                    "options of 'train' (only the data and model-size ones matter).",
    )
    add_train_arguments(p)
    p.add_argument("--data-dir", default=None,
                   help=f"where the public model is cached (default: ${ENV_DATA_DIR}, else ~/.local/share/dp-rnn-lab)")
    p.add_argument("--force", action="store_true", help="rebuild it even if it is cached")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_pretrain)

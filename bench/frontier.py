"""The privacy/utility frontier at the app's defaults: ε ∈ {1, 3, 8} and no privacy, from scratch and
from the public model, as one markdown table from one invocation.

    python bench/frontier.py [--steps N] [--unit user|sequence] [--epsilons 1 3 8] [--threads 1]

Every run is ``TrainConfig()`` (the app's defaults: the built-in corpus, its default crowd, the
default model, batch, learning rate and steps, user-level privacy) with only the mechanism, ε, the
starting weights and the options given here changed, so the table shows what a user gets without
tuning. The ratio compares each private run with the non-private run *from the same start*. The
"public model alone" row is the public model evaluated on the private validation users before any
private step: what pre-training buys by itself, at no ε.

Validation perplexity is measured on held-out *private* users (fine for a benchmark on the
synthetic built-in corpus; the app labels it as not covered by ε). DP noise is secret, so a
private row moves by a few per cent from one invocation to the next; the wall time is the
training loop's (data loading is shared, the public model is built once before the first run
and cached in the data folder). On a shared machine use ``--threads 1`` (the default) so runs
do not fight over cores.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Expected sequences per step of an example-level run: about what the default user-level step sees
#: (B users × at most k sequences each), so the two units take comparable steps.
SEQUENCE_BATCH = 512
SAMPLE_CHARS = 48


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from dpcore.config import UNITS, TrainConfig

    default = TrainConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=default.max_steps,
                   help=f"training steps of every run (default: the app's {default.max_steps})")
    p.add_argument("--unit", choices=UNITS, default=default.unit,
                   help=f"privacy unit (default: {default.unit}); sequence-level runs take "
                        f"{SEQUENCE_BATCH} expected sequences per step")
    p.add_argument("--epsilons", type=float, nargs="+", default=[1.0, 3.0, 8.0], help="target ε values")
    p.add_argument("--inits", nargs="+", choices=("scratch", "public"), default=["scratch", "public"],
                   help="starting weights to compare")
    p.add_argument("--threads", type=int, default=1, help="torch math threads (default 1)")
    p.add_argument("--data-dir", default=None,
                   help="data folder holding the cached public model (default: the app's data folder)")
    return p.parse_args(argv)


def run_config(args: argparse.Namespace, init: str, epsilon: float | None):
    """The config of one cell: the app's defaults, this start and privacy, --steps and --unit."""
    from dpcore.config import TrainConfig

    base = TrainConfig(max_steps=args.steps, unit=args.unit, init=init, num_samples=1, eval_every=10**6)
    if args.unit == "sequence":
        base = base.replace(batch_size=SEQUENCE_BATCH)
    if epsilon is None:
        return base.replace(mechanism="none", epsilon=None).normalized()
    return base.replace(mechanism="gaussian", epsilon=epsilon)


def public_alone(config, data) -> float:
    """Validation perplexity of the public model itself on the private validation users."""
    from dpcore.training.device import resolve_device
    from dpcore.training.loop import evaluate
    from dpcore.training.model import GRULanguageModel, ModelConfig
    from dpcore.training.pretrain import load_public_state

    model_cfg = ModelConfig(data.tokenizer.vocab_size, config.embed_dim, config.hidden_size, config.num_layers,
                            config.dropout)
    state, _ = load_public_state(config, data, model_cfg, status=lambda text: print(text, file=sys.stderr))
    model = GRULanguageModel(model_cfg)
    model.load_state_dict(state)
    device = resolve_device(config.device)
    return math.exp(evaluate(model.to(device), data.val, device))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.data_dir:
        os.environ["DPCORE_DATA_DIR"] = str(Path(args.data_dir).expanduser().resolve())
    import torch

    from dpcore.training.loop import load_data, run_training

    torch.set_num_threads(args.threads)
    epsilons: list[float | None] = [None, *sorted(args.epsilons)]
    data = load_data(run_config(args, "scratch", None))
    rows, baselines = [], {}
    with tempfile.TemporaryDirectory(prefix="frontier-") as tmp:
        for init in args.inits:
            if init == "public":
                ppl = public_alone(run_config(args, "public", None), data)  # builds and caches it if missing
                rows.append((init, "public model alone (0 private steps)", None, ppl, None, ""))
            for eps in epsilons:
                config = run_config(args, init, eps)
                label = "no privacy" if eps is None else f"ε = {eps:g}"
                print(f"[frontier] {init}, {label}: {config.max_steps} steps ...", file=sys.stderr, flush=True)
                t0 = time.perf_counter()
                result = run_training(config, Path(tmp) / f"{init}-{label}", data=data)
                wall = time.perf_counter() - t0
                ppl = result.val_perplexity
                if eps is None:
                    baselines[init] = ppl
                sample = (result.samples or [""])[0][:SAMPLE_CHARS]
                rows.append((init, label, result.epsilon, ppl, wall, sample))
    print(_header(args, argv, data) + "\n")
    print("| start | privacy | ε spent | val perplexity | × no privacy (same start) | wall time | a sample |")
    print("|---|---|---|---|---|---|---|")
    for init, label, eps, ppl, wall, sample in rows:
        ratio = ppl / baselines[init] if init in baselines else None
        print(f"| {init} | {label} | {'—' if eps is None else f'{eps:.2f}'} | {ppl:.2f} | "
              f"{'—' if ratio is None else f'{ratio:.2f}'} | {'—' if wall is None else f'{wall:.0f} s'} | "
              f"{_cell(sample)} |")


def _header(args: argparse.Namespace, argv: list[str] | None, data) -> str:
    """The command and what every run shares, in one line above the table."""
    d = run_config(args, "scratch", 1.0)
    command = shlex.join(["python", "bench/frontier.py", *(argv if argv is not None else sys.argv[1:])])
    batch = (f"{d.batch_size} users (at most {d.user_cap} sequences each)" if args.unit == "user"
             else f"{d.batch_size} sequences")
    return (f"`{command}`: {len(data.train_users)} training users ({data.train.shape[0]} windows), "
            f"{args.steps} steps, unit {args.unit}, expected batch {batch}, lr {d.lr:g} from scratch and "
            f"{d.replace(init='public').effective_lr:g} from the public model, "
            f"EMA {'off' if d.ema is None else d.ema}, {args.threads} math thread(s)")


def _cell(text: str) -> str:
    """A sample as a table cell: one line, pipes escaped, quoted."""
    text = " ".join(text.split()).replace("|", "\\|")
    return f'"{text}"' if text else ""


if __name__ == "__main__":
    main()

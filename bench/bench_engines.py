"""Seconds per step, tokens/s and peak memory of the training engines, as a markdown table.

    python bench/bench_engines.py [--device cpu|cuda] [--steps N] [--quick]
    python bench/bench_engines.py --threads 1 --clock cpu --engines none,fast,fast-user --sizes 2,3
    python bench/bench_engines.py --threads 1 --clock cpu --engines none,fast-user,fast-user-secure --sizes 3
    python bench/bench_engines.py --threads 1 --clock cpu --paired fast-user,fast-user-secure --sizes 3

(the second: the character model the app trains, including its default configuration; the last two: what
secure noise, every draw from the OS's CSPRNG, costs a default step, the last with the two engines'
steps alternating in one process, which a shared machine's changing load cannot tell apart)

Each (engine, size) runs in its own subprocess, so that its peak RSS (VmHWM, else ``ru_maxrss``) is its own;
every child imports the same libraries, so the ratios compare training work, not imports. All
engines take full steps (forward, backward, clipping, noise, optimizer) on the same fixed random
batch of B sequences, so batch-size variation under Poisson sampling does not blur the timing.
Ratios are to the non-private fused ``nn.GRU`` step measured in the same invocation; children
are run in rounds, interleaved, so a change in machine load hits every engine alike.

On a machine shared with other work, two-thread wall-clock timings swing by 10× (OpenMP threads
wait for a core at every parallel region); ``--threads 1 --clock cpu`` (each child's own CPU time,
page-fault time included) gives steady ratios there. Peak RSS varies by about ±5% from run to run
with the allocator's heap state, hence the median over rounds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
ENGINES = {"none": "non-private nn.GRU", "opacus": "Opacus DP-SGD (hooks)", "fast": "fast DP-SGD (ghost)",
           "fast-user": "fast DP-SGD, user-level (k = 2)",
           "fast-secure": "fast DP-SGD, secure noise (OS CSPRNG)",
           "fast-user-secure": "fast DP-SGD, user-level (k = 2), secure noise"}
#: Sequences per user in the user-level row: the same B sequences per step, as B/k users of k each.
USER_CAP = 2


@dataclass(frozen=True)
class Size:
    name: str
    vocab: int
    embed: int
    hidden: int
    seq: int
    batch: int


SIZES = [
    Size("word h128 T35", vocab=2000, embed=64, hidden=128, seq=35, batch=64),
    Size("word h256 T64", vocab=2000, embed=64, hidden=256, seq=64, batch=64),
    Size("char h128 T64", vocab=80, embed=32, hidden=128, seq=64, batch=256),
    # The app's default run (dpcore.config.TrainConfig): characters of the built-in corpus, 32-token
    # windows, 256 users × user_cap 2 = 512 sequences per step ("fast-user"; "fast" is the same 512
    # sequences as 512 example-level units).
    Size("char default h128 T32 B512", vocab=80, embed=32, hidden=128, seq=32, batch=512),
]


def _build(name: str, size: Size, dev):
    """(engine, batch, groups) for one engine name at one size: the same fixed batch for every engine."""
    import torch

    from dpcore.training.engines import fast_gaussian, nonprivate, opacus_gaussian
    from dpcore.training.engines.base import EngineSetup

    # Import every engine whatever is measured, so each child carries the same libraries.
    from dpcore.training.model import ModelConfig

    classes = {"none": nonprivate.NonPrivateEngine, "opacus": opacus_gaussian.OpacusGaussianEngine,
               "fast": fast_gaussian.FastGaussianEngine, "fast-user": fast_gaussian.FastGaussianEngine,
               "fast-secure": fast_gaussian.FastGaussianEngine, "fast-user-secure": fast_gaussian.FastGaussianEngine}
    gen = torch.Generator().manual_seed(0)
    n = 50 * size.batch
    train = torch.randint(1, size.vocab, (n, size.seq + 1), generator=gen)
    user = name.startswith("fast-user")
    units, unit_batch = (n // USER_CAP, size.batch // USER_CAP) if user else (n, size.batch)
    setup = EngineSetup(
        train=train, model_config=ModelConfig(size.vocab, size.embed, size.hidden), pad_id=0,
        batch_size=unit_batch, lr=1e-3, optimizer="adam", clip=1.0, noise_multiplier=1.0,
        sample_rate=1 / math.ceil(units / unit_batch), seed=0, device=dev,
        row_users=torch.arange(n) // USER_CAP if user else None, num_users=units if user else None,
        user_cap=USER_CAP, secure_noise=name.endswith("-secure"),
    )
    groups = torch.arange(size.batch) // USER_CAP if user else None  # B/k users of k sequences each
    return classes[name](setup), train[: size.batch], groups


def run_child(engine: str, size: Size, device: str, steps: int, warmup: int, threads: int,
              clock: str) -> dict:
    """In the child process: build the engine, time ``steps`` steps after ``warmup``, report JSON."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    eng, batch, groups = _build(engine, size, dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    now = time.process_time if clock == "cpu" else time.perf_counter
    rss_setup = _current_rss_mib()
    times = []
    for i in range(warmup + steps):
        sync()
        start = now()
        eng.step(batch, groups)
        sync()
        if i >= warmup:
            times.append(now() - start)
    gpu = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None
    return {"times": times, "rss_mib": _peak_rss_mib(), "rss_setup_mib": rss_setup, "gpu_mib": gpu,
            "threads": torch.get_num_threads()}


def run_paired(engines: list[str], size: Size, device: str, steps: int, warmup: int, threads: int,
               clock: str) -> dict:
    """In one process, alternate one step of each engine ``steps`` times; report each pair's times.

    A machine's load changes over seconds, so separate children can differ by ±15 % on a shared
    machine; two steps taken back to back see the same load, and the ratio of each pair cancels it.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    built = [_build(name, size, dev) for name in engines]
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    now = time.process_time if clock == "cpu" else time.perf_counter
    times: list[list[float]] = [[] for _ in engines]
    for i in range(warmup + steps):
        order = range(len(built)) if i % 2 == 0 else reversed(range(len(built)))  # neither always goes first
        for k in order:
            eng, batch, groups = built[k]
            sync()
            start = now()
            eng.step(batch, groups)
            sync()
            if i >= warmup:
                times[k].append(now() - start)
    return {"times": times, "threads": torch.get_num_threads()}


def _peak_rss_mib() -> float:
    """This process's peak RSS. Linux's ``ru_maxrss`` survives exec, so a child forked from a big
    parent (gpu_check.py) would report at least the parent's size; VmHWM belongs to the new image."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(engine: str, size: Size, args: argparse.Namespace, steps: int, warmup: int) -> dict:
    """Run one child and parse its report."""
    spec = json.dumps({"engine": engine, "size": size.name, "device": args.device, "steps": steps,
                       "warmup": warmup, "threads": args.threads, "clock": args.clock})
    proc = subprocess.run([sys.executable, __file__, "--child", spec], capture_output=True, text=True,
                          cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} / {size.name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def paired(args: argparse.Namespace) -> str:
    """``--paired BASE,OTHER``: one child per (size, round), alternating steps; a markdown table of ratios."""
    pair = args.paired.split(",")
    if len(pair) != 2 or any(e not in ENGINES for e in pair):
        raise SystemExit(f"--paired takes two of {', '.join(ENGINES)}")
    steps = args.steps or (4 if args.quick else 10)
    rounds = args.rounds or (1 if args.quick else 2)
    sizes = [SIZES[int(i)] for i in args.sizes.split(",")] if args.sizes else SIZES
    lines = [f"| size | {ENGINES[pair[0]]} s/step | {ENGINES[pair[1]]} s/step | median ratio per pair "
             "| quartiles of the ratio | pairs |", "|---|---|---|---|---|---|"]
    threads = 0
    for size in sizes:
        base: list[float] = []
        other: list[float] = []
        for _ in range(rounds):
            spec = json.dumps({"paired": pair, "size": size.name, "device": args.device, "steps": steps,
                               "warmup": 2, "threads": args.threads, "clock": args.clock})
            proc = subprocess.run([sys.executable, __file__, "--child", spec], capture_output=True, text=True,
                                  cwd=ROOT)
            if proc.returncode != 0:
                raise RuntimeError(f"{pair} / {size.name} failed:\n{proc.stderr[-3000:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            threads = r["threads"]
            base += r["times"][0]
            other += r["times"][1]
        ratios = sorted(o / b for b, o in zip(base, other))
        q1, q3 = statistics.quantiles(ratios, n=4)[0], statistics.quantiles(ratios, n=4)[2]
        lines.append(f"| {size.name} | {statistics.median(base):.4f} | {statistics.median(other):.4f} "
                     f"| {statistics.median(ratios):.3f} | {q1:.3f}–{q3:.3f} | {len(ratios)} |")
    out = "\n".join(lines)
    print(f"\ndevice {args.device}, {threads} thread(s), {args.clock} clock, {steps} pairs × {rounds} round(s) "
          "after 2 warm-up pairs, steps alternating in one process\n")
    print(out)
    return out


def table(runs: dict[tuple[str, str], list[dict]], sizes: list[Size], engines: list[str], device: str) -> str:
    """Median s/step over all pooled steps; median peak RSS over the children (it varies by ±5% from
    run to run with the allocator's heap state); the largest peak GPU memory."""
    gpu = device == "cuda"
    head = "| size | engine | s/step | tokens/s | × non-private | peak RSS MiB | × RSS | RSS − setup MiB |"
    head += " peak GPU MiB | × GPU |" if gpu else ""
    lines = [head, "|" + "---|" * (head.count("|") - 1)]

    def summary(key: tuple[str, str]) -> dict | None:
        if key not in runs:
            return None
        rs = runs[key]
        return {"s": statistics.median(t for r in rs for t in r["times"]),
                "rss": statistics.median(r["rss_mib"] for r in rs),
                "setup": statistics.median(r["rss_setup_mib"] for r in rs),
                "gpu": max(r["gpu_mib"] or 0.0 for r in rs)}

    for size in sizes:
        base = summary((size.name, "none"))
        for engine in engines:
            r = summary((size.name, engine))
            if r is None:
                continue
            ratio = r["s"] / base["s"] if base else float("nan")
            rss_ratio = r["rss"] / base["rss"] if base else float("nan")
            tokens = size.batch * size.seq / r["s"]
            row = (f"| {size.name} | {ENGINES[engine]} | {r['s']:.4f} | {tokens:,.0f} | {ratio:.2f} "
                   f"| {r['rss']:.0f} | {rss_ratio:.2f} | {r['rss'] - r['setup']:.0f} |")
            if gpu:
                g_ratio = r["gpu"] / base["gpu"] if base else float("nan")
                row += f" {r['gpu']:.0f} | {g_ratio:.2f} |"
            lines.append(row)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per child (default 10; quick 4)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="children per (engine, size), interleaved; steps pooled (default 2; quick 1)")
    ap.add_argument("--quick", action="store_true", help="fewer steps, one round")
    ap.add_argument("--engines", default="none,opacus,fast,fast-user")
    ap.add_argument("--sizes", default=None, help="comma-separated indices into the size list (default all)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads per child (default: torch's)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall time, or the child's CPU time (steadier on a shared machine; use one thread)")
    ap.add_argument("--paired", default=None, metavar="BASE,OTHER",
                    help="instead of the table: alternate steps of two engines in one process (per size) and "
                         "report the median of OTHER/BASE per pair of steps (steadier on a shared machine)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        size = next(s for s in SIZES if s.name == spec["size"])
        if "paired" in spec:
            print(json.dumps(run_paired(spec["paired"], size, spec["device"], spec["steps"], spec["warmup"],
                                        spec["threads"], spec["clock"])))
            return ""
        print(json.dumps(run_child(spec["engine"], size, spec["device"], spec["steps"], spec["warmup"],
                                   spec["threads"], spec["clock"])))
        return ""
    if args.paired:
        return paired(args)
    steps = args.steps or (4 if args.quick else 10)
    rounds = args.rounds or (1 if args.quick else 2)
    warmup = 2
    engines = args.engines.split(",")
    sizes = [SIZES[int(i)] for i in args.sizes.split(",")] if args.sizes else SIZES
    runs: dict[tuple[str, str], list[dict]] = {}
    threads = 0
    for _ in range(rounds):
        for size in sizes:
            for engine in engines:
                r = measure(engine, size, args, steps, warmup)
                threads = r["threads"]
                runs.setdefault((size.name, engine), []).append(r)
                print(f"  {size.name:14s} {engine:7s} {statistics.median(r['times']):.4f} s/step "
                      f"{r['rss_mib']:.0f} MiB", file=sys.stderr, flush=True)
    import torch

    out = table(runs, sizes, engines, args.device)
    print(f"\ndevice {args.device}, torch {torch.__version__}, {threads} thread(s), {args.clock} clock, "
          f"{steps} steps × {rounds} round(s) after {warmup} warm-up; median s/step; "
          "batches of B sequences of T tokens\n")
    print(out)
    return out


if __name__ == "__main__":
    main()

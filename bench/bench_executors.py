"""Local processes against Ray on this machine: the same short runs through both executors, one table.

    python bench/bench_executors.py [--runs 8] [--steps 30] [--alone 3]

Two phases per executor, with the real trainer (a tiny private model on the built-in corpus):

* **batch**: ``--runs`` runs submitted at once. The local executor keeps its default cap (half the
  cores, one run per GPU); Ray gets this machine's cores (one CPU per run) and queues the rest.
  Reported: total wall time (first submit to last run ended) and the median submit → first metric
  (queueing included: what a visitor waits for their first point).
* **alone**: ``--alone`` runs one after another on an idle executor. A run's overhead is submit → run
  ended minus the trainer's own wall time (``result["wall_time_s"]``): process (or actor) start,
  imports, claiming, the store writes at the end. Ray's overhead per run is its median minus the
  local one's.

Ratios are Ray / local from the same invocation. Ray is started here (``address="local"``) with the
machine's usable cores and shut down at the end; needs ``pip install -r requirements-ray.txt``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dpcore.config import TrainConfig  # noqa: E402 - after the path set-up above
from dpcore.runs.executors.local import LocalExecutor, usable_cpus  # noqa: E402
from dpcore.runs.limits import ServerLimits  # noqa: E402
from dpcore.runs.store import RunStore  # noqa: E402

LIMITS = ServerLimits(max_active_per_owner=64, max_queued_per_owner=64, retention_days=0)


def short_run(steps: int) -> TrainConfig:
    return TrainConfig(mechanism="gaussian", epsilon=8.0, seq_len=16, embed_dim=8, hidden_size=32, batch_size=64,
                       max_steps=steps, eval_every=10**6, num_samples=0, device="cpu")


def first_metric_ts(store: RunStore, run_id: str) -> float | None:
    rows = store.metrics(run_id)
    return rows[0]["ts"] if rows else None


def batch(ex, runs: int, config: TrainConfig) -> dict[str, float]:
    start = time.time()
    ids = [ex.submit("bench", config) for _ in range(runs)]
    done = [ex.wait(i, timeout=1800, poll_s=0.2) for i in ids]
    bad = [r for r in done if r.status != "finished"]
    if bad:
        raise SystemExit(f"{len(bad)} run(s) did not finish: {bad[0].status}: {bad[0].error}")
    firsts = [first_metric_ts(ex.store, r.id) - r.created_at for r in done]
    return {"total_s": max(r.finished_at for r in done) - start, "first_metric_s": statistics.median(firsts)}


def alone(ex, repeat: int, config: TrainConfig) -> float:
    overheads = []
    for _ in range(repeat):
        run = ex.wait(ex.submit("bench", config), timeout=900, poll_s=0.05)
        if run.status != "finished":
            raise SystemExit(f"a run did not finish: {run.status}: {run.error}")
        overheads.append(run.finished_at - run.created_at - run.result.wall_time_s)
    return statistics.median(overheads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--alone", type=int, default=3, help="runs one at a time, for the per-run overhead")
    args = parser.parse_args()
    try:
        import ray
    except ImportError:
        raise SystemExit("this bench needs Ray: pip install -r requirements-ray.txt") from None
    from dpcore.runs.executors.ray import RayExecutor

    config = short_run(args.steps)
    cores = usable_cpus()
    results = {}
    with tempfile.TemporaryDirectory(prefix="dprnn-bench-exec-") as tmp:
        local = LocalExecutor(RunStore(Path(tmp) / "local", limits=LIMITS), gpus=[], limits=LIMITS)
        results["local"] = {**batch(local, args.runs, config), "overhead_s": alone(local, args.alone, config),
                            "slots": f"{local.max_concurrent} (default cap)"}
        started = time.time()
        ray.init(address="local", num_cpus=cores, include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING")
        ray_start = time.time() - started
        try:
            on_ray = RayExecutor(RunStore(Path(tmp) / "ray", limits=LIMITS), limits=LIMITS)
            results["ray"] = {**batch(on_ray, args.runs, config), "overhead_s": alone(on_ray, args.alone, config),
                              "slots": f"{cores} (1 CPU per run)"}
        finally:
            ray.shutdown()
    lo, ra = results["local"], results["ray"]
    print(f"{args.runs} runs of {args.steps} steps (Gaussian ε = 8, GRU 32, batch 64, one thread each) on "
          f"{cores} cores; Ray's own start: {ray_start:.1f} s (not in the totals)\n")
    print("| executor | runs at once | total wall (s) | submit → first metric, median (s) "
          "| overhead per run alone (s) |")
    print("|---|---|---:|---:|---:|")
    for name, row in (("local", lo), ("ray", ra)):
        print(f"| {name} | {row['slots']} | {row['total_s']:.1f} | {row['first_metric_s']:.1f} | "
              f"{row['overhead_s']:.2f} |")
    print(f"| ray / local | | {ra['total_s'] / lo['total_s']:.2f} | {ra['first_metric_s'] / lo['first_metric_s']:.2f} "
          f"| {ra['overhead_s'] / lo['overhead_s']:.2f} |")
    print(f"\nRay's overhead per run (alone, median, Ray − local): {ra['overhead_s'] - lo['overhead_s']:+.2f} s")
    print(f"(pid {os.getpid()}; overhead = submit → ended − the trainer's own wall time)")


if __name__ == "__main__":
    main()

"""A stand-in trainer for sweep tests: a few quick steps and a result shaped like the real one's.

Loaded by workers with ``--train-fn <this file>:run_training`` (or a Ray worker's ``train_fn``). A
private run reports ε spent = 0.9 × its target and a validation perplexity that falls as ε grows
(5 + 10/ε); the non-private baseline reports perplexity 4, so Compare's frontier has real points.
The result also names the corpus file it was given and its size (to test where a worker reads it).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from dpcore.events import EvalMetrics, RunInfo, StepMetrics, TrainCallbacks

STEPS = 4


def run_training(config: Any, out_dir: Any, *, callbacks: Any = None, should_stop: Any = None) -> dict:
    cb = callbacks or TrainCallbacks()
    private = config.mechanism in ("gaussian", "laplace")
    target = float(config.epsilon) if private else None
    cb.on_start(RunInfo(
        total_steps=STEPS, num_train_examples=100, num_val_examples=10, vocab_size=30, num_parameters=1000,
        sample_rate=0.1 if private else None, noise_multiplier=1.0 if private else None,
        delta=1e-5 if private else None, device="cpu", privacy_unit="example",
        guarantee="dp" if private else "none",
    ))
    for step in range(1, STEPS + 1):
        time.sleep(0.02)
        spent = 0.9 * target * step / STEPS if private else None
        cb.on_step(StepMetrics(step=step, train_loss=3.0 / step, epsilon=spent, batch_size=10, frac_clipped=0.5,
                               median_grad_norm=1.0, step_time_s=0.02, elapsed_s=0.02 * step))
    ppl = 5.0 + 10.0 / target if private else 4.0
    cb.on_eval(EvalMetrics(step=STEPS, val_loss=1.5, val_perplexity=ppl))
    result = {"mechanism": config.mechanism, "guarantee": "dp" if private else "none",
              "epsilon": 0.9 * target if private else None, "target_epsilon": target,
              "delta": 1e-5 if private else None, "steps": STEPS, "planned_steps": STEPS, "stopped": False,
              "val_perplexity": ppl, "wall_time_s": 0.1, "samples": [], "corpus": config.corpus,
              "corpus_bytes": None if config.corpus == "builtin" else len(Path(config.corpus).read_bytes())}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result))
    return result

"""A stand-in for ``dpcore.training.loop.run_training`` so executor tests run in a fraction of a second.

The worker loads it with ``--train-fn <this file>:run_training``. It follows the real contract
(callbacks, ``should_stop``, files in ``out_dir``, the result dict) and is steered per run by
``config.sample_prompt`` = "key=value;...":

* ``step_s``: seconds per step (default 0.01); ``max_steps`` is the number of steps;
* ``fail``: ``corpus`` (DPCoreError before step 1), ``bug`` / ``oom`` (raise at step ``fail_at``);
* ``nan_at``: the loss becomes NaN at that step, which the trainer refuses (TrainingDiverged) as the real one does;
* ``ignore_stop=1``: never look at should_stop (to test the SIGKILL escalation);
* ``alloc_mb``: at step ``fail_at``, ask for that many MiB at once (``bytes``: calloc, so the pages
  are never touched when the allocation succeeds) to test the worker's memory cap;
* ``fail=enospc``: at step ``fail_at``, writing a file fails because the disk is full.
"""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path
from typing import Any

from dpcore.errors import CorpusError, TrainingDiverged
from dpcore.events import EvalMetrics, RunInfo, SampleEvent, StepMetrics, TrainCallbacks

CORPUS_MESSAGE = "the corpus file is empty: upload a text file with at least one line of text"


def run_training(config: Any, out_dir: Any, *, callbacks: Any = None, should_stop: Any = None) -> dict:
    opts = dict(item.split("=", 1) for item in config.sample_prompt.split(";") if "=" in item)
    step_s = float(opts.get("step_s", 0.01))
    fail, fail_at = opts.get("fail"), int(opts.get("fail_at", 3))
    nan_at = int(opts["nan_at"]) if "nan_at" in opts else None
    cb = callbacks or TrainCallbacks()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if fail == "corpus":
        raise CorpusError(CORPUS_MESSAGE)
    cb.on_start(RunInfo(
        total_steps=config.max_steps, num_train_examples=100, num_val_examples=10, vocab_size=30,
        num_parameters=1000, sample_rate=0.1, noise_multiplier=None, delta=None, device="cpu",
        privacy_unit="example", guarantee="none",
    ))
    start, stopped, step = time.monotonic(), False, 0
    for step in range(1, config.max_steps + 1):
        time.sleep(step_s)
        if nan_at is not None and step >= nan_at:
            raise TrainingDiverged(f"the training loss became nan at step {step}: lower the learning rate")
        loss = 3.0 / step
        cb.on_step(StepMetrics(
            step=step, train_loss=loss, epsilon=None, batch_size=config.batch_size, frac_clipped=0.5,
            median_grad_norm=1.0, step_time_s=step_s, elapsed_s=time.monotonic() - start,
        ))
        if fail == "bug" and step == fail_at:
            raise ZeroDivisionError("division by zero in the fake trainer")
        if fail == "oom" and step == fail_at:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if fail == "enospc" and step == fail_at:
            raise OSError(errno.ENOSPC, "No space left on device", str(out / "model.pt"))
        if "alloc_mb" in opts and step == fail_at:
            block = bytes(int(opts["alloc_mb"]) * 2**20)
            del block
        if should_stop is not None and should_stop() and opts.get("ignore_stop") != "1":
            stopped = True
            break
    cb.on_eval(EvalMetrics(step=step, val_loss=1.5, val_perplexity=4.48))
    cb.on_samples(SampleEvent(step=step, kind="final", prompt="", texts=["hello", "world"]))
    (out / "model.pt").write_bytes(b"fake checkpoint")
    result = {"mechanism": config.mechanism, "steps": step, "device": "cpu", "stopped": stopped,
              "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    (out / "result.json").write_text(json.dumps(result))
    return result

"""Train, then audit: the one entry point for a run, used by the worker and ``python -m dpcore train``.

The trainer (:mod:`dpcore.training.loop`) knows nothing of audits. A run that asks for one
(``TrainConfig.audit``) needs the one-run audit's canaries *inside* training, each included by a
secret fair coin (Steinke, Nasr and Jagielski 2023), so they are made here, handed to the trainer as
extra rows, and scored after training together with canary exposure and membership inference
(:func:`dpcore.audit.run.run_audit`). N for q and δ counts all m canaries whether included or not,
so nothing published depends on the coins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from dpcore.audit.defaults import AUDIT_CANARIES
from dpcore.audit.one_run import make_audit_canaries
from dpcore.audit.run import run_audit
from dpcore.config import TrainConfig
from dpcore.data import LMData
from dpcore.events import TrainCallbacks
from dpcore.training.loop import load_data, run_training, write_result
from dpcore.training.result import RunResult

#: What result.json keeps of the audit (the whole report is audit.json).
RESULT_KEYS = ("auc", "empirical_epsilon", "one_run", "exposure_by_insertions", "plain")


def train_and_audit(config: TrainConfig, out_dir: str | Path, *, callbacks: TrainCallbacks | None = None,
                    should_stop: Callable[[], bool] | None = None, data: LMData | None = None) -> RunResult:
    """:func:`~dpcore.training.loop.run_training`, and the audit around it when ``config.audit`` is set."""
    if not config.audit:
        return run_training(config, out_dir, callbacks=callbacks, should_stop=should_stop, data=data)
    data = data if data is not None else load_data(config)
    canaries = make_audit_canaries(data.tokenizer.vocab_size, config.seq_len, AUDIT_CANARIES)
    result = run_training(config, out_dir, callbacks=callbacks, should_stop=should_stop, data=data,
                          extra_rows=canaries.training_rows(), extra_accounted=canaries.m)
    result = replace(result, num_audit_canaries=canaries.m)
    if not result.stopped:
        report = run_audit(Path(out_dir) / "model.pt", out_dir, seed=config.seed, data=data,
                           device=str(result.device), audit_canaries=canaries)
        result = replace(result, audit={k: report.get(k) for k in RESULT_KEYS})
    write_result(out_dir, result)
    return result

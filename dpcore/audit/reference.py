"""The reference model of the calibrated membership attack: how hard is each sequence *anyway*?

A low loss alone is weak evidence of membership: short, formulaic sequences ("pick up milk") have
low loss under any model of the language. Difficulty calibration (Watson et al., ICLR 2022)
subtracts what a model that never saw the sequence expects. The honest, affordable version used
here trains ONE reference model, non-private, with the target's architecture, optimiser, learning
rate and seed, on the training windows of the users the attacked members were *not* drawn from
(see :func:`dpcore.audit.run._targets`). So it saw no window of any attacked user, member or
held-out, and any gap between the target's loss and the reference's on an example is the target's
own memorisation (up to the noise of one training run). Excluding only the member windows is not
enough: one user's windows share their persona, so the reference would find members easy through
their neighbours and cancel their signal (on the built-in corpus that pushed the calibrated AUC of
DP runs below 0.5). Its length defaults to the target's steps, capped to keep audits
short; the cap is reported.

The cheaper stand-ins were rejected: the untrained initial model gives every sequence about the
same loss (log V), so it calibrates nothing, and a unigram model knows only letter frequencies.
"""

from __future__ import annotations

import dataclasses
import random
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from dpcore.config import TrainConfig
from dpcore.data import LMData
from dpcore.training.checkpoint import load_checkpoint
from dpcore.training.model import GRULanguageModel


def reference_data(data: LMData, exclude_rows: Sequence[int]) -> LMData:
    """``data`` with the training windows in ``exclude_rows`` removed (canary row indices remapped)."""
    excluded = set(int(i) for i in exclude_rows)
    keep = [i for i in range(int(data.train.shape[0])) if i not in excluded]
    new_index = {old: new for new, old in enumerate(keep)}
    return dataclasses.replace(
        data,
        train=data.train[np.asarray(keep, dtype=np.int64)],
        train_example_users=[data.train_example_users[i] for i in keep],
        canary_rows={cid: [new_index[i] for i in rows if i in new_index] for cid, rows in data.canary_rows.items()},
    )


def reference_config(config: TrainConfig, steps: int, device: str) -> TrainConfig:
    """The target's config made non-private and quiet: same model, optimiser, learning rate and seed."""
    return config.replace(mechanism="none", max_steps=steps, epochs=None, num_samples=0, eval_every=steps,
                          device=device, noise_multiplier=None)


@contextmanager
def _caller_rng_kept() -> Iterator[None]:
    """Restore Python's, NumPy's and torch's global RNGs after training reseeds them all."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def train_reference(config: TrainConfig, data: LMData, exclude_rows: Sequence[int], *, steps: int,
                    device: str = "cpu", work_dir: str | Path | None = None) -> GRULanguageModel:
    """Train the reference model (see the module docstring) and return it in eval mode.

    Its checkpoint goes to ``work_dir`` when given (kept for inspection), else to a temporary folder.
    The caller's global random states are left as they were.
    """
    ref_config = reference_config(config, steps, device)
    ref_data = reference_data(data, exclude_rows)
    from dpcore.training.loop import run_training  # imported here: training pulls in the engines

    with _caller_rng_kept():
        if work_dir is not None:
            run_training(ref_config, work_dir, data=ref_data)
            return load_checkpoint(Path(work_dir) / "model.pt", device=device).model
        with tempfile.TemporaryDirectory(prefix="dpcore-reference-") as tmp:
            run_training(ref_config, tmp, data=ref_data)
            return load_checkpoint(Path(tmp) / "model.pt", device=device).model

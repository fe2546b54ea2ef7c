"""Shared fixtures: tiny data and configs so every dpcore test runs in seconds on CPU."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Tiny test models run fastest on one thread, and leave the other core to subprocesses.
torch.set_num_threads(1)
# Executors start one worker per run in tests (what they assert on); standby workers, which would
# linger beside every test's data folder, are tested on their own (tests/runs/test_warm_workers.py).
os.environ.setdefault("DPCORE_WARM_WORKERS", "0")


@pytest.fixture(scope="session")
def tiny_data():
    """The built-in corpus cut into short windows (seq_len 16): ~10k training examples."""
    from dpcore.data import build_lm_data, builtin_corpus

    return build_lm_data(builtin_corpus(seed=0, num_users=60), seq_len=16)


@pytest.fixture()
def tiny_config():
    from dpcore.config import TrainConfig

    return TrainConfig(seq_len=16, embed_dim=8, hidden_size=16, batch_size=32, max_steps=6, eval_every=3,
                       num_samples=1, sample_tokens=10, lr=0.01, builtin_users=60)  # the tiny_data crowd

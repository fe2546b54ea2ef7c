"""The fast engine's less travelled paths: reused buffers, users listed out of order or without rows.

The Opacus and brute-force comparisons (test_fast_engine.py, test_user_level.py) cover the common
paths; these check that the shortcuts taken for speed change no result.
"""

from __future__ import annotations

import pytest
import torch

from dpcore.data.tokenizer import PAD_ID
from dpcore.training.engines.fast_gaussian import Workspace, clipped_gradient_sum
from dpcore.training.model import ModelConfig, build_model

ROUTES = ["gram", "materialize", "auto"]


def _data(vocab: int = 23, seq_len: int = 9, n: int = 16, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    data = torch.randint(1, vocab, (n, seq_len + 1), generator=gen)
    data[::4, seq_len // 2 :] = PAD_ID  # padded tails
    return data


def _model(layers: int = 2) -> torch.nn.Module:
    return build_model(ModelConfig(23, 6, 9, layers, 0.0), seed=1).train()


def _assert_same(got, want) -> None:
    torch.testing.assert_close(got.norms, want.norms, rtol=1e-5, atol=1e-7)
    for name, value in want.grads.items():
        torch.testing.assert_close(got.grads[name], value, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize("users", [False, True])
def test_a_reused_workspace_gives_the_results_of_fresh_buffers(users):
    model, data, work = _model(), _data(), Workspace()
    for b in (12, 5, 16, 12):  # Poisson batches vary in size: smaller, then larger than the buffers
        batch = data[:b]
        groups = torch.arange(b) // 3 if users else None
        got = clipped_gradient_sum(model, batch, PAD_ID, 0.5, users=groups, workspace=work)
        _assert_same(got, clipped_gradient_sum(model, batch, PAD_ID, 0.5, users=groups))
    pointers = {name: buf.data_ptr() for name, buf in work._storage.items()}
    clipped_gradient_sum(model, data[:7], PAD_ID, 0.5, workspace=work)
    assert {name: buf.data_ptr() for name, buf in work._storage.items()} == pointers  # reused, not reallocated


@pytest.mark.parametrize("route", ROUTES)
def test_users_listed_out_of_order_are_clipped_as_if_grouped(route):
    model, batch = _model(), _data()[:9]
    groups = torch.tensor([2, 0, 1, 0, 2, 2, 1, 3, 0])
    order = torch.argsort(groups, stable=True)
    got = clipped_gradient_sum(model, batch, PAD_ID, 0.3, route=route, users=groups)
    want = clipped_gradient_sum(model, batch[order], PAD_ID, 0.3, route=route, users=groups[order])
    _assert_same(got, want)
    assert len(got.norms) == 4


@pytest.mark.parametrize("route", ROUTES)
def test_a_user_index_without_rows_has_norm_zero_and_changes_nothing(route):
    model, batch = _model(1), _data()[:6]
    got = clipped_gradient_sum(model, batch, PAD_ID, 0.3, route=route, users=torch.tensor([0, 0, 2, 2, 2, 3]))
    want = clipped_gradient_sum(model, batch, PAD_ID, 0.3, route=route, users=torch.tensor([0, 0, 1, 1, 1, 2]))
    assert float(got.norms[1]) == 0.0
    torch.testing.assert_close(got.norms[[0, 2, 3]], want.norms, rtol=1e-5, atol=1e-7)
    for name, value in want.grads.items():
        torch.testing.assert_close(got.grads[name], value, rtol=1e-5, atol=1e-7, msg=name)

"""User-level DP-SGD: users are sampled, each user's mean gradient is clipped as a whole.

The oracle is deliberately naive: a loop over users, each summing its sequences' gradients from
plain autograd (one backward pass per sequence through the fused nn.GRU), averaging, clipping.
"""

from __future__ import annotations

import math

import pytest
import torch

from dpcore.data.tokenizer import PAD_ID
from dpcore.privacy.accounting import sample_rate_for
from dpcore.training.engines import EngineSetup
from dpcore.training.engines.fast_gaussian import FastGaussianEngine, clipped_gradient_sum
from dpcore.training.engines.opacus_gaussian import OpacusGaussianEngine
from dpcore.training.engines.opacus_laplace import OpacusLaplaceEngine
from dpcore.training.engines.user_sampling import UserPoissonSampler
from dpcore.training.model import ModelConfig, sequence_losses

# (vocab, embed, hidden, layers, seq_len)
SIZES = [(17, 5, 7, 1, 6), (23, 6, 9, 2, 8)]
ROUTES = ["gram", "materialize", "auto"]


def _data(vocab: int, seq_len: int, n: int = 40, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    data = torch.randint(1, vocab, (n, seq_len + 1), generator=gen)
    for i in range(0, n, 3):
        data[i, seq_len // 2 + i % 3 :] = PAD_ID
    return data


def _users(n: int, num_users: int, seed: int = 0) -> torch.Tensor:
    """Row → user, unevenly: some users hold one row, some many."""
    gen = torch.Generator().manual_seed(seed)
    users = torch.randint(0, num_users, (n,), generator=gen)
    users[:num_users] = torch.arange(num_users)  # everyone holds at least one row
    return users


def _setup(train, size, users, *, clip=1.0, noise=0.0, batch=4, cap=3, num_users=None, seed=0):
    vocab, embed, hidden, layers, _ = size
    num_users = num_users if num_users is not None else int(users.max()) + 1
    return EngineSetup(
        train=train, model_config=ModelConfig(vocab, embed, hidden, layers, 0.0), pad_id=PAD_ID,
        batch_size=batch, lr=0.05, optimizer="sgd", clip=clip, noise_multiplier=noise,
        sample_rate=sample_rate_for(num_users, batch), seed=seed, device=torch.device("cpu"),
        row_users=users, num_users=num_users, user_cap=cap, dp_randomness_seed=seed,
    )


def _per_sequence_grads(model, batch):
    out = []
    for i in range(len(batch)):
        model.zero_grad()
        logits, _ = model(batch[i : i + 1, :-1])
        sequence_losses(logits, batch[i : i + 1, 1:], PAD_ID).sum().backward()
        out.append({n: p.grad.clone() for n, p in model.named_parameters()})
    return out


def _oracle(model, batch, groups, clip):
    """Σ_u min(1, C/‖ḡ_u‖) ḡ_u with ḡ_u the mean of user u's per-sequence gradients; and the norms."""
    grads = _per_sequence_grads(model, batch)
    total = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    norms = []
    for u in range(int(groups.max()) + 1):
        rows = [i for i in range(len(batch)) if int(groups[i]) == u]
        mean = {n: sum(grads[i][n] for i in rows) / len(rows) for n in total}
        norm = math.sqrt(sum(float(g.pow(2).sum()) for g in mean.values()))
        norms.append(norm)
        factor = min(1.0, clip / (norm + 1e-6))
        for n in total:
            total[n] += factor * mean[n]
    return total, torch.tensor(norms)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("route", ROUTES)
def test_fast_user_clipped_sum_matches_a_loop_over_users(size, route):
    train = _data(size[0], size[4], seed=sum(size))
    batch = train[:11]
    groups = torch.tensor([0, 0, 0, 1, 2, 2, 3, 3, 3, 3, 4])  # users of 1..4 rows
    engine = FastGaussianEngine(_setup(train, size, _users(len(train), 6)))
    engine.route = route
    unclipped = engine.clipped_sum(batch, groups).norms
    clip = float(unclipped.median())  # some users clipped, some not
    engine.setup = _setup(train, size, _users(len(train), 6), clip=clip)
    got = engine.clipped_sum(batch, groups)
    want, want_norms = _oracle(engine.model, batch, groups, clip)
    torch.testing.assert_close(got.norms, want_norms.to(got.norms.dtype), rtol=1e-4, atol=1e-5)
    for name, g in want.items():
        torch.testing.assert_close(got.grads[name].view_as(g), g, rtol=1e-4, atol=1e-5, msg=name)
    assert (got.norms > clip).any() and (got.norms < clip).any()


def test_each_users_clipped_contribution_is_at_most_c_and_independent_of_the_others():
    size = SIZES[0]
    train = _data(size[0], size[4], seed=3)
    model = FastGaussianEngine(_setup(train, size, _users(len(train), 6))).model
    clip = 0.05  # everyone clipped
    alone = clipped_gradient_sum(model, train[:3], PAD_ID, clip, users=torch.tensor([0, 0, 0]))
    together = clipped_gradient_sum(model, train[:9], PAD_ID, clip,
                                    users=torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2]))
    others = clipped_gradient_sum(model, train[3:9], PAD_ID, clip, users=torch.tensor([0, 0, 1, 1, 1, 1]))
    norm_alone = math.sqrt(sum(float(g.pow(2).sum()) for g in alone.grads.values()))
    assert norm_alone <= clip * (1 + 1e-4)
    for name in alone.grads:  # user 0's share of the sum does not depend on who else was sampled
        torch.testing.assert_close(together.grads[name] - others.grads[name], alone.grads[name],
                                   rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("engine_cls", [OpacusGaussianEngine, OpacusLaplaceEngine])
def test_opacus_user_level_clips_users(engine_cls):
    """The Opacus path (the oracle's second opinion, and Laplace's only path) clips per user too."""
    size = SIZES[0]
    train = _data(size[0], size[4], seed=5)
    groups = torch.tensor([0, 0, 1, 2, 2, 2])
    batch = train[:6]
    ref = engine_cls(_setup(train, size, _users(len(train), 6), clip=1e6))
    ref.gsm.train()
    ref.optimizer.zero_grad(set_to_none=True)
    ref.optimizer.groups = groups
    ref.batch_loss(ref.gsm, batch).backward()
    ref.optimizer.clip_and_accumulate()
    want, want_norms = _oracle(ref.model, batch, groups, 1e6)
    assert len(ref.optimizer.last_norms) == 3
    if engine_cls is OpacusGaussianEngine:
        torch.testing.assert_close(ref.optimizer.last_norms, want_norms.to(torch.float32), rtol=1e-4, atol=1e-5)
    for name, p in ref.gsm.named_parameters():
        key = name.removeprefix("_module.")
        if key in want:
            torch.testing.assert_close(p.summed_grad.view_as(want[key]), want[key], rtol=1e-4, atol=1e-5)


def test_fast_and_opacus_user_steps_agree_with_equal_seeds():
    size = SIZES[1]
    train = _data(size[0], size[4], n=60, seed=9)
    users = _users(len(train), 12, seed=1)
    fast = FastGaussianEngine(_setup(train, size, users, clip=0.5, noise=0.7, seed=4))
    ref = OpacusGaussianEngine(_setup(train, size, users, clip=0.5, noise=0.7, seed=4))
    for (batch, groups), (batch2, groups2) in zip(
            (next(fast.batches()) for _ in range(3)), (next(ref.batches()) for _ in range(3)), strict=True):
        assert torch.equal(batch, batch2) and torch.equal(groups, groups2)
        a, b = fast.step(batch, groups), ref.step(batch2, groups2)
        assert a.batch_size == b.batch_size == (int(groups.max()) + 1 if len(groups) else 0)
    torch.testing.assert_close(fast.plain_model().state_dict(), ref.plain_model().state_dict(),
                               rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------------------ sampling
def test_sampler_caps_rows_per_user_samples_users_at_rate_q_and_never_mixes_users():
    n, num_users, cap, q = 400, 50, 3, 0.2
    users = _users(n, num_users, seed=2)
    train = torch.arange(n).view(n, 1).repeat(1, 4)  # row i holds the value i: rows can be traced
    sampler = UserPoissonSampler(train, users, num_users + 10, q, cap, torch.Generator().manual_seed(0))
    counts = torch.bincount(users, minlength=num_users)
    seen = torch.zeros(num_users)
    steps = 2000
    picked_rows = torch.zeros(n)
    for _ in range(steps):
        ub = sampler.sample()
        rows = ub.rows[:, 0]
        assert torch.equal(ub.groups, torch.sort(ub.groups).values)  # grouped, contiguous
        owners = users[rows]
        per_group = torch.bincount(ub.groups, minlength=ub.num_users)
        assert len(ub.groups) == 0 or int(per_group.max()) <= cap
        for g in range(ub.num_users):  # one group, one user, and no row twice
            assert len(set(owners[ub.groups == g].tolist())) == 1
        assert len(set(rows.tolist())) == len(rows)
        seen[owners.unique()] += 1
        picked_rows[rows] += 1
    rate = seen / steps
    assert abs(float(rate.mean()) - q) < 0.01  # users are sampled at q, whatever their size
    assert float((rate - q).abs().max()) < 0.06
    # Inside a sampled user, every row is equally likely: a user with 6 rows picks each w.p. cap/6.
    big = [u for u in range(num_users) if int(counts[u]) > cap]
    for u in big:
        share = picked_rows[users == u] / (seen[u])
        assert float((share - cap / int(counts[u])).abs().max()) < 0.12


def test_sampler_rate_is_checked_against_the_accounted_users():
    size = SIZES[0]
    train = _data(size[0], size[4])
    users = _users(len(train), 6)
    setup = _setup(train, size, users, num_users=20, batch=4)  # q = 1/ceil(20/4) = 0.2
    engine = FastGaussianEngine(setup)
    assert engine.expected_batch_size == 4
    bad = EngineSetup(**{**setup.__dict__, "sample_rate": 0.5})
    with pytest.raises(AssertionError):
        FastGaussianEngine(bad)

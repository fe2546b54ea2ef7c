"""User-level batches: Poisson-sample *users*, then at most k of each sampled user's sequences.

User-level DP-SGD (McMahan et al. 2018; Chua et al. 2024, "Mind the privacy unit!") protects a
person with all of their text. Its accountant treats one *user* as the unit that is added or
removed, so the sampling must be the one it assumes: every user is in a step's batch independently
with probability q = 1/ceil(N_users/B) (B = expected users per step), with no dependence on any
other user. Each sampled user then contributes at most ``cap`` (k) of their sequences, chosen
uniformly at random without replacement each time; the engine averages them and clips that
average as a whole, so one user moves the update by at most C however many sequences they wrote.

Both draws use the engine's sampling source (see :mod:`dpcore.training.engines.base`): a secret-seeded torch
generator, or the OS's CSPRNG with secure noise.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from dpcore.privacy.noise import NoiseSource, as_source


@dataclass(frozen=True)
class UserBatch:
    """One step's rows and, for each row, the index (0..num_users-1) of its user within the batch.

    Rows come grouped by user: ``groups`` is non-decreasing, so a user's rows are contiguous.
    """

    rows: torch.Tensor  # [b, T+1]
    groups: torch.Tensor  # [b] long
    num_users: int  # users sampled (every one has at least one row)


class UserPoissonSampler:
    """An endless stream of :class:`UserBatch` under user-level Poisson sampling with a per-user cap.

    ``row_users[i]`` is the user index (0..num_users-1) of training row ``i``; ``num_users`` may
    exceed the largest index (users counted by the accountant who have no row here: they are
    sampled like everyone else and contribute nothing). ``generator`` is the engine's sampling
    :class:`~dpcore.privacy.noise.NoiseSource`; a bare torch generator is wrapped in one.
    """

    def __init__(self, train: torch.Tensor, row_users: torch.Tensor, num_users: int, sample_rate: float,
                 cap: int, generator: NoiseSource | torch.Generator) -> None:
        if len(row_users) != len(train):
            raise ValueError("row_users must give one user per training row")
        if len(row_users) and (int(row_users.min()) < 0 or int(row_users.max()) >= num_users):
            raise ValueError("a row's user index is outside 0..num_users-1")
        if not 0.0 < sample_rate <= 1.0:
            raise ValueError(f"the sample rate must be in (0, 1], got {sample_rate}")
        if cap < 1:
            raise ValueError(f"the per-user cap must be at least 1, got {cap}")
        self.train, self.num_users, self.sample_rate, self.cap = train, num_users, sample_rate, cap
        self.source = as_source(generator)
        order = torch.argsort(row_users, stable=True)
        self._rows_by_user = order  # row indices, grouped by user
        counts = torch.bincount(row_users, minlength=num_users)
        self.counts = counts
        self._starts = torch.cumsum(counts, 0) - counts  # first position of each user in the order

    def sample(self) -> UserBatch:
        """One step: sampled users (each independently, with probability q), ≤ cap rows each."""
        chosen = self.source.rand(self.num_users) < self.sample_rate
        users = torch.nonzero(chosen & (self.counts > 0)).flatten()
        if len(users) == 0:
            return UserBatch(self.train[:0], torch.zeros(0, dtype=torch.long), 0)
        counts = self.counts[users]
        # Positions of every row of the sampled users in the grouped order, user by user.
        owner = torch.repeat_interleave(torch.arange(len(users)), counts)
        first = torch.repeat_interleave(self._starts[users], counts)
        within = torch.arange(len(owner)) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        # A uniformly random subset of ≤ cap rows per user: shuffle within each user (owner-major
        # sort on 2·owner + a random key in [0, 1), in float64: users never mix), keep the first cap.
        keys = self.source.rand(len(owner), torch.float64)
        perm = torch.argsort(owner.to(torch.float64) * 2.0 + keys)
        keep = perm[within < self.cap]  # the sorted layout has the same user blocks as ``owner``
        rows = self._rows_by_user[first[keep] + within[keep]]
        groups = owner[keep]
        return UserBatch(self.train[rows], groups, len(users))

    def __iter__(self) -> Iterator[UserBatch]:
        while True:
            yield self.sample()

"""Engines without a DP guarantee: the non-private baseline and the naive recipe.

Both train the fused nn.GRU, so the baseline the app shows is the honest one (fast, no hooks).
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

from dpcore.privacy.noise import laplace_noise
from dpcore.training.engines.base import Engine, EngineSetup, StepStats


class NonPrivateEngine(Engine):
    """Plain minibatch training: shuffled fixed-size batches, no clipping, no noise."""

    guarantee = "none"

    def __init__(self, setup: EngineSetup) -> None:
        super().__init__(setup)
        self.optimizer = self.make_optimizer(self.model.parameters())
        self.loader = DataLoader(
            TensorDataset(setup.train), batch_size=setup.batch_size, shuffle=True, generator=self._sample_gen
        )

    @property
    def module(self) -> torch.nn.Module:
        return self.model

    def step(self, batch: torch.Tensor, groups: torch.Tensor | None = None) -> StepStats:
        del groups  # no privacy unit without a guarantee
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.batch_loss(self.model, batch)
        loss.backward()
        self.perturb_gradients()
        self.optimizer.step()
        return StepStats(loss=float(loss.item()), batch_size=len(batch))

    def perturb_gradients(self) -> None:
        """Hook for the naive recipe; the baseline leaves gradients alone."""


class NaiveNoiseEngine(NonPrivateEngine):
    """The blog post's recipe: Laplace(Δ/ε) on the batch-averaged gradient, Δ merely *assumed*.

    There is no per-example clipping, so one example can move the gradient by any amount: the
    sensitivity is unbounded and no ε holds, however much noise is added. Kept for teaching,
    always labelled "no privacy guarantee".
    """

    guarantee = "no-guarantee"

    def perturb_gradients(self) -> None:
        eps = self.setup.naive_epsilon or 1.0
        scale = self.setup.naive_sensitivity / eps
        for p in self.model.parameters():
            if p.grad is not None:
                p.grad.add_(laplace_noise(p.grad.shape, scale, self._noise_gen, p.grad.device))

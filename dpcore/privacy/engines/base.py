"""What every engine provides, and the factory that picks one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from dpcore.model import GRULanguageModel, ModelConfig, build_model, plain_state_dict, sequence_losses


@dataclass(frozen=True)
class StepStats:
    """What one step reports. Loss is None on an empty Poisson batch (the step still adds noise)."""

    loss: float | None
    batch_size: int
    frac_clipped: float | None = None
    median_grad_norm: float | None = None


@dataclass(frozen=True)
class EngineSetup:
    """Everything an engine needs; the trainer fills it from a TrainConfig and the data."""

    train: torch.Tensor  # [N, T+1] token ids
    model_config: ModelConfig
    pad_id: int
    batch_size: int  # expected batch size B (Poisson: q = 1/ceil(N/B))
    lr: float
    optimizer: str
    clip: float
    noise_multiplier: float | None  # σ for Gaussian, λ for Laplace
    sample_rate: float | None
    seed: int
    device: torch.device
    naive_sensitivity: float = 1.0
    naive_epsilon: float | None = None


class Engine(ABC):
    """Turns batches into updates of ``self.module``; evaluation uses :meth:`plain_model`."""

    #: "dp" (an accountant bounds ε), "none" (non-private baseline) or "no-guarantee" (naive).
    guarantee: str = "dp"

    def __init__(self, setup: EngineSetup) -> None:
        self.setup = setup
        self.device = setup.device
        self._noise_gen = torch.Generator(device=setup.device)
        self._noise_gen.manual_seed(setup.seed + 1)
        self._sample_gen = torch.Generator()
        self._sample_gen.manual_seed(setup.seed + 2)
        self.model = build_model(setup.model_config, setup.seed).to(setup.device)

    #: The epoch's batches (a Poisson ``DPDataLoader`` for DP engines, a shuffled one otherwise).
    loader: Iterable

    def batches(self) -> Iterator[torch.Tensor]:
        """An endless stream of training batches ([b, T+1]; b may vary, and be 0 under Poisson)."""
        while True:
            for (batch,) in self.loader:
                yield batch

    @abstractmethod
    def step(self, batch: torch.Tensor) -> StepStats:
        """One optimizer step on ``batch``."""

    @property
    @abstractmethod
    def module(self) -> nn.Module:
        """The module being trained (possibly wrapped by Opacus)."""

    def plain_model(self) -> GRULanguageModel:
        """A fused nn.GRU copy of the current weights, for fast evaluation and generation."""
        copy = GRULanguageModel(self.setup.model_config).to(self.device)
        state = plain_state_dict(self.module)
        # DPGRU's state dict carries nn.GRU's names *and* its cells' aliases; keep the former.
        copy.load_state_dict({key: state[key] for key in copy.state_dict()})
        copy.eval()
        return copy

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        if self.setup.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.setup.lr, momentum=0.9)
        return torch.optim.Adam(params, lr=self.setup.lr)

    def batch_loss(self, module: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of each sequence's mean token loss, from a zero hidden state."""
        batch = batch.to(self.device, non_blocking=True)
        logits, _ = module(batch[:, :-1])
        return sequence_losses(logits, batch[:, 1:], self.setup.pad_id).mean()


def build_engine(mechanism: str, engine: str, setup: EngineSetup) -> Engine:
    """The engine for a mechanism ("gaussian", "laplace", "naive", "none") and engine choice."""
    if mechanism == "none":
        from dpcore.privacy.engines.nonprivate import NonPrivateEngine

        return NonPrivateEngine(setup)
    if mechanism == "naive":
        from dpcore.privacy.engines.nonprivate import NaiveNoiseEngine

        return NaiveNoiseEngine(setup)
    if mechanism == "gaussian":
        if engine == "fast":
            from dpcore.privacy.engines.fast_gaussian import FastGaussianEngine

            return FastGaussianEngine(setup)
        from dpcore.privacy.engines.opacus_gaussian import OpacusGaussianEngine

        return OpacusGaussianEngine(setup)
    if mechanism == "laplace":
        from dpcore.privacy.engines.opacus_laplace import OpacusLaplaceEngine

        return OpacusLaplaceEngine(setup)
    raise ValueError(f"unknown mechanism {mechanism!r}")

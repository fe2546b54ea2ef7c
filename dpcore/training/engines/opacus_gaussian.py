"""Gaussian DP-SGD through Opacus: the reference implementation.

The pieces are assembled by hand (as PrivacyEngine.make_private would) so that accounting stays
ours (RDP, PRV or PLD from the run's history) and the optimizer can report clipping
diagnostics. Order matters and is kept: DPGRU swapped in *before* the optimizer is built; a plain
Poisson loader at q = 1/ceil(N/B) (:meth:`~dpcore.training.engines.base.Engine.poisson_loader`).
"""

from __future__ import annotations

import warnings

import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer
from opacus.optimizers.optimizer import _check_processed_flag, _mark_as_processed

from dpcore.privacy.noise import NoiseSource
from dpcore.training.engines.base import Engine, EngineSetup, StepStats, split_noise
from dpcore.training.model import to_dp_layers

# Opacus's full backward hooks fire on the first layer, whose input (token ids) needs no gradient;
# torch warns about it on every step. The per-sample gradients are unaffected.
warnings.filterwarnings("ignore", message="Full backward hook is firing when gradients are computed")


def per_sample_l2_norms(grad_samples: list[torch.Tensor]) -> torch.Tensor:
    """The flat L2 norm of each example's whole gradient (what DPOptimizer clips)."""
    per_param = [g.reshape(len(g), -1).norm(2, dim=-1) for g in grad_samples]
    return torch.stack(per_param, dim=1).norm(2, dim=1)


def group_grad_samples(params: list[torch.nn.Parameter], groups: torch.Tensor) -> None:
    """Replace each parameter's per-example gradients [b, ...] by per-user MEANS [U, ...] in place.

    User-level DP-SGD clips a user's contribution (the mean of their rows' gradients) as a whole;
    after this, Opacus's per-"sample" clipping, noise and scaling act on users unchanged.
    """
    num_users = int(groups.max()) + 1 if len(groups) else 0
    counts = torch.bincount(groups, minlength=num_users) if len(groups) else torch.zeros(0, dtype=torch.long)
    for p in params:
        gs = p.grad_sample
        g = groups.to(gs.device)
        inv = (1.0 / counts.to(gs.device, gs.dtype))[g].view(-1, *([1] * (gs.dim() - 1)))
        p.grad_sample = gs.new_zeros((num_users,) + tuple(gs.shape[1:])).index_add_(0, g, gs * inv)


class DiagnosticDPOptimizer(DPOptimizer):
    """Opacus's DPOptimizer, unchanged, that also remembers the last per-unit norms.

    With ``groups`` set (each row's user index for the coming step) it clips per user instead of
    per example (:func:`group_grad_samples`).
    """

    last_norms: torch.Tensor | None = None
    groups: torch.Tensor | None = None
    #: Secure noise: the source every noise draw comes from instead of Opacus's torch generator.
    noise_source: NoiseSource | None = None

    def add_noise(self) -> None:
        """Opacus's own noise step, or, with a ``noise_source``, the same N(0, (σC)²) drawn from it."""
        if self.noise_source is None:
            super().add_noise()
            return
        std = self.noise_multiplier * self.max_grad_norm
        for p in self.params:
            _check_processed_flag(p.summed_grad)
            noisy = self.noise_source.add_gaussian(p.summed_grad, std) if std > 0 else p.summed_grad.clone()
            p.grad = noisy.view_as(p)
            _mark_as_processed(p.summed_grad)

    def clip_and_accumulate(self) -> None:
        if self.groups is not None:
            group_grad_samples(self.params, self.groups)
        self.clip_diagnostics()
        super().clip_and_accumulate()

    def clip_diagnostics(self) -> None:
        """Remember the per-unit L2 norms of the current (possibly per-user) gradients."""
        if len(self.grad_samples[0]) == 0:
            self.last_norms = torch.zeros(0)
        else:
            self.last_norms = per_sample_l2_norms(self.grad_samples).detach()


class OpacusGaussianEngine(Engine):
    guarantee = "dp"
    optimizer_class: type[DPOptimizer] = DiagnosticDPOptimizer
    #: Whether a private count of clipped examples is folded into the Gaussian noise (see split_noise).
    private_count: bool = True

    def __init__(self, setup: EngineSetup) -> None:
        super().__init__(setup)
        if setup.noise_multiplier is None or setup.sample_rate is None:
            raise ValueError("DP engines need a noise multiplier and a sample rate")
        dp_model = to_dp_layers(self.model).to(self.device)
        self.gsm = GradSampleModule(dp_model, batch_first=True, loss_reduction="mean")
        self.loader = self.dp_loader()  # sets expected_batch_size (sequences, or users)
        self.grad_noise_multiplier, self.count_noise = setup.noise_multiplier, None
        if self.private_count:
            self.grad_noise_multiplier, self.count_noise = split_noise(setup.noise_multiplier,
                                                                       self.expected_batch_size)
        self.optimizer = self.optimizer_class(
            self.make_optimizer(self.gsm.parameters()),
            noise_multiplier=self.grad_noise_multiplier,
            max_grad_norm=setup.clip,
            expected_batch_size=self.expected_batch_size,
            generator=self._noise_gen,
        )
        if self._noise_gen is None:  # secure noise: Opacus's torch-generator draw is never used
            self.optimizer.noise_source = self.noise

    @property
    def module(self) -> torch.nn.Module:
        return self.gsm

    def step(self, batch: torch.Tensor, groups: torch.Tensor | None = None) -> StepStats:
        self.gsm.train()
        self.optimizer.zero_grad(set_to_none=True)
        self.optimizer.groups = groups
        b = len(batch)
        loss = self.batch_loss(self.gsm, batch)
        if b == 0:
            # An empty Poisson batch: the loss is NaN, but Opacus still needs a backward pass to
            # set (empty) per-sample gradients; noise is added and the step is counted.
            (loss.nan_to_num(0.0) * 0.0).backward()
        else:
            loss.backward()
        self.optimizer.step()
        norms = self.optimizer.last_norms
        empty = b == 0 or norms is None or len(norms) == 0
        clipped = 0 if empty else int((norms > self.setup.clip).sum().item())
        noisy = self.noisy_clip_fraction(clipped)  # drawn on every step, empty batches included
        if empty:
            return StepStats(loss=None, batch_size=0, noisy_frac_clipped=noisy)
        return StepStats(
            loss=float(loss.item()),
            batch_size=len(norms),  # units: sequences, or users
            frac_clipped=clipped / len(norms),
            median_grad_norm=float(norms.median().item()),
            noisy_frac_clipped=noisy,
        )

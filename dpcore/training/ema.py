"""An exponential moving average (EMA) of the weights: DP-SGD's noise, averaged away for free.

Why: every DP-SGD step moves the weights by a fresh Gaussian draw. The signal moves them the same
way for many steps, the noise does not, so an average of the last ~1/(1 − decay) iterates keeps
the first and shrinks the second (De et al. 2022, "Unlocking high-accuracy differentially private
image classification through scale", use it for every DP result).

Why it costs no ε: DP-SGD's accountant composes the noisy update of *every* step, so the whole
sequence of iterates is covered, and any function of that sequence (this average included) is
post-processing. The average uses nothing else: not the data, not the noise, only the iterates
and the step count.

The trainer keeps the engine's own weights for training and evaluates, samples and saves the
average (:class:`WeightAverage`) when ``TrainConfig.ema`` is set.
"""

from __future__ import annotations

import torch
from torch import nn

from dpcore.training.model import GRULanguageModel, ModelConfig

#: The first steps average over fewer iterates (decay_t = min(decay, (1 + t)/(10 + t))), so that the
#: random or public start does not linger in the average of a short run.
WARMUP_OFFSET = 10


def decay_at(decay: float, step: int) -> float:
    """The decay used at ``step`` (1-based): the configured one, lower during the first steps."""
    return min(decay, (1.0 + step) / (WARMUP_OFFSET + step))


class WeightAverage:
    """The EMA of a module's weights under :class:`GRULanguageModel`'s names, on the module's device.

    Works for every engine's module: Opacus's wrapper prefixes ``_module.`` and its DPGRU carries
    cell aliases besides nn.GRU's names; only the plain model's names are kept (as
    :meth:`dpcore.training.engines.base.Engine.plain_model` does).
    """

    def __init__(self, decay: float, module: nn.Module, model_config: ModelConfig) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"the EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.model_config = model_config
        self.names = list(GRULanguageModel(model_config).state_dict())
        self.steps = 0
        self.state = {k: v.detach().clone() for k, v in self._current(module).items()}

    def _current(self, module: nn.Module) -> dict[str, torch.Tensor]:
        state = {}
        for key, value in module.state_dict().items():
            while key.startswith("_module."):
                key = key[len("_module."):]
            state[key] = value
        return {k: state[k] for k in self.names}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """Fold the module's weights after one more step into the average."""
        self.steps += 1
        d = decay_at(self.decay, self.steps)
        for key, value in self._current(module).items():
            avg = self.state[key]
            if avg.is_floating_point():
                avg.mul_(d).add_(value.detach().to(avg.dtype), alpha=1.0 - d)
            else:
                avg.copy_(value)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged weights (CPU copies, nn.GRU names): what the checkpoint stores."""
        return {k: v.detach().cpu().clone() for k, v in self.state.items()}

    def model(self) -> GRULanguageModel:
        """A fused nn.GRU model holding the average, in eval mode, on the average's device."""
        device = next(iter(self.state.values())).device
        copy = GRULanguageModel(self.model_config).to(device)
        copy.load_state_dict(self.state)
        copy.eval()
        return copy

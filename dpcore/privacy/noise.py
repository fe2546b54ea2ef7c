"""Seeded noise samplers.

``torch.distributions.Laplace`` takes no generator, so a seeded Laplace(0, b) sample is built as
b·(E₁ − E₂) from two seeded Exp(1) draws (the difference of two exponentials is Laplace).
Noise here is floating-point noise: the DP guarantee holds for ideal real-valued noise, as with
Opacus's non-secure mode (torchcsprng, needed for secure mode, does not support torch 2.x).
"""

from __future__ import annotations

import torch


def laplace_noise(shape: torch.Size | tuple[int, ...], scale: float, generator: torch.Generator,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """i.i.d. Laplace(0, scale) with the given generator (variance 2·scale²)."""
    e1 = torch.empty(shape, device=device).exponential_(1.0, generator=generator)
    e2 = torch.empty(shape, device=device).exponential_(1.0, generator=generator)
    return scale * (e1 - e2)


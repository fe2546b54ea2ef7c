"""Training engines: one object per way of turning a batch into a parameter update.

* :class:`~dpcore.training.engines.fast_gaussian.FastGaussianEngine` — the default Gaussian DP-SGD:
  the same sampling, clipping and noise, with per-example norms from Gram matrices after one
  backward pass (ghost clipping adapted to the GRU), at close to non-private cost.
* :class:`~dpcore.training.engines.opacus_gaussian.OpacusGaussianEngine` — DP-SGD through Opacus
  (Poisson sampling, per-example L2 clipping, Gaussian noise σ·C): the reference.
* :class:`~dpcore.training.engines.opacus_laplace.OpacusLaplaceEngine` — L1 clipping, Laplace noise.
* :class:`~dpcore.training.engines.nonprivate.NonPrivateEngine` — the honest baseline (fused nn.GRU).
* :class:`~dpcore.training.engines.nonprivate.NaiveNoiseEngine` — the blog post's recipe, kept as a
  labelled counterexample: noise on the batch gradient, no clipping, no guarantee.

:func:`build_engine` picks one from a :class:`~dpcore.config.TrainConfig`.
"""

from __future__ import annotations

from dpcore.training.engines.base import Engine, EngineSetup, StepStats
from dpcore.training.engines.registry import build_engine, engine_class

__all__ = ["Engine", "EngineSetup", "StepStats", "build_engine", "engine_class"]

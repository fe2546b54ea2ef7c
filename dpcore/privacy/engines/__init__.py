"""Training engines: one object per way of turning a batch into a parameter update.

* :class:`~dpcore.privacy.engines.opacus_gaussian.OpacusGaussianEngine` — DP-SGD through Opacus
  (Poisson sampling, per-example L2 clipping, Gaussian noise σ·C).
* :class:`~dpcore.privacy.engines.nonprivate.NonPrivateEngine` — the honest baseline (fused nn.GRU).
* :class:`~dpcore.privacy.engines.nonprivate.NaiveNoiseEngine` — the blog post's recipe, kept as a
  labelled counterexample: noise on the batch gradient, no clipping, no guarantee.

:func:`build_engine` picks one from a :class:`~dpcore.config.TrainConfig`.
"""

from __future__ import annotations

from dpcore.privacy.engines.base import Engine, EngineSetup, StepStats, build_engine

__all__ = ["Engine", "EngineSetup", "StepStats", "build_engine"]

"""Training a GRU language model: the model, its engines, the loop, and what it produces.

* :mod:`~dpcore.training.model` — the GRU language model and its per-sequence losses.
* :mod:`~dpcore.training.engines` — one object per way of turning a batch into an update (DP-SGD
  Gaussian fast and Opacus, Laplace, the non-private baseline and the naive counterexample).
* :mod:`~dpcore.training.loop` — :func:`~dpcore.training.loop.run_training`, emitting metrics through callbacks.
* :mod:`~dpcore.training.pretrain` — the public model (costs no ε: no private text reaches it).
* :mod:`~dpcore.training.ema`, :mod:`~dpcore.training.checkpoint`, :mod:`~dpcore.training.device` —
  weight averaging (post-processing), saving and loading, and where the tensors live.
* :mod:`~dpcore.training.generate` and :mod:`~dpcore.training.tokenfilter` — text from a model through a
  decoder (:mod:`dpcore.privacy.decoders`), never showing a broken character.
"""

"""Device choice: cuda when available, else mps, else cpu; overridable."""

from __future__ import annotations

import torch

from dpcore.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda was requested but no CUDA GPU is available here; use --device auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device mps was requested but Apple's MPS backend is not available here")
    if name not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device must be auto, cpu, cuda or mps; got {name!r}")
    return torch.device(name)

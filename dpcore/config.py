"""The one description of a training run, shared by the CLI, the worker and the dashboard.

A :class:`TrainConfig` is plain data (JSON round-trips through :meth:`to_dict` /
:meth:`from_dict`), so a run can be stored, put in a URL and reproduced. :meth:`validate`
checks everything that can be checked before the corpus is loaded; :func:`check_delta`
checks δ against the number of training examples once it is known.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from dpcore.errors import ConfigError

MECHANISMS = ("gaussian", "laplace", "naive", "none")
ACCOUNTANTS = ("rdp", "prv", "pld")
ENGINES = ("opacus", "fast")
DEVICES = ("auto", "cpu", "cuda", "mps")
TOKENIZERS = ("char", "word")
OPTIMIZERS = ("adam", "sgd")

#: Mechanisms that carry a DP guarantee (an ε computed by an accountant).
PRIVATE_MECHANISMS = ("gaussian", "laplace")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run. The same config and seed give the same curve on CPU."""

    # data
    corpus: str = "builtin"
    text_column: str | None = None
    user_column: str | None = None
    tokenizer: str = "char"
    max_vocab: int = 2000
    seq_len: int = 32
    val_fraction: float = 0.1
    # privacy
    mechanism: str = "gaussian"
    epsilon: float | None = 8.0
    delta: float | None = None  # None: a default well below 1/N, see default_delta
    clip: float = 1.0
    noise_multiplier: float | None = None  # set to skip calibration (ε is still accounted)
    accountant: str = "rdp"
    engine: str = "fast"  # Gaussian implementation; Laplace always needs per-example gradients (Opacus)
    naive_sensitivity: float = 1.0  # the naive recipe's *assumed* sensitivity (no guarantee)
    # training
    epochs: float | None = None
    max_steps: int | None = 500
    batch_size: int = 512  # expected batch size B; the sample rate is q = 1/ceil(N/B)
    lr: float = 0.01
    optimizer: str = "adam"
    embed_dim: int = 32
    hidden_size: int = 128
    num_layers: int = 1
    dropout: float = 0.0
    seed: int = 0
    device: str = "auto"
    # monitoring
    eval_every: int = 50
    num_samples: int = 3
    sample_tokens: int = 80
    sample_prompt: str = ""
    sample_temperature: float = 0.8
    # privacy audit (canary exposure + membership inference) once training ends
    audit: bool = False

    # ------------------------------------------------------------------ helpers
    @property
    def is_private(self) -> bool:
        return self.mechanism in PRIVATE_MECHANISMS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown configuration field(s): {', '.join(unknown)}")
        return cls(**data).validate()

    def replace(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)

    # --------------------------------------------------------------- validation
    def validate(self) -> TrainConfig:
        """Raise :class:`ConfigError` with one clear sentence for the first problem found."""
        _choice("mechanism", self.mechanism, MECHANISMS)
        _choice("accountant", self.accountant, ACCOUNTANTS)
        _choice("engine", self.engine, ENGINES)
        _choice("device", self.device, DEVICES)
        _choice("tokenizer", self.tokenizer, TOKENIZERS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.mechanism == "laplace" and self.accountant != "pld":
            raise ConfigError(
                "the Laplace mechanism is accounted with PLD only (Opacus's RDP/PRV accountants "
                "are Gaussian-only): use --accountant pld"
            )
        if self.is_private:
            if self.noise_multiplier is None:
                if self.epsilon is None:
                    raise ConfigError(
                        f"{self.mechanism} training needs a target ε (--epsilon) or a noise multiplier"
                    )
                _positive("ε (epsilon)", self.epsilon)
                if self.epsilon > 1000:
                    raise ConfigError("ε must be at most 1000; above that the guarantee says nothing")
            else:
                _positive("noise multiplier", self.noise_multiplier)
            if self.delta is not None:
                if not (0.0 < self.delta < 1.0) or not math.isfinite(self.delta):
                    raise ConfigError(f"δ (delta) must be between 0 and 1 exclusive, got {self.delta}")
            _positive("clipping norm", self.clip)
        if self.mechanism == "naive":
            _positive("naive sensitivity", self.naive_sensitivity)
            if self.epsilon is not None:
                _positive("ε (epsilon)", self.epsilon)
        if (self.epochs is None) == (self.max_steps is None):
            raise ConfigError("give exactly one of epochs or max steps")
        if self.epochs is not None:
            _positive("epochs", self.epochs)
            if self.epochs > 1000:
                raise ConfigError("epochs must be at most 1000")
        if self.max_steps is not None:
            _int_range("max steps", self.max_steps, 1, 1_000_000)
        _int_range("batch size", self.batch_size, 1, 100_000)
        _positive("learning rate", self.lr)
        _int_range("sequence length", self.seq_len, 4, 1024)
        _int_range("embedding size", self.embed_dim, 1, 4096)
        _int_range("hidden size", self.hidden_size, 1, 4096)
        _int_range("number of GRU layers", self.num_layers, 1, 2)
        _int_range("max vocabulary", self.max_vocab, 10, 50_000)
        _int_range("eval interval", self.eval_every, 1, 1_000_000)
        _int_range("number of samples", self.num_samples, 0, 20)
        _int_range("sample length", self.sample_tokens, 1, 2000)
        if not (0.0 <= self.dropout < 1.0):
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if not (0.0 < self.val_fraction < 0.9):
            raise ConfigError(f"validation fraction must be in (0, 0.9), got {self.val_fraction}")
        _positive("sampling temperature", self.sample_temperature)
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        return self


def default_delta(num_examples: int) -> float:
    """δ well below 1/N: min(1e-5, 1/N^1.1) (see ../shared/dp-correctness.md)."""
    if num_examples <= 1:
        raise ConfigError("need at least two training examples to define δ")
    return min(1e-5, 1.0 / num_examples**1.1)


def check_delta(delta: float, num_examples: int) -> None:
    """Refuse δ ≥ 1/N: such a δ allows leaking one whole example outright."""
    if not (0.0 < delta < 1.0):
        raise ConfigError(f"δ (delta) must be between 0 and 1 exclusive, got {delta}")
    if delta >= 1.0 / num_examples:
        raise ConfigError(
            f"δ = {delta:g} is not below 1/N = {1.0 / num_examples:.3g} (N = {num_examples} "
            f"training examples): the guarantee would allow publishing one example outright; "
            f"use δ ≤ {default_delta(num_examples):.3g}"
        )


def _choice(name: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ConfigError(f"{name} must be one of {', '.join(options)}; got {value!r}")


def _positive(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")


def _int_range(name: str, value: int, lo: int, hi: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not (lo <= value <= hi):
        raise ConfigError(f"{name} must be a whole number from {lo} to {hi}, got {value!r}")

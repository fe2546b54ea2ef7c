"""What one server lets each visitor use: runs at once, queue length, time, steps, memory, disk.

A workshop server is shared by a room full of people, so every resource a visitor can ask for has a
cap, read once from environment variables (:meth:`ServerLimits.from_env`). The defaults suit a
2-core, 24 GB machine serving a workshop (one run at a time, see ``DPCORE_MAX_CONCURRENT``):

=============================== ======= ==================================================================
variable                        default meaning
=============================== ======= ==================================================================
``DPCORE_MAX_ACTIVE_PER_OWNER`` 1       runs of one owner running at once (others of theirs wait, even
                                        when a slot is free: a newcomer's first run starts next)
``DPCORE_MAX_QUEUED_PER_OWNER`` 4       runs of one owner waiting in the queue, beyond the running ones
                                        (4: the four workshop presets launched together)
``DPCORE_MAX_RUN_SECONDS``      1200    wall time of one run; past it the run is stopped (SIGTERM, then
                                        SIGKILL after the grace period) and fails, its metrics kept
``DPCORE_MAX_TOTAL_STEPS``      10000   optimizer steps of one run, whether given as steps or epochs
                                        (the default run has 500; a preset 300)
``DPCORE_RUN_MEMORY_MB``        4096    memory of one worker: a config whose estimate exceeds it is
                                        refused before launch; the worker's address space is capped
                                        (``RLIMIT_AS``) so a wrong estimate ends one run, not the server
``DPCORE_DISK_QUOTA_MB``        200     disk per owner: uploads (20 MB each at most) plus run folders
``DPCORE_RETENTION_DAYS``       7       finished, failed and cancelled runs older than this are deleted
                                        (0 keeps them forever)
``DPCORE_STALE_AFTER_S``        60      a run whose worker sent no heartbeat for this long (it beats
                                        every 2 s) is killed and fails: stopped, hung or on a lost host
=============================== ======= ==================================================================

A value of 0 turns a cap off (except the stale limit). No torch and no streamlit here: the New run
preview calls :func:`estimate_run_memory` and :func:`check_launch` on every rerun.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from dpcore.errors import DPCoreError
from dpcore.privacy.registry import Guarantee, mechanism_of

#: The ε budget for private decoding of one model when its owner has not set one, over all texts and
#: viewers together. It was 20, which cannot buy one readable text: private prediction pays for every
#: token, and readable text needs ε ≈ 8 per character (measured, ``bench/decoding_points.py``), so the
#: Samples page's "readable" point (``dpcore.privacy.decoders.READABLE``: 16 characters) costs up to 128 for
#: ONE text. 160 affords exactly one such text (a newcomer sees the trade-off at its true price, and
#: that ε = 128 is a promise in name only), then 32 texts at the "private" point (ε ≤ 1 each), and
#: never a second readable one: more is a choice the owner makes and sees (``set_inference_budget``);
#: an owner who wants private decoding to mean something sets it low (e.g. 8, the training ε).
DEFAULT_INFERENCE_BUDGET = 160.0

MiB = 2**20
GiB = 2**30
#: Resident memory of a worker before its run allocates anything: Python, torch, dpcore and a
#: corpus. Measured: 336 MiB after ``import torch, dpcore.training.loop`` (torch 2.x CPU, one thread).
BASE_BYTES = 420 * MiB
#: Address space that torch maps but never touches (shared libraries, reserved arenas): measured
#: VmPeak - VmHWM = 450-540 MiB on short real runs. Added on top of the memory cap in ``RLIMIT_AS``.
ADDRESS_SPACE_SLACK = 1 * GiB
#: The worker's ``RLIMIT_AS`` is min(budget, SAFETY_FACTOR × estimate) + ADDRESS_SPACE_SLACK.
SAFETY_FACTOR = 2.0
#: The ε that everyone but a model's owner may spend together on private decoding of a model without
#: a DP guarantee trained on an upload (``dpcore.runs.access``), unless the owner raised it. 8 is the
#: training ε of a default run: strangers learn about the owner's text at most what a default DP run
#: would let anyone learn. It buys eight texts at the "private" point (ε ≤ 1 each) and no text at the
#: "readable" one (ε ≤ 128), whose promise is one in name only.
DEFAULT_STRANGER_BUDGET = 8.0
#: Vocabulary of a character model: UTF-8 bytes plus the three special tokens (uploads); the
#: built-in corpus's alphabet is smaller, so this is an upper bound for both.
CHAR_VOCAB = 259

_ENV = {
    "max_active_per_owner": "DPCORE_MAX_ACTIVE_PER_OWNER",
    "max_queued_per_owner": "DPCORE_MAX_QUEUED_PER_OWNER",
    "max_run_seconds": "DPCORE_MAX_RUN_SECONDS",
    "max_total_steps": "DPCORE_MAX_TOTAL_STEPS",
    "run_memory_mb": "DPCORE_RUN_MEMORY_MB",
    "disk_quota_mb": "DPCORE_DISK_QUOTA_MB",
    "retention_days": "DPCORE_RETENTION_DAYS",
    "stale_after_s": "DPCORE_STALE_AFTER_S",
}


@dataclass(frozen=True)
class ServerLimits:
    """The server's caps (see the module docstring for the variables and their defaults)."""

    max_active_per_owner: int = 1
    max_queued_per_owner: int = 4
    max_run_seconds: float = 1200.0
    max_total_steps: int = 10_000
    run_memory_mb: int = 4096
    disk_quota_mb: float = 200.0
    retention_days: float = 7.0
    stale_after_s: float = 60.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerLimits:
        """The limits from ``environ`` (default ``os.environ``); unset or empty variables keep the default."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(_ENV[f.name], "").strip()
            if not raw:
                continue
            kind = int if f.type in ("int", int) else float
            try:
                value = kind(raw)
            except ValueError:
                value = -1
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise DPCoreError(f"{_ENV[f.name]} must be a number ≥ 0, got {raw!r}")
            values[f.name] = value
        limits = cls(**values)
        if limits.max_active_per_owner < 1:
            raise DPCoreError("DPCORE_MAX_ACTIVE_PER_OWNER must be at least 1")
        if limits.stale_after_s <= 0:
            raise DPCoreError("DPCORE_STALE_AFTER_S must be a positive number of seconds")
        return limits

    def to_env(self) -> dict[str, str]:
        """The variables that reproduce these limits (the executor passes them to its workers)."""
        return {_ENV[f.name]: str(getattr(self, f.name)) for f in fields(self)}

    @property
    def max_runs_per_owner(self) -> int:
        """Runs one owner may have queued or running at once."""
        return self.max_active_per_owner + self.max_queued_per_owner

    @property
    def disk_quota_bytes(self) -> int | None:
        return None if not self.disk_quota_mb else int(self.disk_quota_mb * MiB)

    @property
    def run_memory_bytes(self) -> int | None:
        return None if not self.run_memory_mb else int(self.run_memory_mb * MiB)


def _max_batch(batch_size: int) -> int:
    """A Poisson batch of expectation B exceeds B + 4√B + 2 with probability < 10⁻⁴ per step."""
    return int(batch_size + 4 * math.sqrt(batch_size) + 2)


def num_parameters(*, vocab_size: int, embed_dim: int, hidden_size: int, num_layers: int) -> int:
    """Parameters of the model: embedding, GRU layers (weights and both biases), output head."""
    gru = sum(3 * hidden_size * ((embed_dim if layer == 0 else hidden_size) + hidden_size) + 6 * hidden_size
              for layer in range(num_layers))
    return vocab_size * embed_dim + gru + hidden_size * vocab_size + vocab_size


def estimate_run_memory(
    *,
    vocab_size: int,
    embed_dim: int,
    hidden_size: int,
    num_layers: int,
    seq_len: int,
    batch_size: int,
    mechanism: str,
    engine: str,
    user_cap: int = 1,
) -> int:
    """An upper estimate of a worker's peak resident memory in bytes (float32 throughout).

    * the process itself (:data:`BASE_BYTES`);
    * parameters × 6: weights, gradient, Adam's two moments, the noise and the clipped sum;
    * activations kept for the backward pass, per token of the largest likely Poisson batch:
      embedding, GRU gates and states with their gradients (12 H per layer), and the output
      layer's logits, log-probabilities and their gradients (4 V);
    * the engine's per-example state: Opacus (Gaussian with ``engine="opacus"``, and Laplace)
      materialises every example's gradient (B × parameters, and half as much again while clipping)
      and its DPGRU keeps every time step's gate inputs and outputs (20 H per token); the fast engine
      keeps Gram matrices [B, T, T] (two per weight matrix: inputs and output gradients) plus its
      8 MiB materialisation chunk.
    * user-level (``user_cap`` = k > 1): a batch of B users holds up to k·B sequences, and the fast
      engine regroups each step's tensors per user (a second copy) with Grams of (k·T)² per user.

    Measured against the peak RSS of ``python -m dpcore train --max-steps 3`` (one thread, CPU),
    the estimate was 1.0-1.8 times the real peak (see the table in tests/runs/test_limits.py).
    """
    v, e, h, layers, t = int(vocab_size), int(embed_dim), int(hidden_size), int(num_layers), int(seq_len)
    k = max(1, int(user_cap))
    units = _max_batch(int(batch_size))  # users (user-level) or sequences
    b = units * k  # sequences
    params = num_parameters(vocab_size=v, embed_dim=e, hidden_size=h, num_layers=layers)
    total = BASE_BYTES + 6 * 4 * params
    total += 4 * b * t * (2 * e + 12 * h * layers + 4 * v)
    mech = mechanism_of(mechanism)
    chosen = engine if engine in mech.engines else next(iter(mech.engines))  # the engine that will train it
    private = mech.guarantee is Guarantee.DP
    if private and chosen == "opacus":  # Opacus's per-sample gradients (Gaussian on Opacus, Laplace)
        total += 6 * b * params  # the per-example gradients, plus half again for clipping them in chunks
        total += 4 * b * t * (e + 20 * h * layers)  # DPGRU's per-step hooks: each step's gate inputs and outputs
    elif private and chosen == "fast":  # the fast engine
        maps = 2 + 2 * layers  # embedding, head, and the input and recurrent maps of each layer
        total += 2 * maps * 4 * units * (k * t) ** 2 + 8 * MiB
        if k > 1:  # the per-user copies of every map's inputs and output gradients
            total += 4 * b * t * (2 * e + 12 * h * layers + 4 * v)
    return int(total)


def config_vocab_size(config: Any) -> int:
    """The largest vocabulary a config can get: 259 bytes for characters, ``max_vocab`` for words."""
    return CHAR_VOCAB if config.tokenizer == "char" else int(config.max_vocab)


def estimate_config_memory(config: Any) -> int:
    """:func:`estimate_run_memory` for a :class:`~dpcore.config.TrainConfig`."""
    return estimate_run_memory(
        vocab_size=config_vocab_size(config), embed_dim=config.embed_dim, hidden_size=config.hidden_size,
        num_layers=config.num_layers, seq_len=config.seq_len, batch_size=config.batch_size,
        mechanism=config.mechanism, engine=config.engine,
        user_cap=config.user_cap if getattr(config, "user_level", False) else 1,
    )


def planned_steps(config: Any, num_examples: int | None = None) -> int | None:
    """The run's optimizer steps: ``max_steps``, or epochs × ⌈N/B⌉ (None if N is not known yet).

    N counts the privacy units the batches sample: users for a user-level run, else sequences.
    """
    if config.max_steps is not None:
        return int(config.max_steps)
    if config.epochs is None or not num_examples:
        return None
    return max(1, int(round(config.epochs * math.ceil(num_examples / config.batch_size))))


def check_steps(steps: int | None, limits: ServerLimits) -> None:
    """Refuse a run of more steps than the server allows (one sentence)."""
    if steps is not None and limits.max_total_steps and steps > limits.max_total_steps:
        raise DPCoreError(
            f"this run would take {steps:,} optimizer steps; this server allows at most "
            f"{limits.max_total_steps:,} per run: lower the steps or epochs, or raise the batch size"
        )


def memory_limit_bytes(estimate: int, limits: ServerLimits) -> int:
    """The worker's ``RLIMIT_AS``: min(budget, SAFETY_FACTOR × estimate) + ADDRESS_SPACE_SLACK."""
    cap = int(SAFETY_FACTOR * estimate)
    if limits.run_memory_bytes is not None:
        cap = min(cap, limits.run_memory_bytes)
    return cap + ADDRESS_SPACE_SLACK


def check_launch(config: Any, *, num_examples: int | None = None, limits: ServerLimits | None = None) -> int:
    """Raise :class:`DPCoreError` (one sentence) if ``config`` exceeds the steps or memory budget.

    ``num_examples`` (N: training users for a user-level run, else sequences) turns epochs into
    steps; without it an epochs-based run is checked by its worker once the data is loaded. Returns
    the memory estimate in bytes.
    """
    limits = limits or ServerLimits.from_env()
    check_steps(planned_steps(config, num_examples), limits)
    estimate = estimate_config_memory(config)
    budget = limits.run_memory_bytes
    if budget is not None and estimate > budget:
        raise DPCoreError(
            f"this run would need about {_size(estimate)} of memory (hidden size {config.hidden_size}, "
            f"vocabulary {config_vocab_size(config):,}, windows of {config.seq_len}, batch "
            f"{config.batch_size}); this server allows {_size(budget)} per run: lower the batch size, "
            f"sequence length, hidden size or vocabulary"
        )
    return estimate


def _size(n: float) -> str:
    return f"{n / GiB:.1f} GB" if n >= GiB else f"{n / MiB:.0f} MB"

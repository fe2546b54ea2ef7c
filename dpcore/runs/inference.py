"""Text from a stored run's model, in the dashboard process: plain samples and private decoding.

Every text goes through :func:`dpcore.runs.access.text_access` first, with the viewer who asks:
text without a guarantee from a non-private model trained on an upload is for its owner only
(:class:`~dpcore.errors.TextRefused` for anyone else), and everyone else's private decoding of such
a model is also capped by its stranger budget, in the same ledger transaction as the charge.

Loading a checkpoint needs torch, so this lives in the runs room, not in the torch-free views.
Plain sampling is post-processing of the model and takes a visible seed; a private decoder draws
secret randomness and is charged to the model's inference ledger in the run store before it
decodes (:meth:`dpcore.runs.store.RunStore.charge_inference`). An operating point
(:data:`dpcore.privacy.decoders.OPERATING_POINTS`) becomes a decoder per model (:func:`decode_point`). Every
decoder here keeps U+FFFD out of the text (:class:`dpcore.training.tokenfilter.TokenFilter`).
"""

from __future__ import annotations

import functools
import os
from dataclasses import replace
from typing import Any

from dpcore.data.tokenizer import UNK_ID
from dpcore.errors import CheckpointError, DPCoreError
from dpcore.privacy.composition import LedgerSummary, ledger_summary, text_guarantee
from dpcore.privacy.decoders import DecoderSpec, OperatingPoint
from dpcore.runs.access import StrangerBudget, TextAccess, text_access
from dpcore.runs.store import Run, RunStore
from dpcore.training.checkpoint import load_checkpoint
from dpcore.training.generate import decode, sample_texts
from dpcore.training.result import RunResult

#: The longest prompt a visitor may send (characters): generation runs in the dashboard process.
MAX_PROMPT_CHARS = 500


def check_prompt(prompt: str) -> str:
    """The prompt, or a DPCoreError when it is longer than :data:`MAX_PROMPT_CHARS`."""
    if len(prompt) > MAX_PROMPT_CHARS:
        raise DPCoreError(f"the prompt is {len(prompt):,} characters long; the limit is {MAX_PROMPT_CHARS}")
    return prompt


@functools.lru_cache(maxsize=8)
def _checkpoint(path: str, version: tuple[int, int]) -> Any:
    del version  # cache key only
    return load_checkpoint(path)


def load_run_checkpoint(store: RunStore, run: Run) -> Any:
    """The run's final checkpoint (cached per file version); CheckpointError if it has none."""
    path = store.artifacts(run.id).get("checkpoint")
    if path is None:
        raise CheckpointError(f"run {run.id} has no checkpoint yet (status: {run.status})")
    try:
        st = os.stat(path)
    except OSError:
        raise CheckpointError(f"the checkpoint of run {run.id} is missing from the data folder") from None
    return _checkpoint(path, (st.st_mtime_ns, st.st_size))


def check_access(store: RunStore, run: Run, viewer: str | None, spec: Any) -> tuple[Run, TextAccess]:
    """The run as stored now and how ``viewer`` may read ``spec``'s text from it (or TextRefused).

    The rule reads the stored row, not the caller's copy, so a stale or hand-made ``Run`` cannot
    move a model out of its owner's hands.
    """
    fresh = store.get_run(run.id)
    return fresh, text_access(fresh, viewer, spec)


def generate_samples(store: RunStore, run: Run, prompt: str, *, viewer: str | None, n: int = 3,
                     max_tokens: int = 80, temperature: float = 0.8, seed: int = 0) -> list[str]:
    """``n`` plain continuations of ``prompt`` from the run's final model, seeded (same seed, same draws).

    Plain sampling claims no ε of its own (post-processing of the model), so a visible seed costs
    nothing; private decoders go through :func:`decode_text`, which ignores a seed for them.
    ``viewer`` (an owner key; None: unknown) is checked first: plain text of an owner-only model is
    refused to anyone but its owner.
    """
    check_prompt(prompt)
    run, _ = check_access(store, run, viewer, DecoderSpec("plain"))
    ckpt = load_run_checkpoint(store, run)
    return sample_texts(ckpt.model, ckpt.tokenizer, prompt, n=n, max_tokens=max_tokens,
                        temperature=temperature, seed=seed)


def unknown_prompt_chars(store: RunStore, run: Run, prompt: str) -> str:
    """Characters of ``prompt`` outside the run's vocabulary (they become UNK), as a string."""
    ckpt = load_run_checkpoint(store, run)
    tok = ckpt.tokenizer
    prompt = check_prompt(prompt)
    if tok.kind != "char":
        return ""
    return "".join(sorted({c for c in prompt if tok.encode(c) == [UNK_ID]}))


def decode_text(store: RunStore, run: Run, prompt: str, spec: Any, *, viewer: str | None,
                max_tokens: int = 80, seed: int = 0, delta_prime: float = 1e-6) -> tuple[Any, Any]:
    """(DecodedText, TextGuarantee) of one continuation of ``prompt`` from the run's final model.

    First :func:`dpcore.runs.access.text_access`: plain and naive-logits text of an owner-only model
    is refused (:class:`~dpcore.errors.TextRefused`) to anyone but its owner, whatever path asks.
    A private decoder (``spec.has_guarantee``) spends the model's inference ledger: before
    decoding, ``viewer`` is charged the most the text may spend (``max_tokens`` × ε per token) in one
    atomic check-and-record (:class:`dpcore.runs.store.InferenceBudgetExceeded` past the budget: nothing
    is decoded; :class:`dpcore.runs.store.StrangerBudgetExceeded` past what everyone but the owner
    may spend on an owner-only model), then the charge is settled down to the tokens actually drawn
    (an interrupted decode keeps the full charge: conservative). Its randomness is secret; ``seed``
    applies to ``plain`` and ``naive-logits`` only.
    """
    check_prompt(prompt)
    spec.validate()
    run, _ = check_access(store, run, viewer, spec)
    ckpt = load_run_checkpoint(store, run)
    entry = None
    if spec.has_guarantee:
        if viewer is None:
            raise DPCoreError("private decoding is charged to a viewer: pass viewer=<owner key>")
        eps0 = spec.epsilon_per_token(ckpt.tokenizer.vocab_size)
        entry = store.charge_inference(run.id, viewer, spec.name, eps0, int(max_tokens)).charged
    out = decode(ckpt.model, ckpt.tokenizer, prompt, spec, max_tokens=max_tokens, seed=seed,
                 delta_prime=delta_prime)
    if entry is not None:
        store.settle_inference(entry.id, out.picks)
    result = run.result or RunResult.empty()
    if run.guarantee != "dp":  # only a DP guarantee may be borrowed by the text
        result = replace(result, epsilon=None)
    return out, text_guarantee(out, spec, result)


def point_spec(store: RunStore, run: Run, point: OperatingPoint) -> DecoderSpec:
    """The decoder that ``point`` means for this run's model (λ from its vocabulary size)."""
    return point.spec(load_run_checkpoint(store, run).tokenizer.vocab_size)


def epsilon_per_text(store: RunStore, run: Run, spec: DecoderSpec, max_tokens: int) -> float | None:
    """The most one text of ``max_tokens`` tokens from this run's model may spend with ``spec``
    (what the ledger is charged before decoding); None when the decoder claims no ε of its own."""
    eps0 = spec.epsilon_per_token(load_run_checkpoint(store, run).tokenizer.vocab_size)
    return None if eps0 is None or not spec.has_guarantee else eps0 * int(max_tokens)


def decode_point(store: RunStore, run: Run, prompt: str, point: OperatingPoint, *, viewer: str,
                 delta_prime: float = 1e-6) -> tuple[Any, Any]:
    """One text at an operating point: :func:`decode_text` with its decoder and its length.

    The ledger is charged ``point.max_tokens`` × the decoder's ε per token (at most
    ``point.epsilon_per_text``) before decoding, and settled to the tokens drawn: what the text shows
    as its ε is exactly what stays on the ledger.
    """
    return decode_text(store, run, prompt, point_spec(store, run, point), viewer=viewer,
                       max_tokens=point.max_tokens, delta_prime=delta_prime)


def ledger(store: RunStore, run: Run, delta_prime: float | None = None) -> LedgerSummary:
    """The model's inference ledger as its basic-composition statement (δ = 0) and totals.

    ``delta_prime`` is no longer used: the ledger shows no advanced-composition figure, which does not
    hold for texts chosen adaptively (see :mod:`dpcore.privacy.composition`); callers may stop passing it.
    """
    del delta_prime
    return ledger_summary(store.ledger(run.id))


def stranger_budget(store: RunStore, run: Run) -> StrangerBudget | None:
    """What everyone but the owner has spent on and may spend on this model; None if the cap does not apply."""
    return store.ledger(run.id).strangers

"""Canary exposure: the "secret sharer" test (Carlini et al., USENIX Security 2019).

A canary is a secret planted k times, e.g. ``"Dana Whitfield's PIN is 4 9 1 7"``. The attacker knows
the prefix and the secret's format but not the secret. They score every candidate secret of that
format under the model and guess in order of likelihood. The true secret's *rank* is how many
guesses they need, and

    exposure = log2(number of candidates) − log2(rank)

is how many bits the model gave away: 0 when the model ranks the secret like a random candidate,
log2(candidates) (13.3 bits for a 4-digit PIN) when it ranks it first.

Scoring matches how the canary was trained (see :mod:`dpcore.data.dataset`): each planted copy is
its own training window, ``[EOS] + prefix + secret + [EOS]``, starting from a zero hidden state at
that leading EOS (every record's window starts with EOS), so ``[EOS] + prefix`` is run once from a
zero state and every candidate is scored from the hidden state it leaves
(all candidates share it, so 10^4 candidates cost a few batched GRU calls). The score is the
log-perplexity of the secret's tokens (separators included); the prefix's own tokens are common to
all candidates and cannot change the rank. If a short ``seq_len`` cut a canary window in two, the
model never saw the whole prefix as context: the exposure then measures memorisation of the part
it could see, under a context it saw only in part.

Ties are counted against the canary (rank = number of candidates scoring at least as well,
itself included), so a model that scores everything alike gets exposure 0, never a lucky maximum.
Spaces of at most :data:`MAX_ENUMERATE` candidates are ranked exactly; larger ones by a random
sample whose log-perplexities are fitted with a skew-normal distribution, whose tail gives the
fraction of candidates that beat the secret (Carlini et al.'s extrapolation).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats

from dpcore.data.corpus import Canary
from dpcore.data.tokenizer import EOS_ID, PAD_ID, Tokenizer
from dpcore.errors import DPCoreError
from dpcore.training.model import GRULanguageModel

#: Candidate spaces up to this size are ranked exactly (10^5 = five digits).
MAX_ENUMERATE = 100_000
#: Candidates drawn when the space is too large to enumerate.
NUM_SAMPLES = 20_000
#: Candidates scored per batched forward pass.
BATCH_SIZE = 4096

NO_CANARIES_MESSAGE = (
    "this corpus has no planted canaries, so there is no secret to measure exposure on; plant one with "
    "dpcore.data.add_canary (a secret inserted k times) or train on the built-in corpus"
)


class NoCanariesError(DPCoreError):
    """The audited corpus has no planted canaries (uploads have none unless the user adds one)."""


@dataclass(frozen=True)
class ExposureResult:
    """Exposure of one canary, with what a dashboard needs to explain it."""

    canary_id: str
    prefix: str
    secret: str
    insertions: int
    candidates: int  # size of the candidate space, len(alphabet) ** length
    method: str  # "exact" (all candidates ranked) or "sampled" (skew-normal extrapolation)
    num_scored: int  # candidates actually scored
    log_perplexity: float  # of the secret's tokens given the prefix, in bits
    rank: float  # 1 = the model's first guess; estimated when sampled
    exposure: float  # bits, in [0, max_exposure]
    max_exposure: float  # log2(candidates)
    plain: str  # the exposure in words

    @property
    def guess_bits(self) -> float:
        """log2 of the number of guesses the model's ranking needs (= max_exposure − exposure)."""
        return self.max_exposure - self.exposure

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "guess_bits": self.guess_bits}


# ------------------------------------------------------------------------------ candidates
def secret_symbols(canary: Canary) -> list[str]:
    """The canary's secret as its list of symbols (``"4 9 1 7"`` → ``["4", "9", "1", "7"]``)."""
    return canary.secret.split(canary.separator) if canary.separator else list(canary.secret)


def _enumerate(canary: Canary) -> tuple[list[tuple[str, ...]], int]:
    """All candidates in lexicographic alphabet order and the index of the true secret among them."""
    cands = list(itertools.product(canary.alphabet, repeat=canary.length))
    base = len(canary.alphabet)
    index = 0
    for sym in secret_symbols(canary):
        index = index * base + canary.alphabet.index(sym)
    return cands, index


def _sample(canary: Canary, n: int, rng: np.random.Generator) -> list[tuple[str, ...]]:
    """``n`` candidates drawn uniformly (with replacement) from the whole space."""
    picks = rng.integers(0, len(canary.alphabet), size=(n, canary.length))
    return [tuple(canary.alphabet[i] for i in row) for row in picks]


def encode_candidates(tokenizer: Tokenizer, canary: Canary,
                      candidates: Sequence[Sequence[str]]) -> tuple[list[int], torch.Tensor]:
    """(context ids ``[EOS] + prefix``, PAD-padded candidate-suffix ids ``[n, L]``).

    The context starts with EOS because every record's training window does (``[EOS] + record + [EOS]``):
    it is what the model saw from its zero hidden state before the prefix. Each candidate is encoded
    as part of the full record text so the word tokenizer splits it as it split the planted copy; the
    prefix's tokens must come out unchanged, or the candidate would not continue the same context.
    """
    prefix_ids = tokenizer.encode(canary.prefix)
    n_prefix = len(prefix_ids)
    if n_prefix == 0:
        raise DPCoreError(f"canary {canary.id}'s prefix encodes to no tokens; it gives the model no context")
    rows: list[list[int]] = []
    for symbols in candidates:
        ids = tokenizer.encode(canary.prefix + canary.format_secret(symbols))
        if ids[:n_prefix] != prefix_ids or len(ids) == n_prefix:
            raise DPCoreError(
                f"canary {canary.id}'s secret does not tokenize apart from its prefix under the "
                f"{tokenizer.kind} tokenizer; end the prefix with a space or punctuation"
            )
        rows.append(ids[n_prefix:])
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), PAD_ID, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return [EOS_ID, *prefix_ids], out


# ------------------------------------------------------------------------------- scoring
@torch.no_grad()
def score_candidates(model: GRULanguageModel, prefix_ids: Sequence[int], suffixes: torch.Tensor,
                     batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Log-perplexity in bits, −Σ log2 p(suffix token | prefix, earlier tokens), of each row of ``suffixes``.

    ``prefix_ids`` is the whole context as :func:`encode_candidates` returns it (``[EOS] + prefix``, the
    way a record's window starts); it runs once from a zero hidden state, and every batch of
    candidates continues from the hidden state it leaves. PAD positions (candidates of unequal token
    length) do not count.
    """
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        prefix = torch.tensor([list(prefix_ids)], dtype=torch.long, device=device)
        logits, hidden = model(prefix)
        first = torch.log_softmax(logits[0, -1].double(), dim=-1)
        out = np.empty(len(suffixes), dtype=np.float64)
        for start in range(0, len(suffixes), batch_size):
            batch = suffixes[start : start + batch_size].to(device)
            mask = (batch != PAD_ID).double()
            nll = -first[batch[:, 0]]
            if batch.shape[1] > 1:
                h = hidden.expand(-1, len(batch), -1).contiguous()
                step_logits, _ = model(batch[:, :-1], h)
                logp = torch.log_softmax(step_logits.double(), dim=-1)
                tok = logp.gather(-1, batch[:, 1:, None]).squeeze(-1)
                nll = nll - (tok * mask[:, 1:]).sum(dim=1)
            out[start : start + len(batch)] = (nll / math.log(2)).cpu().numpy()
        return out
    finally:
        model.train(was_training)


def exact_rank(scores: np.ndarray, true_index: int) -> int:
    """Rank of ``scores[true_index]`` among all scores (lower log-perplexity is better), ties against it."""
    return int(np.count_nonzero(scores <= scores[true_index]))


def extrapolated_fraction(sample_scores: np.ndarray, true_score: float) -> float:
    """log2 of the fraction of all candidates scoring at most ``true_score``, from a skew-normal fit.

    Carlini et al. fit the distribution of sampled log-perplexities and read the secret's
    percentile in its tail, which a sample of 10^4 cannot resolve for spaces of 10^9 or more.
    Without spread to fit (a model that scores every candidate alike) it falls back to the
    sample's own fraction, ties counted against the secret.
    """
    empirical = (np.count_nonzero(sample_scores <= true_score) + 1) / (len(sample_scores) + 1)
    if np.ptp(sample_scores) <= 1e-9 * max(1.0, abs(float(np.mean(sample_scores)))):
        return math.log2(1.0 if true_score >= np.min(sample_scores) else empirical)
    a, loc, scale = stats.skewnorm.fit(sample_scores)
    log2_frac = float(stats.skewnorm.logcdf(true_score, a, loc, scale)) / math.log(2)
    return math.log2(empirical) if math.isnan(log2_frac) else log2_frac  # a failed fit: the sample's own


def canary_exposure(model: GRULanguageModel, tokenizer: Tokenizer, canary: Canary, *,
                    max_enumerate: int = MAX_ENUMERATE, num_samples: int = NUM_SAMPLES, seed: int = 0,
                    batch_size: int = BATCH_SIZE) -> ExposureResult:
    """Exposure of one canary: exact when the space has ≤ ``max_enumerate`` candidates, else sampled."""
    total = canary.candidates_count()
    max_exposure = math.log2(total)
    if total <= max_enumerate:
        cands, true_index = _enumerate(canary)
        prefix_ids, suffixes = encode_candidates(tokenizer, canary, cands)
        scores = score_candidates(model, prefix_ids, suffixes, batch_size)
        rank: float = float(exact_rank(scores, true_index))
        method, scored, true_score = "exact", total, float(scores[true_index])
        exposure = max_exposure - math.log2(rank)
    else:
        rng = np.random.default_rng(seed)
        cands = [*_sample(canary, num_samples, rng), tuple(secret_symbols(canary))]
        prefix_ids, suffixes = encode_candidates(tokenizer, canary, cands)
        scores = score_candidates(model, prefix_ids, suffixes, batch_size)
        sample, true_score = scores[:-1], float(scores[-1])
        log2_frac = extrapolated_fraction(sample, true_score)
        exposure = min(max_exposure, max(0.0, -log2_frac))
        rank = max(1.0, 2.0 ** (max_exposure - exposure))
        method, scored = "sampled", num_samples
    result = ExposureResult(
        canary_id=canary.id, prefix=canary.prefix, secret=canary.secret, insertions=canary.insertions,
        candidates=total, method=method, num_scored=scored, log_perplexity=true_score, rank=rank,
        exposure=exposure, max_exposure=max_exposure, plain="",
    )
    return ExposureResult(**{**asdict(result), "plain": plain_words(result)})


def model_guesses(model: GRULanguageModel, tokenizer: Tokenizer, canary: Canary, k: int,
                  batch_size: int = BATCH_SIZE) -> list[str] | None:
    """The model's own first ``k`` guesses of the secret, likeliest first (ties in alphabet order), or None
    when the space is too large to rank whole. The attack lab's extraction game shows them as the hint."""
    if canary.candidates_count() > MAX_ENUMERATE:
        return None
    cands, _ = _enumerate(canary)
    prefix_ids, suffixes = encode_candidates(tokenizer, canary, cands)
    scores = score_candidates(model, prefix_ids, suffixes, batch_size)
    return [canary.format_secret(cands[i]) for i in np.argsort(scores, kind="stable")[:k]]


def canary_exposures(model: GRULanguageModel, tokenizer: Tokenizer, canaries: Sequence[Canary],
                     **kwargs: Any) -> list[ExposureResult]:
    """Exposure of every canary (keyword arguments as for :func:`canary_exposure`).

    Raises :class:`NoCanariesError` when there are none: a zero-row table would read as "no leak".
    """
    if not canaries:
        raise NoCanariesError(NO_CANARIES_MESSAGE)
    return [canary_exposure(model, tokenizer, c, **kwargs) for c in canaries]


# ------------------------------------------------------------------------------ summaries
def exposure_by_insertions(results: Sequence[ExposureResult]) -> list[dict[str, Any]]:
    """Exposure grouped by how often the canary was planted: the dose-response curve of memorisation."""
    groups: dict[int, list[ExposureResult]] = {}
    for r in results:
        groups.setdefault(r.insertions, []).append(r)
    out = []
    for k in sorted(groups):
        xs = [r.exposure for r in groups[k]]
        out.append({
            "insertions": k,
            "num_canaries": len(xs),
            "mean_exposure": float(np.mean(xs)),
            "min_exposure": float(np.min(xs)),
            "max_exposure": float(np.max(xs)),
            "max_possible": max(r.max_exposure for r in groups[k]),
            "canary_ids": [r.canary_id for r in groups[k]],
        })
    return out


def plain_words(result: ExposureResult) -> str:
    """E.g. "Guessing the secret after “Dana Whitfield's PIN is” with this model would take about 2^1.6 ≈ 3
    tries, against 10,000 possibilities blind (exposure 11.7 of 13.3 bits)"."""
    bits = result.guess_bits
    return (
        f"Guessing the secret after “{result.prefix.strip()}” with this model would take about "
        f"2^{bits:.1f} ≈ {_tries(bits)} tries, against {result.candidates:,} possibilities blind "
        f"(exposure {result.exposure:.1f} of {result.max_exposure:.1f} bits)"
    )


def _tries(bits: float) -> str:
    tries = 2.0**bits
    return f"{tries:,.0f}" if tries < 1e6 else f"{tries:.2g}"

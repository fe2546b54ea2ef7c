"""Decoders for text generation, each with the privacy it can (or cannot) claim per token.

* ``plain`` — ordinary sampling. From a DP-trained model this is post-processing: no extra ε,
  however many samples; from a non-private model it protects nothing.
* ``exponential`` — logits clipped to [−B, B], sample from softmax(clipped / T): the exponential
  mechanism with utility range 2B, ε per token = 4B/T, against ANY change to the model (and so
  to its training data), even a non-private model.
* ``noisy-max`` — report-noisy-max: argmax of clipped logits + Laplace(b) noise; ε per token = 4B/b.
* ``mix`` — sample from λ·p + (1−λ)/V: every token keeps probability ≥ (1−λ)/V, so the ratio of
  any token's probability under two models is ≤ 1 + λV/(1−λ); ε per token = ln(1 + λV/(1−λ)).
* ``naive-logits`` — Laplace noise on *unclipped* logits: the logits are unbounded, so the noise
  protects nothing and no ε is claimed.

A text of n tokens spends n·ε_token under basic composition; advanced composition at δ′ gives
√(2n ln(1/δ′))·ε + n·ε(e^ε − 1), which is smaller for many tokens. Training ε instead covers
unlimited queries: that is the point to make next to these numbers.

Secret randomness: a private decoder's guarantee is about a *random* choice. A generator seeded by a
value the reader knows (or can pick) makes every draw replayable, and the per-token ε is void. So
the private decoders draw from a fresh generator seeded from the OS's CSPRNG for every text, and that
seed is never stored, logged or shown; a user's ``seed`` applies to ``plain`` sampling (and to the
``naive-logits`` counterexample, which claims nothing) only.

Statements, never a minimum: each guarantee is reported as a labelled (ε, δ, neighbour relation)
pair — the training guarantee for adding or removing one training sequence, the decoder's against
any change to the model, basic and advanced composition at their own δ — shown side by side.
Taking the ``min`` of ε values that hold at different δ or for different neighbours gives a number
that no theorem backs.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from dpcore.data.tokenizer import EOS_ID, Tokenizer
from dpcore.errors import DPCoreError
from dpcore.model import GRULanguageModel, continuation_text
from dpcore.privacy.noise import laplace_noise


class _LedgerEntry(Protocol):
    epsilon_per_token: float
    tokens: int


class LedgerLike(Protocol):
    """What :func:`ledger_summary` reads of a ledger (the run store's ``LedgerState`` is one)."""

    entries: Sequence[_LedgerEntry]
    budget: float
    budget_is_default: bool

DECODERS = ("plain", "exponential", "noisy-max", "mix", "naive-logits")
PRIVATE_DECODERS = ("exponential", "noisy-max", "mix")
#: Neighbour relation of a decoder's own guarantee: it bounds the ratio for ANY two models.
DECODER_RELATION = "any change to the model, hence to its training data"


@dataclass(frozen=True)
class DecoderSpec:
    name: str = "plain"
    logit_bound: float = 4.0  # B
    temperature: float = 1.0  # T
    noise_scale: float = 1.0  # b (Laplace) for noisy-max and naive-logits
    mix: float = 0.5  # λ

    def validate(self) -> DecoderSpec:
        if self.name not in DECODERS:
            raise DPCoreError(f"decoder must be one of {', '.join(DECODERS)}; got {self.name!r}")
        for label, value in (("logit bound B", self.logit_bound), ("temperature T", self.temperature),
                             ("noise scale b", self.noise_scale)):
            if not (math.isfinite(value) and value > 0):
                raise DPCoreError(f"{label} must be a positive number, got {value!r}")
        if not (0.0 <= self.mix < 1.0):
            raise DPCoreError(f"the mixing weight λ must be in [0, 1), got {self.mix!r}")
        return self

    @property
    def has_guarantee(self) -> bool:
        """Whether this decoder by itself bounds what one token reveals about the model."""
        return self.name in PRIVATE_DECODERS

    @property
    def seedable(self) -> bool:
        """Whether a user-chosen seed may drive this decoder (never for a private one)."""
        return not self.has_guarantee

    def epsilon_per_token(self, vocab_size: int) -> float | None:
        """ε of one generated token (None: no guarantee of its own)."""
        if self.name == "exponential":
            return 4.0 * self.logit_bound / self.temperature
        if self.name == "noisy-max":
            return 4.0 * self.logit_bound / self.noise_scale
        if self.name == "mix":
            return math.log1p(self.mix * vocab_size / (1.0 - self.mix))
        return None

    def distribution(self, logits: torch.Tensor) -> torch.Tensor | None:
        """The exact next-token distribution where it has a closed form (not for noisy-max)."""
        if self.name == "exponential":
            return torch.softmax(logits.clamp(-self.logit_bound, self.logit_bound) / self.temperature, dim=-1)
        if self.name == "mix":
            v = logits.shape[-1]
            return self.mix * torch.softmax(logits / self.temperature, dim=-1) + (1.0 - self.mix) / v
        if self.name == "plain":
            return torch.softmax(logits / self.temperature, dim=-1)
        return None

    def pick(self, logits: torch.Tensor, generator: torch.Generator) -> int:
        """One token id from a logit vector [V]."""
        if self.name in ("noisy-max", "naive-logits"):
            values = logits.clamp(-self.logit_bound, self.logit_bound) if self.name == "noisy-max" else logits
            noisy = values + laplace_noise(values.shape, self.noise_scale, generator, values.device)
            return int(torch.argmax(noisy).item())
        probs = self.distribution(logits)
        return int(torch.multinomial(probs, 1, generator=generator).item())


def basic_composition(eps: float, n: int) -> float:
    return eps * n


def advanced_composition(eps: float, n: int, delta_prime: float) -> float:
    """Dwork–Rothblum–Vadhan: n-fold ε-DP is (√(2n ln(1/δ′))ε + nε(e^ε − 1), δ′)-DP."""
    if n == 0:
        return 0.0
    return math.sqrt(2 * n * math.log(1 / delta_prime)) * eps + n * eps * math.expm1(eps)


def advanced_composition_heterogeneous(counts: Iterable[tuple[float, int]], delta_prime: float) -> float:
    """Advanced composition of ε_i-DP mechanisms with different ε_i, at δ′.

    ``counts``: (ε_i, how many mechanisms with that ε_i). The bound is
    √(2 ln(1/δ′) Σ ε_i²) + Σ ε_i(e^{ε_i} − 1): the Dwork–Rothblum–Vadhan proof (Dwork & Roth 2014,
    Thm 3.20) with each privacy-loss term bounded by its own ε_i (Azuma–Hoeffding over ranges
    [−ε_i, ε_i]). With one ε it is exactly :func:`advanced_composition`, and it never exceeds the
    homogeneous bound at max ε_i.
    """
    if not 0 < delta_prime < 1:
        raise DPCoreError(f"δ′ must be between 0 and 1, got {delta_prime!r}")
    squares = drift = 0.0
    for eps, n in counts:
        squares += n * eps * eps
        drift += n * eps * math.expm1(eps)
    if squares == 0.0:
        return 0.0
    return math.sqrt(2 * math.log(1 / delta_prime) * squares) + drift


@dataclass(frozen=True)
class PrivacyStatement:
    """One (ε, δ)-DP statement, with what it is about. Statements are shown side by side, never merged."""

    label: str  # "training", "decoder, basic composition", ...
    epsilon: float
    delta: float
    relation: str  # the neighbouring relation it holds for

    def describe(self) -> str:
        return f"{self.label}: (ε = {self.epsilon:.3g}, δ = {self.delta:.2g}) for {self.relation}"


@dataclass
class DecodedText:
    text: str
    tokens: list[str] = field(default_factory=list)
    epsilon_per_token: float | None = None
    epsilon_basic: list[float] = field(default_factory=list)  # running total after each token
    epsilon_advanced: list[float] = field(default_factory=list)  # at delta_prime
    delta_prime: float = 1e-6

    @property
    def picks(self) -> int:
        """How many private choices this text made (its tokens, plus the end-of-text pick if any)."""
        return len(self.epsilon_basic)

    @property
    def epsilon_basic_total(self) -> float | None:
        """The pure ε of the whole text by basic composition (δ = 0); None: no guarantee of its own."""
        if self.epsilon_per_token is None:
            return None
        return self.epsilon_basic[-1] if self.epsilon_basic else 0.0

    def statements(self) -> list[PrivacyStatement]:
        """The decoder's own statements for this text: basic (δ = 0) and advanced (δ′), both valid."""
        if self.epsilon_per_token is None:
            return []
        advanced = self.epsilon_advanced[-1] if self.epsilon_advanced else 0.0
        return [PrivacyStatement("decoder, basic composition", float(self.epsilon_basic_total or 0.0), 0.0,
                                 DECODER_RELATION),
                PrivacyStatement(f"decoder, advanced composition at δ′ = {self.delta_prime:g}", advanced,
                                 self.delta_prime, DECODER_RELATION)]


def decoder_generator(spec: DecoderSpec, seed: int | None) -> torch.Generator:
    """The random source of one text: secret for a private decoder, ``seed`` for the others.

    The secret seed comes from the OS's CSPRNG and lives only in the returned generator: it is not
    stored, logged or returned, so nobody can replay the draw.
    """
    gen = torch.Generator()
    if spec.has_guarantee or seed is None:
        gen.manual_seed(secrets.randbits(63))
    else:
        gen.manual_seed(int(seed))
    return gen


@torch.no_grad()
def decode(model: GRULanguageModel, tokenizer: Tokenizer, prompt: str, spec: DecoderSpec, *, max_tokens: int,
           seed: int | None = 0, delta_prime: float = 1e-6) -> DecodedText:
    """Generate with ``spec``, tracking the ε the text spends token by token.

    ``seed`` drives ``plain`` and ``naive-logits`` only (same seed, same text). A private decoder
    ignores it and draws secret randomness (:func:`decoder_generator`): two texts always differ in
    their draws, whatever ``seed`` says. At most ``max_tokens`` private choices are made.
    """
    spec.validate()
    model.eval()
    gen = decoder_generator(spec, seed)
    device = next(model.parameters()).device
    ids = torch.tensor([[EOS_ID] + tokenizer.encode(prompt)], dtype=torch.long, device=device)
    logits, h = model(ids)
    eps = spec.epsilon_per_token(tokenizer.vocab_size)
    out = DecodedText(text=prompt, epsilon_per_token=eps, delta_prime=delta_prime)
    generated: list[int] = []
    for n in range(1, max_tokens + 1):
        nxt = spec.pick(logits[0, -1].float().cpu(), gen)
        if eps is not None:
            out.epsilon_basic.append(basic_composition(eps, n))
            out.epsilon_advanced.append(advanced_composition(eps, n, delta_prime))
        if nxt == EOS_ID:
            break
        generated.append(nxt)
        out.tokens.append(tokenizer.decode([nxt]))
        logits, h = model(torch.tensor([[nxt]], dtype=torch.long, device=device), h)
    out.text = continuation_text(tokenizer, prompt, generated)
    return out


@dataclass(frozen=True)
class TextGuarantee:
    """What covers a generated text: labelled (ε, δ, relation) statements, each valid on its own.

    ``statements`` is empty when nothing is claimed. They are never combined into one number: a
    ``min`` across pairs with different δ or neighbour relations is backed by no theorem.
    """

    statements: tuple[PrivacyStatement, ...]
    lines: tuple[str, ...]

    @property
    def explanation(self) -> str:
        return "; ".join(self.lines)

    @property
    def headline(self) -> PrivacyStatement | None:
        """The statement named first: the decoder's basic composition (pure) for a private decoder,
        the training guarantee for plain sampling from a DP-trained model; None when none holds."""
        return self.statements[0] if self.statements else None

    @property
    def epsilon(self) -> float | None:
        """The headline statement's ε (not a minimum of anything); None when nothing is claimed."""
        return None if self.headline is None else self.headline.epsilon


def training_statements(training_result: dict) -> list[PrivacyStatement]:
    """The model's training guarantee(s): add/remove one sequence and, where known, replace one."""
    eps, delta = training_result.get("epsilon"), training_result.get("delta")
    if eps is None or delta is None:
        return []
    unit = training_result.get("privacy_unit") or "one training sequence"
    relation = training_result.get("neighbours") or f"adding or removing {unit}"
    out = [PrivacyStatement("training", float(eps), float(delta), relation)]
    if training_result.get("epsilon_replace_one") is not None:
        out.append(PrivacyStatement("training", float(training_result["epsilon_replace_one"]), float(delta),
                                    f"replacing {unit}"))
    return out


def text_guarantee(out: DecodedText, spec: DecoderSpec, training_result: dict) -> TextGuarantee:
    """The statements that cover one generated text, side by side.

    A text drawn from a DP-trained model is post-processing, so the training statements hold for
    it; a private decoder adds its own, which hold against any change to the model. Each is valid
    on its own and none is merged with another. The naive decoder never claims anything, and does
    not borrow the training guarantee either, so nothing "naive" shows a number.
    """
    training = training_statements(training_result)
    if training:
        train_line = ("the model was DP-trained: " + "; ".join(t.describe() for t in training)
                      + "; any text drawn from it is post-processing and costs no extra ε")
    else:
        train_line = "the model was NOT trained with differential privacy"
    if spec.name == "naive-logits":
        return TextGuarantee((), ("naive-logits: Laplace noise on unbounded logits gives NO privacy guarantee",
                                  "no ε is claimed for this text"))
    if spec.name == "plain":
        if not training:
            return TextGuarantee((), (f"plain sampling: {train_line}, so this text has no privacy guarantee",))
        return TextGuarantee(tuple(training), (f"plain sampling: {train_line}",))
    decoder = out.statements()
    basic, advanced = decoder
    lines = [f"{spec.name}: ε per token = {out.epsilon_per_token:.3g} (pure, against {DECODER_RELATION}); "
             f"this text ({out.picks} tokens) is ({basic.epsilon:.3g}, 0)-DP by basic composition and "
             f"({advanced.epsilon:.3g}, {advanced.delta:g})-DP by advanced composition",
             train_line]
    if training:
        lines.append("each statement holds on its own (different δ and neighbours): none is combined with another")
    return TextGuarantee(tuple(decoder + training), tuple(lines))


# ---------------------------------------------------------------------------------- the ledger
@dataclass(frozen=True)
class LedgerSummary:
    """All privately decoded texts of one model so far, as (ε, δ) statements against any change to it."""

    texts: int
    tokens: int
    budget: float
    budget_is_default: bool
    basic: PrivacyStatement  # what the budget is checked against (pure, δ = 0)
    advanced: PrivacyStatement  # heterogeneous advanced composition at δ′

    @property
    def remaining(self) -> float:
        return max(0.0, self.budget - self.basic.epsilon)

    def lines(self) -> list[str]:
        who = "the default" if self.budget_is_default else "set by the run's owner"
        return [f"Private decoding of this model so far: {self.texts} text{'s' if self.texts != 1 else ''}, "
                f"{self.tokens} tokens",
                f"basic composition: (ε = {self.basic.epsilon:.3g}, δ = 0); advanced composition: "
                f"(ε = {self.advanced.epsilon:.3g}, δ = {self.advanced.delta:g}) — two valid statements, "
                f"against {DECODER_RELATION}",
                f"budget ε = {self.budget:.3g} ({who}), checked against basic composition; "
                f"{self.remaining:.3g} left"]


def ledger_statements(counts: Sequence[tuple[float, int]], delta_prime: float = 1e-6) -> list[PrivacyStatement]:
    """Basic (Σ ε₀ over tokens, δ = 0) and advanced (heterogeneous DRV at δ′) composition of a ledger.

    ``counts``: (ε₀ per token, tokens) of each text. Every decoded token is an ε₀-DP mechanism
    against any change to the model, and texts are composed adaptively across all viewers. The
    budget is enforced on the basic sum, which is a valid pure-DP privacy filter even when viewers
    choose ε₀ and lengths adaptively; the advanced pair treats the ledger as one adaptive sequence of
    those mechanisms and is shown beside it, not instead of it.
    """
    basic = math.fsum(eps * n for eps, n in counts)
    advanced = advanced_composition_heterogeneous(counts, delta_prime)
    return [PrivacyStatement("all private texts, basic composition", basic, 0.0, DECODER_RELATION),
            PrivacyStatement(f"all private texts, advanced composition at δ′ = {delta_prime:g}", advanced,
                             delta_prime, DECODER_RELATION)]


def ledger_summary(state: LedgerLike, delta_prime: float = 1e-6) -> LedgerSummary:
    """The ledger of one run as statements and totals (``texts`` counts texts that spent tokens)."""
    entries = list(state.entries)
    basic, advanced = ledger_statements([(e.epsilon_per_token, e.tokens) for e in entries], delta_prime)
    return LedgerSummary(texts=sum(1 for e in entries if e.tokens > 0), tokens=sum(e.tokens for e in entries),
                         budget=float(state.budget), budget_is_default=bool(state.budget_is_default),
                         basic=basic, advanced=advanced)

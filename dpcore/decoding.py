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

When each figure holds. Basic composition bounds the privacy loss of every output pointwise, so
the sum over the choices actually made is valid however they were chosen, and it is what the
ledger's budget is enforced on. Advanced composition (Dwork–Rothblum–Vadhan) is a statement about a
number n of mechanisms fixed in advance; a text stops early at its end, after a number of choices
that depends on its output, so the advanced figure of a text is taken at the n charged for it
(``max_tokens``: the choices after the end count as ε = 0 mechanisms), never at the choices made.
Over the ledger, viewers choose ε per token, lengths and how many texts adaptively, after seeing
earlier texts; a fixed-n bound does not cover that, and a valid one (a privacy filter, Whitehouse et
al. 2023, "Fully adaptive composition in differential privacy") needs a target (ε, δ) fixed before
the first text, which neither the owner's budget (it can be changed) nor the viewer's δ′ is. So the
ledger reports basic composition alone.

Secret randomness: a private decoder's guarantee is about a *random* choice. A generator seeded by a
value the reader knows (or can pick) makes every draw replayable, and the per-token ε is void. So
the private decoders draw from a fresh generator seeded from the OS's CSPRNG for every text, and that
seed is never stored, logged or shown; a user's ``seed`` applies to ``plain`` sampling (and to the
``naive-logits`` counterexample, which claims nothing) only.

What a decoder may emit: never PAD or UNK, and from a byte vocabulary only bytes that continue valid
UTF-8 (:class:`TokenFilter`), so no shown text ever holds a replacement character (U+FFFD). The set
of allowed ids depends only on the tokens already drawn, never on the model: each private choice
is still the same mechanism over a smaller range chosen from earlier outputs (adaptive composition),
so ε per token stays a valid bound (for ``mix`` the uniform floor spreads over the allowed ids, and
ln(1 + λV/(1−λ)) with the full V bounds its ε).

Operating points (:data:`OPERATING_POINTS`): private prediction spends ε on every token, so a model
that is readable *and* private per text does not exist at this scale; the Samples page offers two
named points that show the trade-off at its measured price (``bench/decoding_points.py``): one
readable, one private.

Statements, never a minimum: each guarantee is reported as a labelled (ε, δ, neighbour relation)
pair — the training guarantee for adding or removing one training sequence, the decoder's against
any change to the model, a text's basic and advanced composition at their own δ — shown side by side.
Taking the ``min`` of ε values that hold at different δ or for different neighbours gives a number
that no theorem backs.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from dpcore import model as gru
from dpcore.data.tokenizer import EOS_ID, Tokenizer
from dpcore.errors import DPCoreError
from dpcore.model import GRULanguageModel, continuation_text
from dpcore.privacy.noise import laplace_noise
from dpcore.tokenfilter import REPLACEMENT_CHAR, TokenFilter

#: What a decoder of invalid UTF-8 (or an UNK token) shows; never part of a generated text here.


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

    def distribution(self, logits: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor | None:
        """The exact next-token distribution where it has a closed form (not for noisy-max).

        ``allowed`` (bool [V], from :class:`TokenFilter`) restricts the range: other ids get
        probability 0, and ``mix`` spreads its uniform floor over the allowed ids only.
        """
        if self.name == "exponential":
            return _softmax(logits.clamp(-self.logit_bound, self.logit_bound) / self.temperature, allowed)
        if self.name == "mix":
            floor = torch.full_like(logits, 1.0 / logits.shape[-1]) if allowed is None else \
                allowed.to(logits.dtype) / allowed.sum()
            return self.mix * _softmax(logits / self.temperature, allowed) + (1.0 - self.mix) * floor
        if self.name == "plain":
            return _softmax(logits / self.temperature, allowed)
        return None

    def pick(self, logits: torch.Tensor, generator: torch.Generator, allowed: torch.Tensor | None = None) -> int:
        """One token id from a logit vector [V] (among the ``allowed`` ids when given)."""
        if self.name in ("noisy-max", "naive-logits"):
            values = logits.clamp(-self.logit_bound, self.logit_bound) if self.name == "noisy-max" else logits
            noisy = values + laplace_noise(values.shape, self.noise_scale, generator, values.device)
            if allowed is not None:
                noisy = noisy.masked_fill(~allowed, float("-inf"))
            return int(torch.argmax(noisy).item())
        probs = self.distribution(logits, allowed)
        return int(torch.multinomial(probs, 1, generator=generator).item())


def _softmax(values: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    if allowed is not None:
        values = values.masked_fill(~allowed, float("-inf"))
    return torch.softmax(values, dim=-1)


def mix_weight_for(epsilon_per_token: float, vocab_size: int) -> float:
    """The largest λ whose ``mix`` decoder spends at most ``epsilon_per_token`` over ``vocab_size`` ids.

    Inverts ε = ln(1 + λV/(1−λ)): λ = (e^ε − 1)/(e^ε − 1 + V), then steps down to the next float
    until rounding cannot take the ε it reports above the one asked for.
    """
    if not (math.isfinite(epsilon_per_token) and epsilon_per_token > 0) or vocab_size < 1:
        raise DPCoreError(f"ε per token must be a positive number, got {epsilon_per_token!r}")
    grow = math.expm1(epsilon_per_token)
    lam = grow / (grow + vocab_size)
    while lam > 0 and DecoderSpec("mix", mix=lam).epsilon_per_token(vocab_size) > epsilon_per_token:
        lam = math.nextafter(lam, 0.0)
    return lam


# ------------------------------------------------------------------------ what may come next
def basic_composition(eps: float, n: int) -> float:
    return eps * n


def advanced_composition(eps: float, n: int, delta_prime: float) -> float:
    """Dwork–Rothblum–Vadhan: n-fold ε-DP is (√(2n ln(1/δ′))ε + nε(e^ε − 1), δ′)-DP.

    ``n`` must be fixed before the first choice (adaptive choice of *what* each mechanism does is
    covered, adaptive choice of *how many* is not): pass the length charged, not the length drawn.
    """
    if not 0 < delta_prime < 1:
        raise DPCoreError(f"δ′ must be between 0 and 1, got {delta_prime!r}")
    if n == 0:
        return 0.0
    return math.sqrt(2 * n * math.log(1 / delta_prime)) * eps + n * eps * math.expm1(eps)


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
    #: Advanced composition (at δ′) of the first k choices, k = 1, 2, …: each entry holds for a prefix
    #: of that fixed length; the whole text's figure is :attr:`epsilon_advanced_total`.
    epsilon_advanced: list[float] = field(default_factory=list)
    delta_prime: float = 1e-6
    #: The number of private choices charged for this text (``max_tokens``): the n of its advanced figure.
    charged_picks: int = 0

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

    @property
    def epsilon_advanced_total(self) -> float | None:
        """The whole text's advanced-composition ε at δ′, over the :attr:`charged_picks` choices charged.

        Not over the choices made: where the text stops depends on what it drew, and the fixed-n bound
        holds only for an n chosen in advance (the choices after the end are ε = 0 mechanisms).
        """
        if self.epsilon_per_token is None:
            return None
        return advanced_composition(self.epsilon_per_token, max(self.charged_picks, self.picks), self.delta_prime)

    def statements(self) -> list[PrivacyStatement]:
        """The decoder's own statements for this text: basic (δ = 0) and advanced (δ′), both valid."""
        if self.epsilon_per_token is None:
            return []
        n = max(self.charged_picks, self.picks)
        return [PrivacyStatement("decoder, basic composition", float(self.epsilon_basic_total or 0.0), 0.0,
                                 DECODER_RELATION),
                PrivacyStatement(f"decoder, advanced composition of {n} charged choices at δ′ = {self.delta_prime:g}",
                                 float(self.epsilon_advanced_total or 0.0), self.delta_prime, DECODER_RELATION)]


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


def visible_text(tokenizer: Tokenizer, prompt: str, ids: Sequence[int]) -> str:
    """``prompt`` and its continuation ``ids`` as shown: the continuation never holds U+FFFD.

    :class:`TokenFilter` already keeps UNK and invalid UTF-8 out of a decoder's choices; this drops
    any replacement character that decoding would still make (a vocabulary that holds U+FFFD as a
    token, a byte sequence built some other way). The prompt is the visitor's own text, kept as typed.
    """
    full = continuation_text(tokenizer, prompt, list(ids))
    return prompt + full[len(prompt):].replace(REPLACEMENT_CHAR, "")


@torch.no_grad()
def _draw(model: GRULanguageModel, tokenizer: Tokenizer, primed: tuple[torch.Tensor, torch.Tensor],
          spec: DecoderSpec, generator: torch.Generator, max_tokens: int) -> tuple[list[int], int]:
    """(token ids, private choices made) of one continuation: at most ``max_tokens`` choices, the
    end-of-record pick included, each among the ids :class:`TokenFilter` allows."""
    device = next(model.parameters()).device
    logits, h = primed
    allowed = TokenFilter(tokenizer)
    ids: list[int] = []
    picks = 0
    for _ in range(max_tokens):
        nxt = spec.pick(logits[0, -1].float().cpu(), generator, allowed.allowed())
        picks += 1
        if nxt == EOS_ID:
            break
        ids.append(nxt)
        allowed.push(nxt)
        logits, h = model(torch.tensor([[nxt]], dtype=torch.long, device=device), h)
    return ids, picks


@torch.no_grad()
def decode(model: GRULanguageModel, tokenizer: Tokenizer, prompt: str, spec: DecoderSpec, *, max_tokens: int,
           seed: int | None = 0, delta_prime: float = 1e-6) -> DecodedText:
    """Generate with ``spec``, tracking the ε the text spends token by token.

    ``seed`` drives ``plain`` and ``naive-logits`` only (same seed, same text). A private decoder
    ignores it and draws secret randomness (:func:`decoder_generator`): two texts always differ in
    their draws, whatever ``seed`` says. At most ``max_tokens`` private choices are made, each among
    the ids :class:`TokenFilter` allows, so the text never shows U+FFFD; ``max_tokens`` is what the
    ledger charges, and the n of the text's advanced-composition figure.
    """
    spec.validate()
    model.eval()
    gen = decoder_generator(spec, seed)
    primed = gru.prime(model, [EOS_ID] + tokenizer.encode(prompt))
    ids, picks = _draw(model, tokenizer, primed, spec, gen, max_tokens)
    eps = spec.epsilon_per_token(tokenizer.vocab_size)
    out = DecodedText(text=visible_text(tokenizer, prompt, ids), epsilon_per_token=eps, delta_prime=delta_prime,
                      tokens=[tokenizer.decode([i]).replace(REPLACEMENT_CHAR, "") for i in ids],
                      charged_picks=int(max_tokens))
    if eps is not None:
        out.epsilon_basic = [basic_composition(eps, n) for n in range(1, picks + 1)]
        out.epsilon_advanced = [advanced_composition(eps, n, delta_prime) for n in range(1, picks + 1)]
    return out


def sample_texts(model: GRULanguageModel, tokenizer: Tokenizer, prompt: str, *, n: int, max_tokens: int,
                 temperature: float = 0.8, seed: int = 0) -> list[str]:
    """``n`` plain continuations of ``prompt`` from one seeded generator (same seed, same texts).

    Plain sampling claims no ε of its own: it is post-processing of the model. The prompt runs
    through the model once for all ``n``; each text starts a new record, ends at the record end or
    after ``max_tokens`` tokens, and (as every decoder here) never shows U+FFFD.
    """
    spec = DecoderSpec("plain", temperature=temperature).validate()
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    was_training = model.training
    model.eval()
    try:
        primed = gru.prime(model, [EOS_ID] + tokenizer.encode(prompt))
        return [visible_text(tokenizer, prompt, _draw(model, tokenizer, primed, spec, gen, max_tokens)[0])
                for _ in range(n)]
    finally:
        model.train(was_training)


# ------------------------------------------------------------------------ operating points
@dataclass(frozen=True)
class OperatingPoint:
    """A named private-decoding setting: the ``mix`` decoder at a fixed ε per token and length.

    The ε per token is fixed, not λ: λ is derived per model from its vocabulary
    (:func:`mix_weight_for`), so the promised ε per text is the same for every model.
    """

    name: str
    epsilon_per_token: float
    max_tokens: int
    temperature: float  # of the model's distribution inside the mix (costs no ε)
    shows: str  # what the point demonstrates, one sentence

    @property
    def epsilon_per_text(self) -> float:
        """The most one text may spend (basic composition, δ = 0): every token choice at ε₀."""
        return self.epsilon_per_token * self.max_tokens

    def spec(self, vocab_size: int) -> DecoderSpec:
        """The decoder for a model with ``vocab_size`` ids; its ε per token is at most the point's."""
        return DecoderSpec("mix", temperature=self.temperature,
                           mix=mix_weight_for(self.epsilon_per_token, vocab_size)).validate()


#: Measured on the default model (``python -m dpcore train``: Gaussian DP-SGD, ε = 8, characters,
#: val perplexity 4.6) with ``python bench/decoding_points.py`` (300 texts of ≤ 16 characters per
#: row; share of written letters inside real words of ≥ 3 letters): plain sampling at temperature
#: 0.5 gives 44%, ``mix`` at 0.5 gives 42% at ε = 10 per character, 36% at 8, 21% at 6, 5% at 4 and
#: 2% (uniform characters) at 2 or below; the exponential decoder gives 5% at ε = 8 and 17% at 16.
#: ε = 8 is where ``mix`` reads like plain sampling (e.g. "call me at (83) 555-4"); 16 characters
#: is a short phrase.
READABLE = OperatingPoint(
    "readable", epsilon_per_token=8.0, max_tokens=16, temperature=0.5,
    shows="legible text at a price: every token costs ε = 8, so one short text costs up to 128 — 16 times "
          "the training ε = 8 of a default run, a promise in name only")
#: The same length at ε ≤ 1 per text: a real guarantee, and the text is noise (uniform characters).
PRIVATE = OperatingPoint(
    "private", epsilon_per_token=1 / 16, max_tokens=16, temperature=0.5,
    shows="a real guarantee, ε ≤ 1 for the whole text, and the price: the text is noise, since at ε = 1/16 "
          "per token every token is close to a uniform draw")
OPERATING_POINTS: dict[str, OperatingPoint] = {p.name: p for p in (READABLE, PRIVATE)}
#: What the Samples page offers, in order: plain sampling (free from a DP model), the two points,
#: then each private decoder with its own knobs, and the naive counterexample.
DECODER_CHOICES = ("plain", *OPERATING_POINTS, *PRIVATE_DECODERS, "naive-logits")


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
             f"({advanced.epsilon:.3g}, {advanced.delta:g})-DP by advanced composition of the "
             f"{max(out.charged_picks, out.picks)} choices charged for it",
             train_line]
    if training:
        lines.append("each statement holds on its own (different δ and neighbours): none is combined with another")
    return TextGuarantee(tuple(decoder + training), tuple(lines))


# ---------------------------------------------------------------------------------- the ledger
@dataclass(frozen=True)
class LedgerSummary:
    """All privately decoded texts of one model so far, as a pure-DP statement against any change to it.

    Basic composition alone: it is the figure the budget is enforced on, and the one that holds when
    viewers choose ε, lengths and texts adaptively (see the module's docstring for why no advanced
    figure is shown over the ledger).
    """

    texts: int
    tokens: int
    budget: float
    budget_is_default: bool
    basic: PrivacyStatement  # what the budget is checked against (pure, δ = 0)

    @property
    def remaining(self) -> float:
        return max(0.0, self.budget - self.basic.epsilon)

    def lines(self) -> list[str]:
        who = "the default" if self.budget_is_default else "set by the run's owner"
        return [f"Private decoding of this model so far: {self.texts} text{'s' if self.texts != 1 else ''}, "
                f"{self.tokens} tokens",
                f"basic composition: (ε = {self.basic.epsilon:.3g}, δ = 0) against {DECODER_RELATION}; no advanced "
                "composition is shown over the ledger: viewers choose each text after seeing the others, and a "
                "bound for a fixed number of tokens does not cover that",
                f"budget ε = {self.budget:.3g} ({who}), checked against basic composition; "
                f"{self.remaining:.3g} left"]


def ledger_statements(counts: Sequence[tuple[float, int]]) -> list[PrivacyStatement]:
    """Basic composition (Σ ε₀ over tokens, δ = 0) of a ledger, the one statement it makes.

    ``counts``: (ε₀ per token, tokens) of each text. Every decoded token is an ε₀-DP mechanism
    against any change to the model, and texts are composed adaptively across all viewers. The basic
    sum bounds the privacy loss pointwise, so it is a valid pure-DP privacy filter even when viewers
    choose ε₀, lengths and texts adaptively; fixed-n advanced composition is not, so none is given.
    """
    basic = math.fsum(eps * n for eps, n in counts)
    return [PrivacyStatement("all private texts, basic composition", basic, 0.0, DECODER_RELATION)]


def ledger_summary(state: LedgerLike) -> LedgerSummary:
    """The ledger of one run as its statement and totals (``texts`` counts texts that spent tokens)."""
    entries = list(state.entries)
    (basic,) = ledger_statements([(e.epsilon_per_token, e.tokens) for e in entries])
    return LedgerSummary(texts=sum(1 for e in entries if e.tokens > 0), tokens=sum(e.tokens for e in entries),
                         budget=float(state.budget), budget_is_default=bool(state.budget_is_default), basic=basic)

"""What generated text spends: composition over tokens and texts, and the statements that cover it.

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

Statements, never a minimum: each guarantee is reported as a labelled (ε, δ, neighbour relation)
pair — the training guarantee for adding or removing one training sequence, the decoder's against
any change to the model, a text's basic and advanced composition at their own δ — shown side by side.
Taking the ``min`` of ε values that hold at different δ or for different neighbours gives a number
that no theorem backs. Torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from dpcore.errors import DPCoreError
from dpcore.privacy.decoders import DECODER_RELATION, DecoderSpec


class _LedgerEntry(Protocol):
    epsilon_per_token: float
    tokens: int


class LedgerLike(Protocol):
    """What :func:`ledger_summary` reads of a ledger (the run store's ``LedgerState`` is one)."""

    entries: Sequence[_LedgerEntry]
    budget: float
    budget_is_default: bool

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


class TrainingClaim(Protocol):
    """What the statements read of a run's result (:class:`dpcore.training.result.RunResult`, which sits
    above privacy)."""

    @property
    def epsilon(self) -> float | None: ...

    @property
    def delta(self) -> float | None: ...

    @property
    def privacy_unit(self) -> str | None: ...

    @property
    def neighbours(self) -> str | None: ...

    @property
    def epsilon_replace_one(self) -> float | None: ...


def training_statements(training_result: TrainingClaim) -> list[PrivacyStatement]:
    """The model's training guarantee(s): add/remove one sequence and, where known, replace one."""
    eps, delta = training_result.epsilon, training_result.delta
    if eps is None or delta is None:
        return []
    unit = training_result.privacy_unit or "one training sequence"
    relation = training_result.neighbours or f"adding or removing {unit}"
    out = [PrivacyStatement("training", float(eps), float(delta), relation)]
    if training_result.epsilon_replace_one is not None:
        out.append(PrivacyStatement("training", float(training_result.epsilon_replace_one), float(delta),
                                    f"replacing {unit}"))
    return out


def text_guarantee(out: DecodedText, spec: DecoderSpec, training_result: TrainingClaim) -> TextGuarantee:
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

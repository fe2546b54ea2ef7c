"""The Samples page's words: what each decoder choice is, why private prediction is expensive, and
the ε of each text stated where the text is.

The operating points themselves (decoder, ε per token, length) live in :mod:`dpcore.privacy.decoders`
(``OPERATING_POINTS``); this module only words them, so it takes them as duck-typed objects and
stays free of torch (``tests/test_guard.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from dpcore.privacy.registry import Guarantee
from dpcore.runs.access import StrangerBudget
from dpcore.runs.store import Run


class PointLike(Protocol):
    """What these sentences read of a :class:`dpcore.privacy.decoders.OperatingPoint`."""

    name: str
    epsilon_per_token: float
    max_tokens: int
    temperature: float
    shows: str

    @property
    def epsilon_per_text(self) -> float: ...


DECODER_HELP = {
    "plain": "Ordinary sampling: post-processing of the model, no ε of its own.",
    "exponential": "Clip logits to [−B, B], sample from softmax(clipped / T): ε = 4B/T per token.",
    "noisy-max": "Clip logits to [−B, B], add Laplace(b) noise, take the largest: ε = 4B/b per token.",
    "mix": "Sample from λ·p + (1−λ)/V: every token keeps a floor; ε = ln(1 + λV/(1−λ)) per token.",
    "naive-logits": "Laplace noise on unclipped logits: no privacy guarantee (a counterexample).",
}
#: Why private prediction is expensive, said once under the decoder controls.
PER_TOKEN_WHY = ("Each generated token is its own private release, so a text of n tokens spends n times the "
                 "per-token ε: readable text needs a large ε per token, while a DP-trained model covers any amount "
                 "of text with its one training ε.")
NAIVE_DECODER_WHY = ("The logits are unbounded, so no finite noise hides how much one training example "
                     "moved them: the noise protects nothing.")
#: Custom decoders are listed after the operating points, with the knobs they need.
_CUSTOM = {"exponential": "set B and T", "noisy-max": "set B and b", "mix": "set λ"}


def _num(x: float) -> str:
    return f"{x:.3g}"


def choice_label(choice: str, points: dict[str, PointLike]) -> str:
    """How the decoder menu names ``choice``: a point says its ε per text, a custom decoder its knobs."""
    if choice in points:
        return f"{choice} (private decoding, ε ≤ {_num(points[choice].epsilon_per_text)} per text)"
    if choice in _CUSTOM:
        return f"{choice} (custom: {_CUSTOM[choice]})"
    if choice == "plain":
        return "plain sampling"
    if choice == "naive-logits":
        return "naive-logits (no guarantee)"
    return choice


def point_help(point: PointLike) -> str:
    """One line under the menu: what the point is and costs, and what it shows."""
    return (f"The mix decoder at ε = {_num(point.epsilon_per_token)} per token (its λ set per model from the "
            f"vocabulary), model temperature {_num(point.temperature)}, up to {point.max_tokens} tokens: "
            f"**ε ≤ {_num(point.epsilon_per_text)} per text**. It shows {point.shows}.")


def click_caption(per_text: float | None, max_tokens: int, count: int) -> str:
    """What one click of "Generate privately" may spend per model, said before the click."""
    if per_text is None:
        head = f"each text is charged up to {max_tokens} tokens × its ε per token before it is decoded"
    else:
        head = (f"each text may spend up to ε = {_num(per_text)} ({max_tokens} tokens × ε per token), charged "
                f"before it is decoded")
    most = "" if per_text is None else f" (ε ≤ {_num(per_text * count)})"
    return (f"Private decoding spends each model's inference budget, shared by everyone who decodes it: {head}, "
            f"and only the tokens it draws stay on the ledger. Up to {count} text{'s' if count != 1 else ''} "
            f"per model for this click{most}.")


def per_text_caption(per_text: float) -> str:
    """The most one text from this model may spend, shown in its column before any text."""
    return f"Each private text from this model: ε ≤ {_num(per_text)} (δ = 0), charged to its ledger."


def text_epsilon_caption(epsilon_per_token: float, picks: int, epsilon_text: float, advanced: float,
                         delta_prime: float, *, ended: bool) -> str:
    """Under a privately decoded text: its own total ε first, then how it adds up.

    ``ended``: the last choice was the end of the text, which is a private choice like any token.
    """
    end = " (the end of the text is one of them)" if ended else ""
    return (f"**This text: ε = {_num(epsilon_text)}** (δ = 0, charged to the ledger): {picks} token "
            f"choice{'s' if picks != 1 else ''}{end} × ε {_num(epsilon_per_token)} per token · advanced "
            f"composition: (ε = {_num(advanced)}, δ = {delta_prime:g})")


#: In place of plain or naive-logits text that the disclosure rule keeps for the owner (with the refusal).
OWNER_ONLY_HINT = "A private decoder's texts carry their own ε, within this model's stranger budget."


def stranger_caption(budget: StrangerBudget) -> str:
    """Under a model whose text is for its owner only: what everyone else has spent of their budget.

    An owner's raise is named as such next to the default, on every viewer's screen.
    """
    if budget.is_default:
        who = "the default"
    elif budget.raised:
        who = f"RAISED by the run's owner from the default ε = {_num(budget.default)}"
    else:
        who = f"set by the run's owner; the default is ε = {_num(budget.default)}"
    return (f"**Stranger budget ε = {_num(budget.budget)}** ({who}): what everyone but the owner may spend "
            f"together on private decoding of this model, which has no guarantee of its own. "
            f"Spent {_num(budget.spent)}, {_num(budget.remaining)} left.")


#: The privacy level the Samples page puts next to the non-private baseline by default.
SIDE_BY_SIDE_EPSILON = 8.0


def side_by_side_first(runs: Sequence[Run]) -> list[Run]:
    """``runs`` (newest first) with the newest ε = 8 private run and the newest non-private run in front.

    What the trade-off looks like at its best is "ε = 8 next to no privacy": the Samples page picks
    those two first when nothing else was asked for, and the rest keep their order.
    """
    def first(match) -> Run | None:
        return next((r for r in runs if match(r)), None)

    eight = first(lambda r: r.guarantee is Guarantee.DP
                  and r.config.get("epsilon") == SIDE_BY_SIDE_EPSILON)
    baseline = first(lambda r: r.config.get("mechanism") == "none")
    front = [r for r in (eight, baseline) if r is not None]
    return front + [r for r in runs if r not in front]

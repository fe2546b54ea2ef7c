"""Per sequence or per person: what a sequence-level ε says about someone with k sequences.

Example-level DP-SGD promises (ε, δ) for one training sequence. Someone who wrote k sequences is
covered only by group privacy: the standard bound (Dwork and Roth 2014, Lemma 2.2 and its (ε, δ)
form) gives (kε, k·e^{(k-1)ε}·δ), the bound we can defend without re-running the accountant for a
group. It grows fast: the δ term passes 1 (no promise at all) after a handful of sequences at the
usual ε. User-level DP-SGD instead makes the person the unit: (ε, δ) for anyone, however many
messages they wrote — which is why the app offers it and defaults to it.

Torch-free and streamlit-free: the Mechanisms page and the reports draw these rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dpcore.views.meaning import odds_multiplier

#: The group sizes the table shows (the built-in corpus plants canaries 1, 10 and 30 times).
GROUP_SIZES = (1, 2, 5, 10, 30)


@dataclass(frozen=True)
class GroupRow:
    """The guarantee for someone with ``k`` sequences, under each privacy unit."""

    k: int
    sequence_epsilon: float  # kε
    sequence_delta: float  # k·e^{(k-1)ε}·δ, capped at 1 (1 means: no promise left)
    user_epsilon: float
    user_delta: float

    @property
    def sequence_vacuous(self) -> bool:
        """True when the group bound promises nothing (δ ≥ 1)."""
        return self.sequence_delta >= 1.0


def group_delta(epsilon: float, delta: float, k: int) -> float:
    """k·e^{(k-1)ε}·δ, the δ of the group-privacy bound, capped at 1 (computed in logs: no overflow)."""
    if delta <= 0:
        return 0.0
    log = math.log(k) + (k - 1) * epsilon + math.log(delta)
    return 1.0 if log >= 0 else math.exp(log)


def group_rows(epsilon: float, delta: float, sizes: tuple[int, ...] = GROUP_SIZES) -> list[GroupRow]:
    """One row per group size: sequence-level (kε, k·e^{(k-1)ε}·δ) next to user-level (ε, δ)."""
    if epsilon <= 0 or not 0 <= delta < 1:
        raise ValueError("need ε > 0 and 0 ≤ δ < 1")
    return [GroupRow(k, k * epsilon, group_delta(epsilon, delta, k), epsilon, delta) for k in sizes]


def group_table(rows: list[GroupRow]) -> list[dict[str, str]]:
    """The rows as text for a table: "someone with k sequences", then each unit's promise."""
    out = []
    for r in rows:
        odds = odds_multiplier(r.sequence_epsilon)
        seq = ("no promise left (δ ≥ 1)" if r.sequence_vacuous else
               f"ε = {r.sequence_epsilon:.3g} (odds × {odds}), δ = {r.sequence_delta:.2g}")
        out.append({
            "someone with": f"{r.k} sequence{'s' if r.k > 1 else ''}",
            "per-sequence run (group privacy)": seq,
            "per-person run": f"ε = {r.user_epsilon:.3g} (odds × {odds_multiplier(r.user_epsilon)}), "
                              f"δ = {r.user_delta:.2g}",
        })
    return out


def group_summary(epsilon: float, delta: float) -> str:
    """One sentence: from which group size on a sequence-level ε promises nothing."""
    k = 1
    while group_delta(epsilon, delta, k) < 1.0 and k < 10_000:
        k += 1
    return (f"At ε = {epsilon:g} per sequence, someone with k sequences is protected at k·ε, and the chance "
            f"that the promise fails grows as k·e^((k−1)ε)·δ: from {k} sequences on there is no promise left. "
            f"A per-person run promises ε = {epsilon:g} to everyone, however much they wrote.")

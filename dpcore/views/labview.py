"""What the attack lab draws: a pool's score as ε bounds, the verdict in words, and predictions beside results.

Pure shaping (no Streamlit, no files): the page reads the games (:mod:`dpcore.runs.lab_games`) and the
run's audit (:mod:`dpcore.views.auditview`), and these turn them into sentences, table rows and chart
points. Nothing here sees a coin: a game's records hold only guesses already made and whether each was right.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dpcore.audit.lab import (
    ROUNDS,
    Candidate,
    ExtractionTarget,
    Score,
    all_canaries_ceiling,
    best_success,
    pooled_score,
)
from dpcore.runs.lab_games import Extraction, Game
from dpcore.views.auditview import fdp_bound, one_run


@dataclass(frozen=True)
class Verdict:
    """``level``: "held", "alarm", "no-guarantee" or "not-yet"; ``sentence``: what it means, in words."""

    level: str
    sentence: str


def pool_score(games: Sequence[Game], m: int, delta: float, *, rounds: int = ROUNDS) -> Score | None:
    """The pool's guesses as bounds (None before any game)."""
    if not games:
        return None
    return pooled_score(m, len(games), sum(g.made for g in games), sum(g.correct for g in games),
                        delta=delta, rounds=rounds)


def verdict(score: Score | None, claimed: float | None, delta: float, *, who: str = "your guesses") -> Verdict:
    """Whether the guarantee held against these guesses, tested as the audit's bug alarm tests it."""
    if score is None or score.made == 0:
        return Verdict("not-yet", "Make a few guesses: the verdict appears as soon as there is something to test.")
    shown = max(score.epsilon, score.epsilon_fdp)
    if claimed is None:
        if shown > 0:
            return Verdict("no-guarantee", f"This model promises nothing, and {who} prove it leaks: ε ≥ {shown:.2f} "
                                           "with 95 % confidence. A DP model at a small ε could never show this.")
        return Verdict("no-guarantee", f"This model promises nothing. {who.capitalize()} have not yet shown a leak "
                                       "that chance could not explain; keep playing, or follow the loss rank.")
    if max(score.alarm_epsilon, score.alarm_epsilon_fdp) > claimed:
        return Verdict("alarm", f"The guarantee FAILED this test: {who} prove ε ≥ {shown:.2f}, more than the "
                                f"claimed ε = {claimed:.2f}. A correct DP model fails it at most 5 % of the time: "
                                "suspect a bug in the noise, clipping, sampling or accounting (or answers passed "
                                "around the room).")
    return Verdict("held", f"The guarantee held: {who} show ε ≥ {shown:.2f} at most, within the claimed "
                           f"ε = {claimed:.2f}. At this ε no attacker can be right more than "
                           f"{best_success(claimed, delta):.2%} of the time, however clever.")


def bound_points(score: Score | None, audit: Mapping[str, Any], claimed: float | None, *, m: int,
                 delta: float) -> list[dict[str, Any]]:
    """The chart's bars: the pool's two bounds, the most its guesses and all m canaries could show, the audit's
    bounds and the claim."""
    points: list[dict[str, Any]] = []
    if score is not None:
        points += [{"what": "your guesses: Steinke et al.", "epsilon": score.epsilon, "kind": "game"},
                   {"what": "your guesses: f-DP", "epsilon": score.epsilon_fdp, "kind": "game"},
                   {"what": f"the most {score.r} guesses could show", "epsilon": max(score.ceiling, score.ceiling_fdp),
                    "kind": "ceiling"}]
    points.append({"what": f"the most all {m:,} canaries could ever show",
                   "epsilon": all_canaries_ceiling(m, delta=delta), "kind": "ceiling"})
    one, fdp = one_run(audit), fdp_bound(audit)
    if one is not None:
        points.append({"what": f"the audit's attack ({one['guesses']} guesses): Steinke et al.",
                       "epsilon": one["epsilon_lower_bound"], "kind": "audit"})
    if fdp is not None:
        points.append({"what": f"the audit's attack ({fdp['guesses']} guesses): f-DP", "epsilon": fdp["value"],
                       "kind": "audit"})
    if claimed is not None:
        points.append({"what": "the accountant's ε (an upper bound)", "epsilon": claimed, "kind": "claim"})
    return points


def candidate_caption(c: Candidate) -> str:
    """What a real attacker with the weights knows of this text: its loss, and how it ranks among all canaries."""
    return (f"Loss under the model: **{c.loss:.3f}** nats per token, rank **{c.rank:,}** of {c.m:,} canaries "
            "(rank 1 = the lowest loss, which looks most like something the model trained on). About half of "
            "all canaries were trained on, each by a secret coin flip.")


def game_line(game: Game) -> str:
    done = len(game.guesses)
    return (f"Round {min(done + 1, len(game.canaries))} of {len(game.canaries)} · {game.correct} right of "
            f"{game.made} guessed" + (f" · {done - game.made} skipped" if done > game.made else ""))


def prediction_rows(games: Sequence[Game], models: Mapping[str, tuple[str, float | None, float]]) -> list[dict]:
    """Predicted against actual success per model played. ``models``: run id → (label, claimed ε, δ)."""
    rows = []
    for run_id, (label, claimed, delta) in models.items():
        mine = [g for g in games if g.run_id == run_id]
        made = sum(g.made for g in mine)
        predictions = [g.prediction for g in mine if g.prediction is not None]
        if not mine:
            continue
        rows.append({
            "model": label,
            "you predicted": f"{predictions[0]:.0%}" if predictions else "—",
            "you got": f"{sum(g.correct for g in mine) / made:.0%} of {made}" if made else "—",
            "the most any attacker can get": f"{best_success(claimed, delta):.1%}",
        })
    return rows


def target_label(target: ExtractionTarget) -> str:
    return f"“{target.prefix.strip()} …” (planted {target.insertions}×)"


def hint_line(target: ExtractionTarget) -> str:
    """The model's own first guesses, as the hint: what an attacker with the weights computes first."""
    return "  ".join(f"{i}.\u00a0`{g.replace(target.separator, '') if target.separator else g}`"
                     for i, g in enumerate(target.guesses, start=1))


def extraction_sentence(target: ExtractionTarget, state: Extraction) -> str:
    """How the visitor did against the audit's measurement (the state must be over: the secret is shown)."""
    blind = round(2 ** target.max_exposure)
    audit = (f"The audit ranked the true PIN **{target.rank:,.0f}** of {blind:,} under this model (exposure "
             f"{target.exposure:.1f} of {target.max_exposure:.1f} bits): an attacker following the model's ranking "
             f"needs {target.rank:,.0f} tries, one guessing blind about {blind // 2:,}.")
    if state.found:
        return f"Extracted in **{state.tries}** tries: the PIN was `{state.secret}`. {audit}"
    return f"Not found in {state.tries} tries: the PIN was `{state.secret}`. {audit}"

"""The one-run privacy audit of Steinke, Nasr and Jagielski (NeurIPS 2023), "Privacy Auditing with One
(1) Training Run" (arXiv:2305.08846): a sound empirical lower bound on a run's example-level ε.

**The experiment.** Before training, ``m`` canary windows of random tokens are drawn and each is
included in the training set by an independent fair coin flip, known only to the auditor
(:func:`make_audit_canaries`). The included ones are trained on like any other window; the others
never touch training. After training the auditor scores every canary (:func:`score_canaries`), guesses
"in" for the ``k₊`` highest scores, "out" for the ``k₋`` lowest and abstains on the rest, and counts
the ``W`` correct guesses among the ``r = k₊ + k₋`` made.

**Why it is sound for one run.** The coins are independent and fair, and adding or removing one
canary is adding or removing one training example, the neighbouring relation of the run's
(ε, δ)-DP guarantee (Opacus and dp-accounting account add/remove-one). Their main theorem then
bounds how well *any* guesser can do, whatever the scores: if training, as a function of the coins
with everything else fixed, is (ε, δ)-DP, then for every v

    P[W ≥ v] ≤ f_ε(v) := P[B ≥ v] + 2mδ · max_{i=1..v} P[v − i ≤ B < v] / i,   B ~ Binomial(r, e^ε/(1+e^ε))

(the p-value their Appendix D code computes). For δ = 0 the second term vanishes and W is
dominated by B: an ε-DP run is no better than randomised response on every canary.

What training must do for this to hold: draw the coins secretly (default: from the OS's CSPRNG),
append the included rows as ordinary training windows, and keep everything else independent of
the coins. In particular the sampling rate q and the noise multiplier σ should be fixed from a size
that does not depend on the coins (e.g. the real windows + m); if q = B/N is computed from the actual
N (real windows + included canaries), one coin can move N across a rounding step and change q and
σ, which the claimed ε (add/remove with N public) does not cover. That changes nothing visible at
these sizes, but it is the one place the audit's premise and the training differ.

**From W to ε.** Under (ε*, δ)-DP the run is also (ε, δ)-DP for every ε ≥ ε*, so
F_ε(v) = min_{ε' ≥ ε} f_{ε'}(v) bounds the tail too; it is non-decreasing in ε. The reported bound is
ε̂ = the largest ε with F_ε(W) ≤ α, α = 1 − confidence. If the true ε* were below ε̂, then
F_{ε*}(W) ≤ α, which happens with probability at most α (the usual p-value argument, which needs no
monotonicity in v). The minimum over ε' is taken on a grid (step 0.01, refined to 1e-4 around the
answer): a minimum over fewer points is larger, so the grid can only make ε̂ smaller — conservative,
never optimistic. For δ = 0, F = f (the Binomial tail grows with ε) and ε̂ is the root of
P[B ≥ W] = α to within 1e-4. W at or below chance gives ε̂ = 0.

**Choosing how many guesses.** Picking k₊, k₋ after looking at the scores and the coins would
overstate the bound. The guess counts are a fixed grid set before training (default
:data:`dpcore.audit.defaults.ONE_RUN_GUESS_FRACTIONS`: r = 4 %, 10 %, 20 %, 50 % and 100 % of m,
half "in", half "out"); each grid point is tested at α / (grid size) and the largest bound is
reported, so all of them hold together at the stated confidence (union bound).

**Beside it, the f-DP bound.** The same guesses also go through the f-DP bound of Mahloujifar, Melis
and Chaudhuri (2024), :mod:`dpcore.audit.fdp`, which uses a whole trade-off curve instead of one
(ε, δ) pair and certifies much more from the same count when the curve is Gaussian-shaped (with
500 of 1000 canaries guessed, all correct: ε ≈ 9.9 against 5.1 at 95 %, δ = 1e-5). Both are
reported (``epsilon_lower_bound``, ``epsilon_lower_bound_fdp``), each with its own union bound over the
guess grid. The bug alarm (:func:`claim_exceeded`) tests the claimed ε with both at once, each at half
the failure rate, so a correct run raises it at most 5 % of the time at 95 %.

**What it measures.** A black-box attacker with the final weights only: a lower bound on ε, far
below the claimed ε for a correct DP-SGD run (the paper reports the same for black-box audits),
near its ceiling for a run without privacy that memorises its canaries. A value above the claimed ε
would point to a bug.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import special, stats

from dpcore.audit.defaults import CONFIDENCE, ONE_RUN_GUESS_FRACTIONS, ONE_RUN_SHUFFLES
from dpcore.audit.fdp import DEFAULT_FAMILY, epsilon_lower_bound_fdp, fdp_ceiling
from dpcore.data.tokenizer import EOS_ID
from dpcore.errors import ConfigError

if TYPE_CHECKING:  # the bounds below need no torch: the dashboard's attack lab computes them
    import torch

    from dpcore.training.model import GRULanguageModel

#: Name of the attack in reports.
ATTACK_NAME = "one-run (Steinke et al. 2023)"
#: Name of the f-DP bound in reports.
FDP_ATTACK_NAME = "one-run f-DP (Mahloujifar et al. 2024)"
#: What each f-DP family assumes, in the words reports use.
FDP_FAMILY_WORDS = {
    "gaussian": "testing Gaussian trade-off curves (μ-GDP at the run's δ), the curve DP-SGD approaches",
    "approx": "testing the (ε, δ) trade-off curve, as sound as Steinke et al.'s for any (ε, δ)-DP run",
}
#: The first token id a canary may use (0, 1, 2 are PAD, UNK, EOS).
FIRST_TOKEN = 3
#: Scores: "loss" (default) or "calibrated" (see :func:`score_canaries`).
SCORES = ("loss", "calibrated")

_GRID_STEP = 0.01
_REFINE = 100


# ------------------------------------------------------------------------------ canaries
@dataclass
class AuditCanaries:
    """The audit's canary windows and its secret coins (``included[i]``: row i is trained on).

    ``rows`` is a LongTensor [m, seq_len + 1]; each row is ``EOS`` followed by ``seq_len`` random
    tokens, laid out like a data window. The coins stay out of ``repr`` (they are the audit's secret
    until training ends).
    """

    rows: torch.Tensor
    included: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        self.included = np.asarray(self.included, dtype=bool)
        if self.rows.ndim != 2 or len(self.included) != self.rows.shape[0]:
            raise ValueError(f"rows [{tuple(self.rows.shape)}] and included [{len(self.included)}] disagree")

    @property
    def m(self) -> int:
        return int(self.rows.shape[0])

    @property
    def num_included(self) -> int:
        return int(self.included.sum())

    def training_rows(self) -> torch.Tensor:
        """The included rows, to append to the training windows (in canary order)."""
        import torch

        return self.rows[torch.from_numpy(np.flatnonzero(self.included))]


def make_audit_canaries(vocab_size: int, seq_len: int, m: int, *,
                        rng: np.random.Generator | None = None) -> AuditCanaries:
    """``m`` canary windows of uniformly random tokens (ids ≥ 3) and ``m`` independent fair coins.

    Without ``rng`` both come from ``numpy.random.default_rng(secrets.randbits(128))``, a seed drawn
    from the OS's CSPRNG and never stored: the coins must be unknowable to training (and to anyone
    who could replay it) until the audit scores the model. Pass a seeded generator only in tests.
    """
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ConfigError(f"the number of audit canaries must be a positive whole number, got {m!r}")
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise ConfigError(f"the sequence length must be a positive whole number, got {seq_len!r}")
    if vocab_size <= FIRST_TOKEN:
        raise ConfigError(f"a vocabulary of {vocab_size} tokens has no ordinary token for canaries")
    import torch

    gen = rng if rng is not None else np.random.default_rng(secrets.randbits(128))
    tokens = gen.integers(FIRST_TOKEN, vocab_size, size=(m, seq_len))
    rows = np.concatenate([np.full((m, 1), EOS_ID), tokens], axis=1)
    included = gen.random(m) < 0.5
    return AuditCanaries(rows=torch.from_numpy(rows).long(), included=included)


# ------------------------------------------------------------------------------- scoring
def _shuffled(rows: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Each row's tokens after the leading EOS in an independent random order."""
    import torch

    out = rows.clone()
    body = out[:, 1:]
    keys = torch.from_numpy(rng.random(tuple(body.shape)))
    out[:, 1:] = body.gather(1, keys.argsort(dim=1))
    return out


def score_canaries(model: GRULanguageModel, canaries: AuditCanaries, *, method: str = "loss",
                   shuffles: int = ONE_RUN_SHUFFLES, seed: int = 0) -> np.ndarray:
    """Membership score of each canary (higher = more likely trained on).

    ``"loss"`` (default): minus the mean per-token loss of the window from a zero hidden state, PAD
    ignored, exactly as training computes it. ``"calibrated"``: the mean loss of ``shuffles`` copies of
    the window with its tokens in random order, minus the window's own loss; it cancels how cheap the
    window's tokens are in themselves and keeps what training on it taught, the order.

    Why the plain loss: canary tokens are uniform over the vocabulary, so their composition varies
    little, and after training on ~500 of them the model treats a canary context as "anything goes"
    (close to log V per token) unless it memorised that very window. Measured on the built-in corpus
    (m = 1000, 500 steps, guess grid of :func:`guess_grid`), the loss score certified more than the
    calibrated one both without privacy (ε ≥ 4.62 vs 3.34) and at ε = 8 (0.64 vs 0.50); the shuffles
    only add noise. The loss reduction versus the untrained model was not used either: an untrained
    model gives every token about the same loss (log V), so it calibrates nothing.

    The score is a function of the model and the public canary windows only (the shuffles use a
    generator seeded with ``seed``, independent of the coins), as the audit's theorem requires.
    """
    from dpcore.audit.membership import per_sequence_losses  # the loss as training computes it

    if method not in SCORES:
        raise ConfigError(f"the one-run score must be one of {', '.join(SCORES)}; got {method!r}")
    own = per_sequence_losses(model, canaries.rows)
    if method == "loss":
        return -own
    if shuffles < 1:
        raise ConfigError(f"the calibrated score needs at least one shuffle, got {shuffles!r}")
    rng = np.random.default_rng(seed)
    ref = np.mean([per_sequence_losses(model, _shuffled(canaries.rows, rng)) for _ in range(shuffles)], axis=0)
    return ref - own


# ---------------------------------------------------------------------------- the bound
def p_value(m: int, r: int, v: int, epsilon: float | np.ndarray, delta: float) -> Any:
    """Steinke et al.'s f_ε(v): a bound on P[W ≥ v] for an (ε, δ)-DP run (elementwise in ε).

    ``m`` canaries, ``r`` guesses, ``v`` correct. Their main theorem, computed as in their Appendix D:
    P[B ≥ v] + 2mδ · max_{1≤i≤v} P[v − i ≤ B < v]/i with B ~ Binomial(r, e^ε/(1+e^ε)).
    """
    _check_counts(m, r, v)
    if not 0.0 <= delta <= 1.0:
        raise ValueError(f"δ must be in [0, 1], got {delta!r}")
    eps = np.atleast_1d(np.asarray(epsilon, dtype=np.float64))
    q = special.expit(eps)
    tail = stats.binom.sf(v - 1, r, q)
    if delta > 0 and v > 0:
        ks = np.arange(v - 1, -1, -1)  # v−1, v−2, …, 0: the i-th partial sum is P[v − i ≤ B < v]
        pmf = stats.binom.pmf(ks[None, :], r, q[:, None])
        spread = np.max(np.cumsum(pmf, axis=1) / np.arange(1, v + 1)[None, :], axis=1)
        tail = tail + 2.0 * m * delta * spread
    out = np.minimum(tail, 1.0)
    return float(out[0]) if np.ndim(epsilon) == 0 else out


def _check_counts(m: int, r: int, v: int) -> None:
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 ≤ correct ≤ guesses ≤ canaries, got {v}, {r}, {m}")


def _ceiling(r: int, alpha: float) -> float:
    """ε above which even r correct guesses out of r could not reject (δ = 0): q^r > α."""
    q = alpha ** (1.0 / r)
    return float(special.logit(q)) if q < 1 else math.inf


def epsilon_lower_bound(m: int, r: int, v: int, *, delta: float, alpha: float) -> float:
    """ε̂: the largest ε with min_{ε' ≥ ε} f_{ε'}(v) ≤ α (see the module docstring); 0 if none.

    Holds with probability ≥ 1 − α: an (ε, δ)-DP run shows ε̂ > ε at most that often.
    """
    _check_counts(m, r, v)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"α must be in (0, 1), got {alpha!r}")
    if v == 0 or (v <= r / 2 and alpha < 0.5):  # at or below chance: f ≥ P[B ≥ v] ≥ 1/2 > α for all ε ≥ 0
        return 0.0
    top = _ceiling(r, alpha) + 2 * _GRID_STEP  # above it f ≥ P[B ≥ r] = q^r > α: nothing to find there
    grid = np.arange(0.0, top + _GRID_STEP, _GRID_STEP)
    f = p_value(m, r, v, grid, delta)
    running = np.minimum.accumulate(f[::-1])[::-1]  # min over grid points ≥ ε (≥ the true minimum)
    ok = np.flatnonzero(running <= alpha)
    if len(ok) == 0:
        return 0.0
    j = int(ok[-1])
    if j + 1 >= len(grid):
        return _floor(float(grid[j]))
    fine = np.linspace(grid[j], grid[j + 1], _REFINE + 1)[:-1]
    f_fine = p_value(m, r, v, fine, delta)
    later = running[j + 1]
    run_fine = np.minimum(np.minimum.accumulate(f_fine[::-1])[::-1], later)
    ok_fine = np.flatnonzero(run_fine <= alpha)
    return _floor(float(fine[ok_fine[-1]]) if len(ok_fine) else float(grid[j]))


def _floor(eps: float) -> float:
    """Rounded down to the refinement step (1e-4), so that printing it never rounds it up."""
    return math.floor(eps * 1e4 + 1e-9) / 1e4


def guess_grid(m: int, fractions: Sequence[float] = ONE_RUN_GUESS_FRACTIONS) -> list[tuple[int, int]]:
    """(k₊, k₋) per fraction f of the m canaries guessed: k₊ = k₋ = round(f·m/2) (at least 1); duplicates dropped."""
    out: list[tuple[int, int]] = []
    for f in fractions:
        if not 0.0 < f <= 1.0:
            raise ConfigError(f"a guessed fraction must be in (0, 1], got {f!r}")
        k = max(1, min(m // 2, round(f * m / 2)))
        if (k, k) not in out:
            out.append((k, k))
    return out


def count_correct(scores: np.ndarray, included: np.ndarray, k_plus: int, k_minus: int) -> int:
    """Correct guesses when the k₊ highest scores are guessed "in" and the k₋ lowest "out".

    Ties are broken by canary index (a stable sort), which is independent of the coins.
    """
    scores = np.asarray(scores, dtype=np.float64)
    included = np.asarray(included, dtype=bool)
    if k_plus < 0 or k_minus < 0 or k_plus + k_minus > len(scores):
        raise ConfigError(f"cannot guess {k_plus} in and {k_minus} out among {len(scores)} canaries")
    order = np.argsort(-scores, kind="stable")
    guessed_in = order[:k_plus]
    guessed_out = order[len(order) - k_minus:] if k_minus else order[:0]
    return int(included[guessed_in].sum() + (~included[guessed_out]).sum())


def one_run_bound(scores: np.ndarray, included: np.ndarray, *, delta: float, confidence: float = CONFIDENCE,
                  guesses: Sequence[tuple[int, int]] | None = None,
                  fdp_family: str = DEFAULT_FAMILY) -> dict[str, Any]:
    """The one-run ε lower bounds from scores and coins: each (k₊, k₋) tested at α/len(guesses), best kept.

    Two bounds on the same guesses, each with its own union bound over the grid: Steinke et al.'s
    (``epsilon_lower_bound``, sound for any (ε, δ)-DP run) and the f-DP bound of Mahloujifar et al.
    (``epsilon_lower_bound_fdp``, :mod:`dpcore.audit.fdp`, for the curve family ``fdp_family``; at δ = 0
    always the (ε, 0) curve).
    """
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"the confidence level must be in (0, 1), got {confidence!r}")
    if not 0.0 <= delta < 1.0:
        raise ConfigError(f"δ must be in [0, 1), got {delta!r}")
    m = len(scores)
    grid = list(guesses) if guesses is not None else guess_grid(m)
    if not grid:
        raise ConfigError("the one-run audit needs at least one (k₊, k₋) guess count")
    alpha = (1.0 - confidence) / len(grid)
    if delta == 0.0:  # μ-GDP is never (ε, 0)-DP: a pure-DP claim is tested with its own curve, f_{ε,0}
        fdp_family = "approx"
    tried = []
    for k_plus, k_minus in grid:
        r = k_plus + k_minus
        v = count_correct(scores, included, k_plus, k_minus)
        eps = epsilon_lower_bound(m, r, v, delta=delta, alpha=alpha)
        eps_fdp = epsilon_lower_bound_fdp(m, r, v, delta=delta, alpha=alpha, family=fdp_family)
        tried.append({"k_plus": k_plus, "k_minus": k_minus, "guesses": r, "correct": v, "epsilon": eps,
                      "epsilon_fdp": eps_fdp})
    best = max(tried, key=lambda t: (t["epsilon"], t["correct"] / t["guesses"]))
    best_fdp = max(tried, key=lambda t: (t["epsilon_fdp"], t["correct"] / t["guesses"]))
    r_max = max(t["guesses"] for t in tried)
    ceiling = max(epsilon_lower_bound(m, t["guesses"], t["guesses"], delta=delta, alpha=alpha) for t in tried)
    ceiling_fdp = max(fdp_ceiling(m, t["guesses"], delta=delta, alpha=alpha, family=fdp_family) for t in tried)
    # the bug alarm tests the claim with both bounds at once: each at α/2 (Bonferroni), so a correct run
    # raises it with probability at most 1 − confidence, not twice that
    alarm_alpha = alpha / 2
    alarm_level = {
        "alpha_per_test": alarm_alpha,
        "epsilon_lower_bound": max(epsilon_lower_bound(m, t["guesses"], t["correct"], delta=delta, alpha=alarm_alpha)
                                   for t in tried),
        "epsilon_lower_bound_fdp": max(epsilon_lower_bound_fdp(m, t["guesses"], t["correct"], delta=delta,
                                                               alpha=alarm_alpha, family=fdp_family) for t in tried),
    }
    return {
        "m": m,
        "num_included": int(np.asarray(included, dtype=bool).sum()),
        "guesses": best["guesses"],
        "correct": best["correct"],
        "k_plus": best["k_plus"],
        "k_minus": best["k_minus"],
        "epsilon_lower_bound": best["epsilon"],
        "confidence": confidence,
        "delta": delta,
        "alpha_per_guess_count": alpha,
        "max_certifiable": ceiling,
        "epsilon_lower_bound_fdp": best_fdp["epsilon_fdp"],
        "guesses_fdp": best_fdp["guesses"],
        "correct_fdp": best_fdp["correct"],
        "max_certifiable_fdp": ceiling_fdp,
        "fdp_family": fdp_family,
        "fdp_attack": FDP_ATTACK_NAME,
        "alarm_level": alarm_level,
        "tried": tried,
        "method": (
            f"{m} random canary windows, each trained on by a secret fair coin; the {len(grid)} guess counts "
            f"(k₊ = k₋ ∈ {{{', '.join(str(t['k_plus']) for t in tried)}}}) fixed before training, each tested at "
            f"α = {alpha:.3g} (union bound: {confidence:.0%} together); the bound of Steinke, Nasr & Jagielski "
            f"(2023) with δ = {delta:.3g}; with {r_max} guesses all correct the most it could show is "
            f"ε = {ceiling:.2f}; beside it the f-DP bound of Mahloujifar, Melis & Chaudhuri (2024) on the same "
            f"guesses ({FDP_FAMILY_WORDS[fdp_family]}), at most ε = {ceiling_fdp:.2f}"
        ),
    }


def one_run_audit(model: GRULanguageModel, canaries: AuditCanaries, *, delta: float,
                  confidence: float = CONFIDENCE, guesses: Sequence[tuple[int, int]] | None = None,
                  score: str = "loss", claimed: float | None = None,
                  scores: np.ndarray | None = None) -> dict[str, Any]:
    """Score the canaries under ``model`` and turn the guesses into the ε lower bound (JSON-ready).

    ``guesses``: the (k₊, k₋) pairs to try, fixed in advance (default :func:`guess_grid`); ``score``:
    see :func:`score_canaries`; ``claimed``: the run's ε, for the plain sentence and the bug alarm
    (``exceeds_claim``: the bounds above it, :func:`claim_exceeded`; ``alarm``: its sentence or None);
    ``scores``: already computed with ``score`` (the audit keeps them for the attack lab).
    """
    scores = scores if scores is not None else score_canaries(model, canaries, method=score)
    out = one_run_bound(scores, canaries.included, delta=delta, confidence=confidence, guesses=guesses)
    out["attack"] = ATTACK_NAME
    out["score"] = score
    out["claimed_epsilon"] = claimed
    out["exceeds_claim"] = claim_exceeded(out, claimed)
    out["alarm"] = alarm_sentence(out, claimed)
    out["plain"] = one_run_plain(out, claimed)
    return out


def claim_exceeded(res: dict[str, Any], claimed: float | None) -> list[str]:
    """The bounds (``"steinke"``, ``"fdp"``) of a one-run result that lie above the run's claimed ε.

    The alarm tests the claim with both bounds together: each at half the failure rate (``alarm_level``,
    Bonferroni), so a correctly implemented run (for the f-DP bound, one whose curve is at least that
    of its family) raises it with probability at most 1 − confidence in all, not that much per bound.
    A result without ``alarm_level`` (written before it existed) is read at its reported bounds.
    """
    if claimed is None or not math.isfinite(claimed):
        return []
    level = res.get("alarm_level") or res
    out = []
    if level.get("epsilon_lower_bound") is not None and level["epsilon_lower_bound"] > claimed:
        out.append("steinke")
    if level.get("epsilon_lower_bound_fdp") is not None and level["epsilon_lower_bound_fdp"] > claimed:
        out.append("fdp")
    return out


def alarm_sentence(res: dict[str, Any], claimed: float | None) -> str | None:
    """The bug alarm in one sentence, or None when no bound exceeds the claimed ε."""
    above = claim_exceeded(res, claimed)
    if not above:
        return None
    shown = {"steinke": f"Steinke et al.'s ε ≥ {res.get('epsilon_lower_bound', 0.0):.2f}",
             "fdp": f"the f-DP bound's ε ≥ {res.get('epsilon_lower_bound_fdp', 0.0):.2f}"}
    conf = float(res.get("confidence", CONFIDENCE))
    each = 1 - (1 - conf) / 2
    return (f"BUG ALARM: the audit proves more leakage than this run claims: {' and '.join(shown[a] for a in above)} "
            f"exceed{'s' if len(above) == 1 else ''} the claimed ε = {claimed:.2f}, each tested at {each:.1%}. "
            f"A correctly implemented DP run raises this alarm at most {1 - conf:.0%} of the time; do not trust the "
            f"claimed ε until the noise, clipping, sampling and accounting have been checked.")


def one_run_plain(res: dict[str, Any], claimed: float | None = None) -> str:
    """The bounds in plain sentences (the alarm first, when a bound exceeds the claim)."""
    head = (f"One-run audit (Steinke et al. 2023): {res['num_included']} of {res['m']} random canaries were "
            f"trained on, chosen by secret coin flips; guessing {res['guesses']} of them, the attacker got "
            f"{res['correct']} right ({res['correct'] / res['guesses']:.0%}, a coin gets 50%), which shows "
            f"ε ≥ {res['epsilon_lower_bound']:.2f} with {res['confidence']:.0%} confidence at δ = "
            f"{res['delta']:.2g} (at most {res['max_certifiable']:.2f} could be shown with this many canaries)")
    if res.get("epsilon_lower_bound_fdp") is not None:
        family = FDP_FAMILY_WORDS.get(str(res.get("fdp_family")), str(res.get("fdp_family")))
        head += (f". The f-DP bound (Mahloujifar et al. 2024) on the same guesses, {family}, shows "
                 f"ε ≥ {res['epsilon_lower_bound_fdp']:.2f} (guessing {res['guesses_fdp']}, "
                 f"{res['correct_fdp']} right; at most {res['max_certifiable_fdp']:.2f} could be shown)")
    alarm = alarm_sentence(res, claimed)
    lead = alarm + " " if alarm else ""
    if claimed is None or not math.isfinite(claimed):
        return lead + head + "; no ε is claimed for this run."
    return lead + head + f"; the run claims ε = {claimed:.2f}."

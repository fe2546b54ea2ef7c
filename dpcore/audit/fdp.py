"""The f-DP one-run audit of Mahloujifar, Melis and Chaudhuri (NeurIPS 2024), "Auditing f-Differential
Privacy in One Run" (arXiv:2410.22235): the same experiment as :mod:`dpcore.audit.one_run`, a bound that
uses the mechanism's whole trade-off curve instead of one (ε, δ) pair.

**The experiment** is Steinke et al.'s: m canaries, each trained on by an independent fair secret coin
S_i; after training the auditor guesses "in" or "out" on k of them (abstaining on the rest) and counts
the C correct guesses.

**The bound** (their main theorem for guessing adversaries, evaluated by their recursive numerical
procedure; re-derived here step by step so that each step can be checked). Let the mechanism be f-DP with
respect to one canary's inclusion, with blow-up β = 1 − f (concave, increasing) and inverse blow-up
b = β⁻¹ (:mod:`dpcore.privacy.tradeoff`). Write

    R_j = (1/m)·E[#correct guesses · 1{C ≥ j}],     H_j = (1/m)·E[#wrong guesses · 1{C ≥ j}].

* *One canary.* Fix i and condition on the other coins. The event "guess i is s and the other
  guesses have ≥ j − 1 correct" depends on the output and the other coins only, so under S_i = s vs
  S_i = −s (one canary added or removed) its probabilities obey P_s ≤ β(P_{−s}). Averaging over s,
  over the other coins and over i, with Jensen for the concave β: **R_j ≤ β(H_{j−1})**, i.e.
  H_{j−1} ≥ b(R_j) (a correct guess at level ≥ j is a wrong one at level ≥ j − 1 with the coin flipped).
* *Counting.* On {C = i} there are exactly i correct and k − i wrong guesses, so going one level
  down adds wrong mass H_i − H_{i+1} = (k − i)·P[C = i]/m and correct mass i/(k − i) times that;
  H_i ≥ H_{i+1}.
* *The end.* R_0 + H_0 = k/m: every one of the k guesses is right or wrong.

If P[C ≥ v] ≥ α, start at (r, h) = (α·v/m, α·(k − v)/m), step i = v − 1, …, 0 with the least
increase the constraints allow — h ← max(h, b(r)), r ← r + i/(k − i)·(h_new − h_old) — and let
(r₀, h₀) be the end. An induction on ρ = R − r and η = H − h (the invariants ρ ≥ i/(k − i)·η and
ρ + η ≥ 0 hold at the start, since all of C ≥ v has at least v/(k − v) correct per wrong guess, and
every step keeps them) gives R_0 + H_0 ≥ r₀ + h₀. So **r₀ + h₀ > k/m proves P[C ≥ v] < α**: the
observed count is a level-α rejection of "the run is f-DP". The same induction shows the rejection
is monotone in α and in the curve (a weaker claim, smaller b, is rejected less often), so
:func:`fdp_p_value` can bisect on α and :func:`epsilon_lower_bound_fdp` on ε.

**From a rejection to ε.** A family of curves f_ε, nested in ε, each "the run is f_ε-DP" claim
implying the run's ε at δ: the bound ε̂ is the largest ε whose claim the observed count rejects at α
(if the run were f_{ε*}-DP for some ε* < ε̂, the claim at ε* would have been rejected, which happens
with probability ≤ α). Two families, both at the run's δ:

* ``"gaussian"`` (the paper's): μ-GDP with μ = μ(ε, δ) (:func:`dpcore.privacy.tradeoff.gdp_mu`), the
  curve of a Gaussian mechanism with that (ε, δ). The bound holds for runs whose trade-off curve is
  at least Gaussian-shaped: DP-SGD's approaches a Gaussian curve as steps grow (Dong, Roth & Su 2019,
  Thm 3.4/3.5, the CLT), and a single Gaussian release is exactly one. It is the tighter bound: with
  k = 500 guesses among m = 1000 canaries, all correct, it can show up to ε ≈ 9.9 at 95 % (δ = 1e-5),
  where Steinke et al.'s bound stops at ≈ 5.1.
* ``"approx"``: the (ε, δ) curve f_{ε,δ} itself, below every (ε, δ)-DP mechanism's curve: sound for
  any run that is (ε, δ)-DP, like Steinke et al.'s bound (at δ = 0 the two coincide: both are the
  Binomial tail of randomised response).

The bisection on ε returns a point where the rejection was verified (the lower end of the final
bracket, rounded down to 1e-4), so the reported ε̂ is never above what was checked.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

from scipy import special

from dpcore.errors import ConfigError

#: The trade-off families the f-DP bound can test.
FDP_FAMILIES = ("gaussian", "approx")
#: The family audit.json reports as ``epsilon_lower_bound_fdp``.
DEFAULT_FAMILY = "gaussian"

InverseBlowup = Callable[[float], float]

_EPS_TOL = 1e-5
_EPS_MAX = 200.0


def _check(m: int, k: int, v: int) -> None:
    if not 0 <= v <= k <= m or m < 1:
        raise ValueError(f"need 0 ≤ correct ≤ guesses ≤ canaries and canaries ≥ 1, got {v}, {k}, {m}")


def fdp_slack(m: int, k: int, v: int, alpha: float, inverse_blowup: InverseBlowup) -> float:
    """r₀ + h₀ − k/m of the recursion in the module docstring: > 0 means P[C ≥ v] < α under the curve."""
    _check(m, k, v)
    r, h = alpha * v / m, alpha * (k - v) / m
    for i in range(v - 1, -1, -1):
        h_new = max(h, float(inverse_blowup(min(r, 1.0))))
        if h_new == h:  # nothing moves again: b(r) ≤ h and r, h stay as they are
            break
        r = min(r + i / (k - i) * (h_new - h), 1.0)
        h = h_new
    return r + h - k / m


def fdp_rejects(m: int, k: int, v: int, alpha: float, inverse_blowup: InverseBlowup) -> bool:
    """True when ≥ v correct of k guesses among m canaries has probability < α under the f-DP claim."""
    return fdp_slack(m, k, v, alpha, inverse_blowup) > 0.0


def fdp_p_value(m: int, k: int, v: int, inverse_blowup: InverseBlowup, *, tol: float = 1e-7) -> float:
    """An upper bound on P[C ≥ v] for an f-DP run: the least α the recursion rejects (bisection; 1 if none).

    The bisection keeps the upper end, where rejection was verified, so the value is never too small.
    """
    _check(m, k, v)
    if v == 0 or not fdp_rejects(m, k, v, 1.0, inverse_blowup):
        return 1.0
    lo, hi = 0.0, 1.0
    while hi - lo > tol * max(hi, 1e-300) and hi > 1e-300:
        mid = (lo + hi) / 2.0
        if fdp_rejects(m, k, v, mid, inverse_blowup):
            hi = mid
        else:
            lo = mid
    return hi


@lru_cache(maxsize=8192)
def _gaussian_b(epsilon: float, delta: float) -> InverseBlowup:
    from dpcore.privacy.tradeoff import gdp_mu

    mu = gdp_mu(epsilon, delta)
    if math.isinf(mu):
        return lambda y: 0.0 if y < 1.0 else 1.0
    return lambda y: float(special.ndtr(special.ndtri(y) - mu))


def family_inverse_blowup(family: str, epsilon: float, delta: float) -> InverseBlowup:
    """b for the claim "the run is f_ε-DP" in ``family`` (see the module docstring) at δ."""
    if family == "gaussian":
        return _gaussian_b(float(epsilon), float(delta))
    if family == "approx":
        e_neg, e_pos = math.exp(-epsilon), math.exp(epsilon)
        return lambda y: min(y, max(0.0, (y - delta) * e_neg, 1.0 - delta - (1.0 - y) * e_pos))
    raise ConfigError(f"the f-DP family must be one of {', '.join(FDP_FAMILIES)}, got {family!r}")


def epsilon_lower_bound_fdp(m: int, k: int, v: int, *, delta: float, alpha: float,
                            family: str = DEFAULT_FAMILY) -> float:
    """ε̂: the largest ε whose f_ε-DP claim (``family``, at δ) the count v of k rejects at level α; 0 if none.

    Takes the inputs of :func:`dpcore.audit.one_run.epsilon_lower_bound` (m canaries, k guesses, v
    correct, δ, α = 1 − confidence). Holds with probability ≥ 1 − α for a run that is f_{ε}-DP.
    """
    _check(m, k, v)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"α must be in (0, 1), got {alpha!r}")
    if not 0.0 <= delta < 1.0 or (family == "gaussian" and delta <= 0.0):
        raise ValueError(f"δ must be in {'(0' if family == 'gaussian' else '[0'}, 1) for the {family} family, "
                         f"got {delta!r}")
    if v == 0 or 2 * v <= k:  # at or below chance: h ≥ r ≥ b(r) from the start, nothing is rejected at any ε
        return 0.0

    def rejected(eps: float) -> bool:
        return fdp_rejects(m, k, v, alpha, family_inverse_blowup(family, eps, delta))

    if not rejected(0.0):
        return 0.0
    lo, hi = 0.0, 1.0
    while rejected(hi):
        lo, hi = hi, hi * 2.0
        if hi > _EPS_MAX:
            return _floor(lo)
    while hi - lo > _EPS_TOL:
        mid = (lo + hi) / 2.0
        if rejected(mid):
            lo = mid
        else:
            hi = mid
    return _floor(lo)


def fdp_ceiling(m: int, k: int, *, delta: float, alpha: float, family: str = DEFAULT_FAMILY) -> float:
    """The most the f-DP bound can show with k guesses among m canaries: all k correct."""
    return epsilon_lower_bound_fdp(m, k, k, delta=delta, alpha=alpha, family=family)


def _floor(eps: float) -> float:
    """Rounded down to 1e-4, so that printing it never rounds it up."""
    return math.floor(eps * 1e4 + 1e-9) / 1e4

"""ε from noise and noise from ε, for Poisson-sampled Gaussian and Laplace DP-SGD.

Three accountants, all giving upper bounds on ε at a fixed δ:

* ``rdp`` — Rényi DP of the sampled Gaussian mechanism (Gaussian); looser but always valid, cheap.
  The arithmetic is Opacus's (``opacus/accountants/analysis/rdp.py``), ported below so that it
  needs numpy and scipy only: Opacus's package ``__init__`` imports torch, and this module runs in
  the dashboard process on every form change. Same orders, same RDP → (ε, δ) conversion, same
  numbers (``tests/privacy/test_accounting.py`` pins them against Opacus to 1e-9 relative).
* ``prv`` — Opacus's PRV accountant (Gaussian), tight; falls back to RDP when it cannot
  compute (very large ε or tiny σ) and says so. It is the one accountant here that imports
  Opacus, hence torch (seconds and hundreds of MB, once per process): only when it is used.
* ``pld`` — dp-accounting's privacy-loss-distribution accountant, tight; the only one here
  that handles Poisson-sampled **Laplace**. Pure numpy/scipy.

GDP (a CLT approximation that can underestimate ε) is deliberately not offered.

**Neighbours.** All three bound ε for *add or remove one* training sequence, with the number of
sequences N (hence q) treated as public — the app shows N. :func:`epsilon_replace_one` gives the ε
that holds without that assumption, for *replacing* one sequence by another (PLD with dp-accounting's
``REPLACE_ONE`` relation for Gaussian; group privacy over a removal and an addition for Laplace,
which dp-accounting does not support for Poisson-sampled Laplace). It is about twice as large.
Every function is pure: the ε of a run is recomputed from its (noise, q, steps) history, which
also avoids the PLD slowdown of composing one step at a time.
"""

from __future__ import annotations

import bisect
import math
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from dpcore.errors import ConfigError
from dpcore.privacy.rdp_vec import rdp_table
from dpcore.privacy.registry import PLD, RDP, accountant_of, looser_instant_accountant, private_mechanism_of

MAX_NOISE = 1e4
PLD_INTERVAL = 1e-4  # dp-accounting's default value_discretization_interval, used by every PLD here
MIN_NOISE = 0.05  # below this the accountants are slow or unstable, and ε is huge anyway


# ------------------------------------------------------------------------------- RDP (torch-free)
# Ported from Opacus 1.6.0, opacus/accountants/analysis/rdp.py and opacus/accountants/rdp.py
# (Copyright (c) Meta Platforms, Inc. and affiliates; Apache License 2.0; itself based on Google's
# TF Privacy rdp_accountant.py). Kept operation for operation so the floats match Opacus's; only the
# package layout changed (Opacus's ``__init__`` imports torch) and the "optimal order is at the
# edge" warning was dropped (the bound is valid either way, and callers silenced it).

#: Opacus's ``RDPAccountant.DEFAULT_ALPHAS``.
RDP_ORDERS: tuple[float, ...] = tuple([1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)))


def _log_add(logx: float, logy: float) -> float:
    """log(exp(logx) + exp(logy))."""
    a, b = min(logx, logy), max(logx, logy)
    if a == -np.inf:  # adding 0
        return b
    return math.log1p(math.exp(a - b)) + b


def _log_sub(logx: float, logy: float) -> float:
    """log(exp(logx) - exp(logy)), for logx ≥ logy."""
    if logx < logy:
        raise ValueError("The result of subtraction must be non-negative.")
    if logy == -np.inf:  # subtracting 0
        return logx
    if logx == logy:
        return -np.inf  # 0 in log space
    try:
        return math.log(math.expm1(logx - logy)) + logy
    except OverflowError:
        return logx


def _log_erfc(x: float) -> float:
    return math.log(2) + special.log_ndtr(-x * 2**0.5)


def _log_a_int(q: float, sigma: float, alpha: int) -> float:
    """log A_α for integer α (Mironov, Talwar, Zhang 2019, section 3.3)."""
    log_a = -np.inf
    for i in range(alpha + 1):
        log_coef_i = math.log(special.binom(alpha, i)) + i * math.log(q) + (alpha - i) * math.log(1 - q)
        s = log_coef_i + (i * i - i) / (2 * (sigma**2))
        log_a = _log_add(log_a, s)
    return float(log_a)


def _log_a_frac(q: float, sigma: float, alpha: float) -> float:
    """log A_α for fractional α: two series, over (-∞, z0] and [z0, ∞)."""
    log_a0, log_a1 = -np.inf, -np.inf
    i = 0
    z0 = sigma**2 * math.log(1 / q - 1) + 0.5
    while True:
        coef = special.binom(alpha, i)
        log_coef = math.log(abs(coef))
        j = alpha - i
        log_t0 = log_coef + i * math.log(q) + j * math.log(1 - q)
        log_t1 = log_coef + j * math.log(q) + i * math.log(1 - q)
        log_e0 = math.log(0.5) + _log_erfc((i - z0) / (math.sqrt(2) * sigma))
        log_e1 = math.log(0.5) + _log_erfc((z0 - j) / (math.sqrt(2) * sigma))
        log_s0 = log_t0 + (i * i - i) / (2 * (sigma**2)) + log_e0
        log_s1 = log_t1 + (j * j - j) / (2 * (sigma**2)) + log_e1
        if coef > 0:
            log_a0 = _log_add(log_a0, log_s0)
            log_a1 = _log_add(log_a1, log_s1)
        else:
            log_a0 = _log_sub(log_a0, log_s0)
            log_a1 = _log_sub(log_a1, log_s1)
        i += 1
        if max(log_s0, log_s1) < -30:
            break
    return _log_add(log_a0, log_a1)


def _rdp_one(q: float, sigma: float, alpha: float) -> float:
    """RDP of one step of the sampled Gaussian mechanism at order α (may be inf)."""
    if q == 0:
        return 0
    if sigma == 0:
        return np.inf
    if q == 1.0:
        return alpha / (2 * sigma**2)
    if np.isinf(alpha):
        return np.inf
    log_a = _log_a_int(q, sigma, int(alpha)) if float(alpha).is_integer() else _log_a_frac(q, sigma, alpha)
    return log_a / (alpha - 1)


def compute_rdp_reference(*, q: float, noise_multiplier: float, steps: int,
                          orders: Sequence[float] = RDP_ORDERS) -> np.ndarray:
    """Opacus's ``compute_rdp``, loop for loop: the reference :func:`compute_rdp` is tested against."""
    return np.array([_rdp_one(q, noise_multiplier, order) for order in orders]) * steps


def compute_rdp(*, q: float, noise_multiplier: float, steps: int,
                orders: Sequence[float] = RDP_ORDERS) -> np.ndarray:
    """RDP of ``steps`` compositions of the Poisson-sampled Gaussian mechanism, one value per order.

    Opacus's ``compute_rdp`` (see the comment above), with Opacus's default orders, evaluated with
    numpy arrays (:mod:`dpcore.privacy.rdp_vec`): 10–30× faster than the loop at the σ DP-SGD uses,
    the same ε to ~1e-11 relative.
    """
    return rdp_table(q, [noise_multiplier], orders, _log_a_frac)[0] * steps


def rdp_to_epsilon(*, rdp: np.ndarray, delta: float, orders: Sequence[float] = RDP_ORDERS) -> float:
    """The smallest ε over the orders at ``delta``, by Balle et al. (2020), Theorem 21.

    Opacus's ``get_privacy_spent``: ε = rdp − (log δ + log α)/(α − 1) + log((α − 1)/α).
    dp-accounting's ``rdp.compute_epsilon`` writes the same bound differently but adds a KL shortcut
    (ε = 0 when δ² > 1 − e^−rdp) and a clamp at 0, its default orders add 11 and 128–1024, and its
    sampled-Gaussian RDP is its own arithmetic: its ε differs in the third or fourth digit (16.38
    against Opacus's 16.34 for q = 0.01, σ = 0.8, 20,000 steps, δ = 1e-5). This one matches Opacus,
    whose RDP the runs reported before.
    """
    orders_vec = np.atleast_1d(np.asarray(orders, dtype=float))
    rdp_vec = np.atleast_1d(rdp)
    if len(orders_vec) != len(rdp_vec):
        raise ValueError("orders and rdp must have the same length")
    with np.errstate(invalid="ignore"):
        eps = rdp_vec - (np.log(delta) + np.log(orders_vec)) / (orders_vec - 1) + np.log(
            (orders_vec - 1) / orders_vec)
    if np.isnan(eps).all():  # no privacy
        return math.inf
    return float(eps[np.nanargmin(eps)])


@dataclass(frozen=True)
class EpsilonResult:
    epsilon: float
    accountant: str  # the accountant actually used (differs from the requested one after a fallback)
    note: str = ""


def _check(mechanism: str, noise: float, sample_rate: float, steps: int, delta: float, accountant: str) -> None:
    """Refuse, with one sentence, what no accountant here can bound (an unknown name included)."""
    mech = private_mechanism_of(mechanism)
    accountant_of(accountant)
    allowed = mech.allowed_accountants()
    if accountant not in allowed:
        raise ConfigError(f"{mech.accountant_reason}: use --accountant {allowed[0]}")
    if not (isinstance(noise, (int, float)) and math.isfinite(noise) and noise > 0):
        raise ConfigError(f"noise multiplier must be a positive number, got {noise!r}")
    if not (0.0 < sample_rate <= 1.0):
        raise ConfigError(f"sample rate must be in (0, 1], got {sample_rate!r}")
    if not isinstance(steps, int) or steps < 0:
        raise ConfigError(f"steps must be a non-negative whole number, got {steps!r}")
    if not (0.0 < delta < 1.0):
        raise ConfigError(f"δ (delta) must be between 0 and 1 exclusive, got {delta!r}")


def _dp_event(mechanism: str, noise: float, sample_rate: float, steps: int) -> Any:
    """The run as one dp-accounting event: the mechanism's own step, Poisson-sampled, composed ``steps`` times."""
    import dp_accounting as dpa  # scipy underneath: only when PLD is used

    base = private_mechanism_of(mechanism).dp_event(noise)
    event = base if sample_rate >= 1.0 else dpa.PoissonSampledDpEvent(sample_rate, base)
    return dpa.SelfComposedDpEvent(event, steps)


def _pld_epsilon(mechanism: str, noise: float, sample_rate: float, steps: int, delta: float,
                 replace_one: bool = False) -> float:
    import dp_accounting as dpa  # scipy underneath: only when PLD is used
    from dp_accounting import pld

    relation = (dpa.NeighboringRelation.REPLACE_ONE if replace_one
                else dpa.NeighboringRelation.ADD_OR_REMOVE_ONE)
    accountant = pld.PLDAccountant(neighboring_relation=relation)
    accountant.compose(_dp_event(mechanism, noise, sample_rate, steps))
    return float(accountant.get_epsilon(delta))


def _sampled_pld(mechanism: str, noise: float, sample_rate: float) -> Any:
    """The privacy loss distribution of ONE Poisson-sampled step, built as ``PLDAccountant`` builds it.

    Building it is most of a PLD evaluation's cost; composing it ``t`` times is the rest. A curve of
    ε over many step counts at one noise builds it once (:class:`EpsilonCurve`), and gets the very
    floats :func:`_pld_epsilon` gets (``tests/privacy/test_calibration.py`` pins the equality). The
    mechanism builds its own distribution (:meth:`~dpcore.privacy.registry.Mechanism.sampled_pld`).
    """
    return private_mechanism_of(mechanism).sampled_pld(noise, sample_rate, PLD_INTERVAL)


def _pld_epsilon_of(one_step, steps: int, delta: float) -> float:
    from dp_accounting.pld import privacy_loss_distribution as pld_lib

    composed = pld_lib.identity(value_discretization_interval=PLD_INTERVAL).compose(one_step.self_compose(steps))
    return float(composed.get_epsilon_for_delta(delta))


def _rdp_epsilon(noise: float, sample_rate: float, steps: int, delta: float) -> float:
    """What Opacus's ``RDPAccountant`` with history ``[(noise, q, steps)]`` reports, without torch."""
    return rdp_to_epsilon(rdp=compute_rdp(q=sample_rate, noise_multiplier=noise, steps=steps), delta=delta)


def _prv_epsilon(noise: float, sample_rate: float, steps: int, delta: float) -> float:
    from opacus.accountants import PRVAccountant  # imports torch: only when PRV is chosen

    acc = PRVAccountant()
    acc.history = [(noise, sample_rate, steps)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eps = float(acc.get_epsilon(delta))
    if not math.isfinite(eps) or eps < 0:
        raise ArithmeticError(f"PRV returned {eps}")
    return eps


# ------------------------------------------------------------------------------- the accountants
class AccountantMath:
    """One accountant's arithmetic: ε of a run, and ε after each step of a run (its curve).

    Registered by name in :mod:`dpcore.privacy.registry` (``Accountant.implementation``), which is
    where the pages and the config learn that it exists; :func:`epsilon_spent` and
    :class:`EpsilonCurve` reach it only through the registry, so an unknown accountant raises.
    """

    name = ""

    def epsilon(self, mechanism: str, noise: float, sample_rate: float, steps: int, delta: float) -> EpsilonResult:
        """ε after ``steps`` steps (at least one), inputs already checked."""
        raise NotImplementedError

    def step_curve(self, mechanism: str, noise: float, sample_rate: float, delta: float) -> StepCurve:
        """ε as a function of the number of steps at fixed (noise, q); by default one evaluation per call."""
        return StepCurve(lambda steps: compute_epsilon(mechanism, noise, sample_rate, steps, delta, self.name))


@dataclass(frozen=True)
class StepCurve:
    """ε after ``steps`` steps, as a function; ``every_step``: cheap enough to be exact at every step."""

    at: Callable[[int], float]
    every_step: bool = False


class RdpMath(AccountantMath):
    """Rényi DP of the sampled Gaussian (Opacus's arithmetic, torch-free): composes linearly per order."""

    name = "rdp"

    def epsilon(self, mechanism: str, noise: float, sample_rate: float, steps: int, delta: float) -> EpsilonResult:
        return EpsilonResult(_rdp_epsilon(noise, sample_rate, steps, delta), self.name)

    def step_curve(self, mechanism: str, noise: float, sample_rate: float, delta: float) -> StepCurve:
        one = compute_rdp(q=sample_rate, noise_multiplier=noise, steps=1)
        return StepCurve(lambda steps: rdp_to_epsilon(rdp=one * steps, delta=delta), every_step=True)


class PrvMath(AccountantMath):
    """Opacus's PRV accountant; falls back to the (valid, looser) RDP bound where it cannot compute."""

    name = "prv"

    def epsilon(self, mechanism: str, noise: float, sample_rate: float, steps: int, delta: float) -> EpsilonResult:
        try:
            return EpsilonResult(_prv_epsilon(noise, sample_rate, steps, delta), self.name)
        except Exception as err:  # PRV's FFT domain can fail at tiny σ / huge ε; RDP is a valid bound
            eps = _rdp_epsilon(noise, sample_rate, steps, delta)
            return EpsilonResult(eps, RDP.name, f"PRV could not compute ({type(err).__name__}); RDP bound shown")


class PldMath(AccountantMath):
    """dp-accounting's PLD of the mechanism's own event; a curve builds the one-step PLD once."""

    name = "pld"

    def epsilon(self, mechanism: str, noise: float, sample_rate: float, steps: int, delta: float) -> EpsilonResult:
        return EpsilonResult(_pld_epsilon(mechanism, noise, sample_rate, steps, delta), self.name)

    def step_curve(self, mechanism: str, noise: float, sample_rate: float, delta: float) -> StepCurve:
        if sample_rate >= 1.0:
            return super().step_curve(mechanism, noise, sample_rate, delta)
        built: list[Any] = []

        def at(steps: int) -> float:
            if not built:  # built on first use, once
                built.append(_sampled_pld(mechanism, noise, sample_rate))
            return _pld_epsilon_of(built[0], steps, delta)

        return StepCurve(at)


def _math(accountant: str) -> AccountantMath:
    return accountant_of(accountant).math()


def epsilon_spent(
    mechanism: str, noise: float, sample_rate: float, steps: int, delta: float, accountant: str = RDP.name
) -> EpsilonResult:
    """ε after ``steps`` Poisson-sampled steps with noise multiplier ``noise`` (σ or λ), by ``accountant``."""
    _check(mechanism, noise, sample_rate, steps, delta, accountant)
    if steps == 0:
        return EpsilonResult(0.0, accountant)
    return _math(accountant).epsilon(mechanism, noise, sample_rate, steps, delta)


def epsilon_replace_one(mechanism: str, noise: float, sample_rate: float, steps: int,
                        delta: float) -> EpsilonResult:
    """ε at ``delta`` for replace-one neighbours (N need not be public), from dp-accounting's PLD.

    Gaussian: PLD with ``NeighboringRelation.REPLACE_ONE``. Laplace: dp-accounting refuses that
    relation for Poisson-sampled Laplace, so group privacy over one removal and one addition is used
    instead: (ε, δ′) for add/remove gives (2ε, (1 + e^ε)·δ′) for replace-one, with δ′ chosen so that
    (1 + e^ε)·δ′ ≤ ``delta``. Both are upper bounds.
    """
    _check(mechanism, noise, sample_rate, steps, delta, PLD.name)
    if steps == 0:
        return EpsilonResult(0.0, PLD.name)
    if private_mechanism_of(mechanism).replace_one_pld:
        return EpsilonResult(_pld_epsilon(mechanism, noise, sample_rate, steps, delta, replace_one=True), PLD.name,
                             "replace-one neighbours (PLD)")

    def spent(inner: float) -> tuple[float, float]:  # (ε for add/remove at inner, the δ it implies)
        eps = _pld_epsilon(mechanism, noise, sample_rate, steps, inner)
        return eps, (1.0 + math.exp(min(eps, 700.0))) * inner

    # (1 + e^ε(δ′))·δ′ grows with δ′: bisect (on log δ′) for the largest δ′ that keeps it ≤ delta.
    lo, hi = math.log(delta) - 80.0, math.log(delta / 2.0)
    best = None
    eps_lo, implied = spent(math.exp(lo))
    if implied <= delta:
        best = eps_lo
        for _ in range(30):
            mid = (lo + hi) / 2.0
            eps_mid, implied = spent(math.exp(mid))
            if implied <= delta:
                lo, best = mid, eps_mid
            else:
                hi = mid
    if best is None:
        return EpsilonResult(math.inf, PLD.name, "replace-one: no finite bound at this δ (group privacy)")
    return EpsilonResult(2.0 * best, PLD.name, "replace-one neighbours by group privacy over remove + add (PLD)")


def compute_epsilon(
    mechanism: str, noise: float, sample_rate: float, steps: int, delta: float, accountant: str = RDP.name
) -> float:
    """:func:`epsilon_spent`'s ε alone (what calibration and the caches compare)."""
    return epsilon_spent(mechanism, noise, sample_rate, steps, delta, accountant).epsilon


#: What a set of exact ε values belongs to: (mechanism, q, steps, δ, accountant); only the noise varies.
Setting = tuple[str, float, int, float, str]


class KnownEpsilons:
    """Exact ε values already computed for one :data:`Setting`, {noise: ε}, safe across threads.

    A new target for the same settings (the New run form's ε slider) starts from the tightest known
    bracket instead of from scratch. The values are the accountant's own, never interpolated. The
    process keeps them in :mod:`dpcore.privacy.calcache`, with the σ it calibrated; a bare
    :func:`calibrate_noise` call keeps them for its own search only.
    """

    LIMIT = 512  # values per setting (cleared past this)

    def __init__(self) -> None:
        self._values: dict[float, float] = {}
        self._lock = threading.Lock()

    def get(self, noise: float) -> float | None:
        with self._lock:
            return self._values.get(noise)

    def put(self, noise: float, epsilon: float) -> None:
        with self._lock:
            if len(self._values) >= self.LIMIT:
                self._values.clear()
            self._values[noise] = epsilon

    def bracket(self, target: float) -> tuple[float | None, float | None]:
        """(largest known noise with ε > target, smallest known noise with ε ≤ target); None if unknown."""
        with self._lock:
            items = list(self._values.items())
        above = [n for n, e in items if e > target]
        within = [n for n, e in items if e <= target]
        lo, hi = (max(above) if above else None), (min(within) if within else None)
        if lo is not None and hi is not None and lo >= hi:  # not monotone here (a fallback): trust neither
            return None, None
        return lo, hi


def _fresh_memo() -> Callable[[Setting], KnownEpsilons]:
    """Per-call memory: each setting's values kept for one calibration (and its RDP bracket) only."""
    memo: dict[Setting, KnownEpsilons] = {}
    return lambda setting: memo.setdefault(setting, KnownEpsilons())


def calibrate_noise(
    mechanism: str,
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: str = RDP.name,
    tolerance: float = 0.005,
    known: Callable[[Setting], KnownEpsilons] | None = None,
) -> float:
    """Smallest noise multiplier (to ``tolerance`` in ε) whose ε over ``steps`` is ≤ target.

    Every ε that decides the answer comes from the *same* accountant that will report the run's ε,
    so the reported value never exceeds the target because of an accountant mismatch; the answer
    σ always has ε(σ) ≤ target by that accountant, and either ε(σ) ≥ (1 − tolerance)·target or σ
    is within 0.01 % of a noise whose ε exceeds the target (or below :data:`MIN_NOISE`).

    The search: a bracket [lo, hi] with ε(lo) > target ≥ ε(hi), then false position on
    (log σ, log ε), which is nearly a straight line, aimed just inside the tolerance window and
    guarded by bisection. For PRV and PLD the bracket comes from RDP (cheap, looser, so its σ is an
    upper end; the tight σ is 4–10 % lower, up to ~27 % for a small ε over few steps), and values
    already computed for the same settings are reused, so a tight calibration needs about 4–6 costly
    evaluations instead of 12–15. ``known`` gives those values per setting (the process's store is
    :func:`dpcore.privacy.calcache.calibrate_noise`'s); without it they last for this call only, which
    keeps this function pure.
    """
    if not (isinstance(target_epsilon, (int, float)) and math.isfinite(target_epsilon) and target_epsilon > 0):
        raise ConfigError(f"target ε must be a positive number, got {target_epsilon!r}")
    _check(mechanism, 1.0, sample_rate, max(steps, 0), delta, accountant)
    if steps <= 0:
        raise ConfigError("calibration needs at least one step")
    memo = known if known is not None else _fresh_memo()
    points = memo((mechanism, float(sample_rate), int(steps), float(delta), accountant))

    def eps(noise: float) -> float:
        value = points.get(noise)
        if value is None:
            value = compute_epsilon(mechanism, noise, sample_rate, steps, delta, accountant)
            points.put(noise, value)
        return value

    def unreachable() -> ConfigError:
        return ConfigError(
            f"ε = {target_epsilon:g} cannot be reached with δ = {delta:g} over {steps} steps at "
            f"sample rate {sample_rate:.3g}: lower the steps, raise ε or use more data"
        )

    lo, hi = points.bracket(target_epsilon)
    if hi is None:
        quick = looser_instant_accountant(mechanism, accountant)
        if quick is not None:
            # an instant accountant (RDP) is cheap at any σ (PRV and PLD get very slow at tiny σ) and, being
            # looser, its σ is an upper end for the tight accountants too.
            hi = calibrate_noise(mechanism, target_epsilon, delta, sample_rate, steps, quick, tolerance, memo)
            while eps(hi) > target_epsilon:  # the tight accountant disagrees with RDP: widen
                hi *= 1.5
                if hi > MAX_NOISE:
                    raise unreachable()
            lo = lo if lo is not None else hi / 1.1  # the tight σ is mostly 4–10 % below RDP's
        else:
            hi = lo * 1.5 if lo is not None else 1.0
            while eps(hi) > target_epsilon:
                lo, hi = hi, hi * 2.0
                if hi > MAX_NOISE:
                    raise unreachable()
    if lo is None:
        lo = hi / 1.5
    while eps(lo) <= target_epsilon:
        hi, lo = lo, lo / 1.5
        if lo < MIN_NOISE:
            return hi
    bisect_next, rounds = False, 0
    aim = math.log(target_epsilon * (1.0 - tolerance / 2.0))
    while hi / lo > 1.0 + 1e-4 and target_epsilon - eps(hi) > tolerance * target_epsilon:
        e_lo, e_hi = eps(lo), eps(hi)
        mid = math.sqrt(lo * hi)
        rounds += 1
        if not bisect_next and rounds % 4 and math.isfinite(e_lo) and e_hi > 0:
            x_lo, x_hi = math.log(lo), math.log(hi)
            y_lo, y_hi = math.log(e_lo), math.log(e_hi)
            if y_lo > y_hi:
                t = (y_lo - aim) / (y_lo - y_hi)
                t = min(max(t, 0.02), 0.98)  # never at an end of the bracket
                mid = math.exp(x_lo + t * (x_hi - x_lo))
        e = eps(mid)
        if e > target_epsilon:
            lo = mid
            bisect_next = not bisect_next  # aimed from the high side and missed: halve next time
        else:
            hi = mid
            bisect_next = False
    return hi


class EpsilonCurve:
    """ε spent after each step of a run with fixed (noise, q), as an upper bound at every step.

    RDP composes linearly in the RDP domain, so ε is exact at every step for almost no cost.
    PRV and PLD are evaluated on a grid of steps; between grid points the next grid value is
    reported, which upper-bounds the true ε because ε grows with the number of steps. PLD builds
    the distribution of one step once and composes it per grid point (2–4× faster, same floats).
    """

    def __init__(
        self, mechanism: str, noise: float, sample_rate: float, delta: float, accountant: str,
        total_steps: int, grid_points: int = 40,
    ) -> None:
        _check(mechanism, noise, sample_rate, total_steps, delta, accountant)
        self.mechanism, self.noise, self.sample_rate = mechanism, noise, sample_rate
        self.delta, self.accountant, self.total_steps = delta, accountant, total_steps
        self._cache: dict[int, float] = {0: 0.0}
        self._step = _math(accountant).step_curve(mechanism, noise, sample_rate, delta)
        n = max(1, min(grid_points, total_steps))
        self.grid = sorted({max(1, round(total_steps * (i + 1) / n)) for i in range(n)})

    def _exact(self, step: int) -> float:
        if step not in self._cache:
            self._cache[step] = self._step.at(step)
        return self._cache[step]

    def at(self, step: int) -> float:
        """An upper bound on ε after ``step`` steps (exact for RDP and at grid points)."""
        if step <= 0:
            return 0.0
        if self._step.every_step or step > self.total_steps:
            return self._exact(step)
        i = bisect.bisect_left(self.grid, step)
        return self._exact(self.grid[i])

    def final(self, steps_run: int) -> EpsilonResult:
        """The exact ε for the steps actually run (what a run reports at its end)."""
        return epsilon_spent(self.mechanism, self.noise, self.sample_rate, steps_run, self.delta, self.accountant)

    def predicted(self, points: int = 50) -> list[tuple[int, float]]:
        """(step, ε) pairs over the planned steps, for the 'what does this choice mean' chart."""
        n = max(1, min(points, self.total_steps))
        steps = sorted({max(1, round(self.total_steps * (i + 1) / n)) for i in range(n)})
        return [(0, 0.0)] + [(s, self._exact(s)) for s in steps]


def sample_rate_for(num_examples: int, batch_size: int) -> float:
    """q = 1/ceil(N/B): what Opacus's DPDataLoader uses (1/len(loader)), not B/N."""
    if num_examples <= 0:
        raise ConfigError("the training set is empty")
    if batch_size <= 0:
        raise ConfigError("batch size must be positive")
    return 1.0 / math.ceil(num_examples / batch_size)


def steps_for_epochs(epochs: float, sample_rate: float) -> int:
    """Steps for a number of epochs: one epoch is 1/q Poisson-sampled steps."""
    return max(1, int(round(epochs / sample_rate)))

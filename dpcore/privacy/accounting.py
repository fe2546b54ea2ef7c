"""ε from noise and noise from ε, for Poisson-sampled Gaussian and Laplace DP-SGD.

Three accountants, all giving upper bounds on ε at a fixed δ:

* ``rdp`` — Opacus's Rényi-DP accountant (Gaussian); looser but always valid, cheap.
* ``prv`` — Opacus's PRV accountant (Gaussian), tight; falls back to RDP when it cannot
  compute (very large ε or tiny σ) and says so.
* ``pld`` — dp-accounting's privacy-loss-distribution accountant, tight; the only one here
  that handles Poisson-sampled **Laplace**.

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
import warnings
from dataclasses import dataclass

from dpcore.config import ACCOUNTANTS
from dpcore.errors import ConfigError

MAX_NOISE = 1e4
MIN_NOISE = 0.05  # below this the accountants are slow or unstable, and ε is huge anyway


@dataclass(frozen=True)
class EpsilonResult:
    epsilon: float
    accountant: str  # the accountant actually used (differs from the requested one after a fallback)
    note: str = ""


def _check(mechanism: str, noise: float, sample_rate: float, steps: int, delta: float, accountant: str) -> None:
    if mechanism not in ("gaussian", "laplace"):
        raise ConfigError(f"no ε can be computed for mechanism {mechanism!r}: it carries no DP guarantee")
    if accountant not in ACCOUNTANTS:
        raise ConfigError(f"accountant must be one of {', '.join(ACCOUNTANTS)}; got {accountant!r}")
    if mechanism == "laplace" and accountant != "pld":
        raise ConfigError("Poisson-sampled Laplace is accounted with PLD only: use --accountant pld")
    if not (isinstance(noise, (int, float)) and math.isfinite(noise) and noise > 0):
        raise ConfigError(f"noise multiplier must be a positive number, got {noise!r}")
    if not (0.0 < sample_rate <= 1.0):
        raise ConfigError(f"sample rate must be in (0, 1], got {sample_rate!r}")
    if not isinstance(steps, int) or steps < 0:
        raise ConfigError(f"steps must be a non-negative whole number, got {steps!r}")
    if not (0.0 < delta < 1.0):
        raise ConfigError(f"δ (delta) must be between 0 and 1 exclusive, got {delta!r}")


def _dp_event(mechanism: str, noise: float, sample_rate: float, steps: int):
    import dp_accounting as dpa

    base = dpa.GaussianDpEvent(noise) if mechanism == "gaussian" else dpa.LaplaceDpEvent(noise)
    event = base if sample_rate >= 1.0 else dpa.PoissonSampledDpEvent(sample_rate, base)
    return dpa.SelfComposedDpEvent(event, steps)


def _pld_epsilon(mechanism: str, noise: float, sample_rate: float, steps: int, delta: float,
                 replace_one: bool = False) -> float:
    import dp_accounting as dpa
    from dp_accounting import pld

    relation = (dpa.NeighboringRelation.REPLACE_ONE if replace_one
                else dpa.NeighboringRelation.ADD_OR_REMOVE_ONE)
    accountant = pld.PLDAccountant(neighboring_relation=relation)
    accountant.compose(_dp_event(mechanism, noise, sample_rate, steps))
    return float(accountant.get_epsilon(delta))


def _rdp_epsilon(noise: float, sample_rate: float, steps: int, delta: float) -> float:
    from opacus.accountants import RDPAccountant

    acc = RDPAccountant()
    acc.history = [(noise, sample_rate, steps)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "optimal order is the smallest alpha": still a valid bound
        return float(acc.get_epsilon(delta))


def _prv_epsilon(noise: float, sample_rate: float, steps: int, delta: float) -> float:
    from opacus.accountants import PRVAccountant

    acc = PRVAccountant()
    acc.history = [(noise, sample_rate, steps)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eps = float(acc.get_epsilon(delta))
    if not math.isfinite(eps) or eps < 0:
        raise ArithmeticError(f"PRV returned {eps}")
    return eps


def epsilon_spent(
    mechanism: str, noise: float, sample_rate: float, steps: int, delta: float, accountant: str = "rdp"
) -> EpsilonResult:
    """ε after ``steps`` Poisson-sampled steps with noise multiplier ``noise`` (σ or λ)."""
    _check(mechanism, noise, sample_rate, steps, delta, accountant)
    if steps == 0:
        return EpsilonResult(0.0, accountant)
    if accountant == "pld":
        return EpsilonResult(_pld_epsilon(mechanism, noise, sample_rate, steps, delta), "pld")
    if accountant == "prv":
        try:
            return EpsilonResult(_prv_epsilon(noise, sample_rate, steps, delta), "prv")
        except Exception as err:  # PRV's FFT domain can fail at tiny σ / huge ε; RDP is a valid bound
            eps = _rdp_epsilon(noise, sample_rate, steps, delta)
            return EpsilonResult(eps, "rdp", f"PRV could not compute ({type(err).__name__}); RDP bound shown")
    return EpsilonResult(_rdp_epsilon(noise, sample_rate, steps, delta), "rdp")


def epsilon_replace_one(mechanism: str, noise: float, sample_rate: float, steps: int,
                        delta: float) -> EpsilonResult:
    """ε at ``delta`` for replace-one neighbours (N need not be public), from dp-accounting's PLD.

    Gaussian: PLD with ``NeighboringRelation.REPLACE_ONE``. Laplace: dp-accounting refuses that
    relation for Poisson-sampled Laplace, so group privacy over one removal and one addition is used
    instead: (ε, δ′) for add/remove gives (2ε, (1 + e^ε)·δ′) for replace-one, with δ′ chosen so that
    (1 + e^ε)·δ′ ≤ ``delta``. Both are upper bounds.
    """
    _check(mechanism, noise, sample_rate, steps, delta, "pld")
    if steps == 0:
        return EpsilonResult(0.0, "pld")
    if mechanism == "gaussian":
        return EpsilonResult(_pld_epsilon(mechanism, noise, sample_rate, steps, delta, replace_one=True), "pld",
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
        return EpsilonResult(math.inf, "pld", "replace-one: no finite bound at this δ (group privacy)")
    return EpsilonResult(2.0 * best, "pld", "replace-one neighbours by group privacy over remove + add (PLD)")


def compute_epsilon(
    mechanism: str, noise: float, sample_rate: float, steps: int, delta: float, accountant: str = "rdp"
) -> float:
    return epsilon_spent(mechanism, noise, sample_rate, steps, delta, accountant).epsilon


def calibrate_noise(
    mechanism: str,
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: str = "rdp",
    tolerance: float = 0.005,
) -> float:
    """Smallest noise multiplier (to ``tolerance`` in ε) whose ε over ``steps`` is ≤ target.

    A bisection on log σ with the *same* accountant that will report the run's ε, so the
    reported value never exceeds the target because of an accountant mismatch.
    """
    if not (isinstance(target_epsilon, (int, float)) and math.isfinite(target_epsilon) and target_epsilon > 0):
        raise ConfigError(f"target ε must be a positive number, got {target_epsilon!r}")
    _check(mechanism, 1.0, sample_rate, max(steps, 0), delta, accountant)
    if steps <= 0:
        raise ConfigError("calibration needs at least one step")

    def eps(noise: float) -> float:
        return compute_epsilon(mechanism, noise, sample_rate, steps, delta, accountant)

    # Bracket with RDP first: it is cheap at any σ (PRV and PLD get very slow at tiny σ) and,
    # being looser, its σ is an upper end for the tight accountants too.
    def rdp_eps(noise: float) -> float:
        return compute_epsilon(mechanism, noise, sample_rate, steps, delta, "rdp")

    probe = eps if (accountant == "rdp" or mechanism == "laplace") else rdp_eps
    hi = 1.0
    while probe(hi) > target_epsilon:
        hi *= 2.0
        if hi > MAX_NOISE:
            raise ConfigError(
                f"ε = {target_epsilon:g} cannot be reached with δ = {delta:g} over {steps} steps at "
                f"sample rate {sample_rate:.3g}: lower the steps, raise ε or use more data"
            )
    while eps(hi) > target_epsilon:  # the tight accountant disagrees with RDP's bracket: widen
        hi *= 1.5
    lo = hi
    while eps(lo) <= target_epsilon:
        hi, lo = lo, lo / 1.5
        if lo < MIN_NOISE:
            return hi
    while hi / lo > 1.0 + 1e-4:
        mid = math.sqrt(lo * hi)
        e = eps(mid)
        if e > target_epsilon:
            lo = mid
        else:
            hi = mid
            if target_epsilon - e <= tolerance * target_epsilon:
                break
    return hi


class EpsilonCurve:
    """ε spent after each step of a run with fixed (noise, q), as an upper bound at every step.

    RDP composes linearly in the RDP domain, so ε is exact at every step for almost no cost.
    PRV and PLD are evaluated on a grid of steps; between grid points the next grid value is
    reported, which upper-bounds the true ε because ε grows with the number of steps.
    """

    def __init__(
        self, mechanism: str, noise: float, sample_rate: float, delta: float, accountant: str,
        total_steps: int, grid_points: int = 40,
    ) -> None:
        _check(mechanism, noise, sample_rate, total_steps, delta, accountant)
        self.mechanism, self.noise, self.sample_rate = mechanism, noise, sample_rate
        self.delta, self.accountant, self.total_steps = delta, accountant, total_steps
        self._cache: dict[int, float] = {0: 0.0}
        self._rdp = None
        if accountant == "rdp":
            from opacus.accountants import RDPAccountant
            from opacus.accountants.analysis.rdp import compute_rdp

            self._orders = RDPAccountant.DEFAULT_ALPHAS
            self._rdp = compute_rdp(q=sample_rate, noise_multiplier=noise, steps=1, orders=self._orders)
        n = max(1, min(grid_points, total_steps))
        self.grid = sorted({max(1, round(total_steps * (i + 1) / n)) for i in range(n)})

    def _exact(self, step: int) -> float:
        if step not in self._cache:
            if self._rdp is not None:
                from opacus.accountants.analysis.rdp import get_privacy_spent

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    eps, _ = get_privacy_spent(orders=self._orders, rdp=self._rdp * step, delta=self.delta)
                self._cache[step] = float(eps)
            else:
                self._cache[step] = compute_epsilon(
                    self.mechanism, self.noise, self.sample_rate, step, self.delta, self.accountant
                )
        return self._cache[step]

    def at(self, step: int) -> float:
        """An upper bound on ε after ``step`` steps (exact for RDP and at grid points)."""
        if step <= 0:
            return 0.0
        if self._rdp is not None or step > self.total_steps:
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

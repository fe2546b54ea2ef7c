"""What an attacker can achieve: the trade-off curve of a DP mechanism, and the risk dial built on it.

**The hypothesis-testing view of DP** (Wasserman & Zhou 2010; Kairouz, Oh & Viswanath 2015; Dong, Roth &
Su 2019, "Gaussian Differential Privacy", arXiv:1905.02383). A membership attacker sees the released
model and must decide "member" or "non-member" for one person. Any such test has a false-positive rate
α (non-members wrongly accused) and a true-positive rate (members caught). For an (ε, δ)-DP mechanism
every test obeys

    TPR ≤ e^ε·α + δ      and      TPR ≤ 1 − e^{−ε}(1 − δ − α)

(Kairouz et al. Thm 2.4; Dong et al. Prop. 2.5: the trade-off function f_{ε,δ}). A mechanism is not
one (ε, δ) pair but its whole *privacy profile* δ(ε), and it is (ε, δ(ε))-DP for every ε at once, so
every test obeys the infimum over the profile:

    TPR ≤ β(α) := min(1, inf_ε min(e^ε·α + δ(ε), 1 − e^{−ε}(1 − δ(ε) − α)))        (1)

β = 1 − f is the mechanism's *blow-up* curve. By the primal–dual relation (Dong et al. Prop. 2.12) the
profile determines the trade-off function f exactly: f = sup_ε f_{ε,δ(ε)}, so (1) over the full profile
is the mechanism's own curve, not merely a bound on it. Here the infimum runs over a finite grid of ε
(a minimum over fewer pairs is larger, so the computed β can only be higher: a valid, conservative TPR
bound), and δ(ε) comes from dp-accounting's privacy-loss distribution with its pessimistic
discretisation (an upper bound on the true δ(ε), again erring towards more attacker success).

**The mechanism's own profile.** For DP-SGD the profile is that of the actual (q, σ, T): T
self-compositions of the Poisson-sampled Gaussian (or Laplace) mechanism, built once by dp-accounting
(``PoissonSampledDpEvent`` ↔ ``from_gaussian_mechanism(..., sampling_prob=q).self_compose(T)``), for
add-or-remove-one neighbours, both directions (dp-accounting's δ(ε) is the larger of the two), so (1)
holds for the attacker testing "in" against "out" and for the reverse test alike.

**The inverse blow-up** b(y) = inf{α : β(α) ≥ y}, the least false-positive rate any test must pay to
reach TPR y: since β is the minimum of increasing lines, b(y) is the maximum of their inverses,
max_ε max((y − δ(ε))e^{−ε}, 1 − δ(ε) − (1 − y)e^{ε}) clipped to [0, 1]. The f-DP one-run audit
(:mod:`dpcore.audit.fdp`) runs on it.

The risk dial (:func:`risk_at`, :func:`noise_for_tpr`) turns this into the sentence "at ε = 3, an
attacker who wrongly accuses 1 in 100 non-members catches at most X in 100 members": computed from the
mechanism each time, never tabulated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import special

from dpcore.errors import ConfigError
from dpcore.privacy.registry import PRIVATE_MECHANISMS

#: dp-accounting's PLD discretisation for the risk dial. Coarser than the accountant's 1e-4 (ten times
#: faster to build), still pessimistic: the δ(ε) it gives is an upper bound at any interval.
RISK_INTERVAL = 1e-3
#: The ε grid of the profile: fine where typical tangents touch, then geometric out to where δ(ε) is 0.
EPS_GRID: np.ndarray = np.unique(np.concatenate([np.linspace(0.0, 16.0, 1601), np.geomspace(16.0, 256.0, 200)]))
#: The false-positive rate the sentences use unless told otherwise: 1 in 100 non-members wrongly accused.
DEFAULT_FPR = 0.01


@dataclass(frozen=True)
class PrivacyProfile:
    """Pairs (ε_j, δ_j) that a mechanism satisfies all at once: each is an (ε_j, δ_j)-DP guarantee.

    Any subset of a mechanism's true profile is a valid profile; more pairs give a tighter curve.
    """

    epsilons: np.ndarray
    deltas: np.ndarray

    def __post_init__(self) -> None:
        eps = np.atleast_1d(np.asarray(self.epsilons, dtype=np.float64))
        dlt = np.clip(np.atleast_1d(np.asarray(self.deltas, dtype=np.float64)), 0.0, 1.0)
        if eps.shape != dlt.shape or eps.size == 0 or np.any(eps < 0) or not np.all(np.isfinite(eps)):
            raise ValueError("a privacy profile needs as many finite ε ≥ 0 as δ, at least one")
        object.__setattr__(self, "epsilons", eps)
        object.__setattr__(self, "deltas", dlt)

    def tpr_bound(self, fpr: float | np.ndarray) -> Any:
        """β(α) of equation (1): the most any test with false-positive rate α can catch (elementwise)."""
        a = np.clip(np.asarray(fpr, dtype=np.float64), 0.0, 1.0)
        flat = np.atleast_1d(a)[:, None]
        e, d = self.epsilons[None, :], self.deltas[None, :]
        with np.errstate(over="ignore"):
            up = np.exp(e) * flat + d  # e^ε α + δ
        down = 1.0 - np.exp(-e) * (1.0 - d - flat)  # 1 − e^{−ε}(1 − δ − α)
        out = np.clip(np.minimum(np.min(up, axis=1), np.min(down, axis=1)), flat[:, 0], 1.0)
        return float(out[0]) if np.ndim(fpr) == 0 else out.reshape(np.shape(fpr))

    def inverse_blowup(self, tpr: float | np.ndarray) -> Any:
        """b(y): the least false-positive rate a test needs to reach true-positive rate y (elementwise)."""
        y = np.clip(np.asarray(tpr, dtype=np.float64), 0.0, 1.0)
        flat = np.atleast_1d(y)[:, None]
        e, d = self.epsilons[None, :], self.deltas[None, :]
        first = (flat - d) * np.exp(-e)
        with np.errstate(over="ignore"):
            second = 1.0 - d - (1.0 - flat) * np.exp(e)
        out = np.clip(np.maximum(np.max(first, axis=1), np.max(second, axis=1)), 0.0, flat[:, 0])
        return float(out[0]) if np.ndim(tpr) == 0 else out.reshape(np.shape(tpr))


def approx_dp_profile(epsilon: float, delta: float) -> PrivacyProfile:
    """The single pair (ε, δ): the curve f_{ε,δ} every (ε, δ)-DP mechanism lies above."""
    return PrivacyProfile(np.array([float(epsilon)]), np.array([float(delta)]))


# ---------------------------------------------------------------------------- Gaussian DP
def gaussian_tpr(fpr: float | np.ndarray, mu: float) -> Any:
    """μ-GDP's blow-up curve, 1 − G_μ(α) = Φ(Φ⁻¹(α) + μ) (Dong, Roth & Su 2019, Def. 2.7).

    It is exactly the trade-off of one release of a sensitivity-1 statistic with N(0, σ²) noise at
    μ = 1/σ (T = 1, q = 1), which the Monte Carlo test uses as ground truth.
    """
    return special.ndtr(special.ndtri(np.asarray(fpr, dtype=np.float64)) + mu)


def gaussian_inverse_blowup(tpr: float | np.ndarray, mu: float) -> Any:
    """b(y) for μ-GDP: Φ(Φ⁻¹(y) − μ)."""
    return special.ndtr(special.ndtri(np.asarray(tpr, dtype=np.float64)) - mu)


@lru_cache(maxsize=4096)
def gdp_mu(epsilon: float, delta: float) -> float:
    """The μ whose μ-GDP curve has δ(ε) = δ: μ = 1/σ of the tight (ε, δ)-DP Gaussian mechanism.

    σ from dp-accounting's ``get_sigma_gaussian`` (the analytic Gaussian mechanism of Balle & Wang 2018,
    whose privacy profile is μ-GDP's, Dong et al. Cor. 2.13). Needs δ > 0: μ-GDP is never (ε, 0)-DP.
    """
    import dp_accounting  # only when a Gaussian curve is asked for

    if not 0.0 < delta < 1.0:
        raise ConfigError(f"a Gaussian (μ-GDP) curve needs 0 < δ < 1, got {delta!r}")
    if epsilon < 0 or not math.isfinite(epsilon):
        raise ConfigError(f"ε must be finite and ≥ 0, got {epsilon!r}")
    sigma = float(dp_accounting.get_sigma_gaussian(float(epsilon), float(delta)))
    return math.inf if sigma == 0 else 1.0 / sigma


# --------------------------------------------------------------------- a mechanism's profile
def _check_mechanism(mechanism: str, noise: float, sample_rate: float, steps: int) -> None:
    if mechanism not in PRIVATE_MECHANISMS:
        raise ConfigError(f"the risk dial needs a DP mechanism ({', '.join(PRIVATE_MECHANISMS)}), got {mechanism!r}")
    if not (isinstance(noise, (int, float)) and math.isfinite(noise) and noise > 0):
        raise ConfigError(f"the noise multiplier must be a positive number, got {noise!r}")
    if not 0.0 < sample_rate <= 1.0:
        raise ConfigError(f"the sampling rate q must be in (0, 1], got {sample_rate!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps must be a positive whole number, got {steps!r}")


@lru_cache(maxsize=64)
def mechanism_profile(mechanism: str, noise: float, sample_rate: float, steps: int) -> PrivacyProfile:
    """δ(ε) over :data:`EPS_GRID` of T Poisson-sampled Gaussian (σ) or Laplace (λ) steps, from dp-accounting.

    The one-step PLD (add-or-remove-one, pessimistic) is composed once with count T, as
    ``SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(σ)), T)`` would be.
    """
    from dp_accounting.pld import privacy_loss_distribution as pld_lib  # numpy/scipy only, but slow to import

    _check_mechanism(mechanism, noise, sample_rate, steps)
    if mechanism == "gaussian":
        one = pld_lib.from_gaussian_mechanism(standard_deviation=float(noise), sampling_prob=float(sample_rate),
                                              value_discretization_interval=RISK_INTERVAL)
    else:
        one = pld_lib.from_laplace_mechanism(parameter=float(noise), sampling_prob=float(sample_rate),
                                             value_discretization_interval=RISK_INTERVAL)
    composed = one.self_compose(int(steps)) if steps > 1 else one
    deltas = np.asarray(composed.get_delta_for_epsilon(EPS_GRID), dtype=np.float64)
    return PrivacyProfile(EPS_GRID.copy(), deltas)


def mechanism_tpr(mechanism: str, noise: float, sample_rate: float, steps: int,
                  fpr: float = DEFAULT_FPR) -> float:
    """The most members any membership test can catch at false-positive rate ``fpr``, for this (q, noise, T)."""
    if not 0.0 < fpr < 1.0:
        raise ConfigError(f"the false-positive rate must be in (0, 1), got {fpr!r}")
    return float(mechanism_profile(mechanism, float(noise), float(sample_rate), int(steps)).tpr_bound(fpr))


# ----------------------------------------------------------------------------- the dial
@dataclass(frozen=True)
class RiskPoint:
    """One reading of the dial: at this (ε, δ) and false-positive rate, at most ``tpr`` of members caught."""

    mechanism: str
    noise_multiplier: float
    sample_rate: float
    steps: int
    delta: float
    epsilon: float
    fpr: float
    tpr: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @property
    def sentence(self) -> str:
        return risk_sentence(self.epsilon, self.fpr, self.tpr)


def risk_at(mechanism: str, noise: float, sample_rate: float, steps: int, delta: float,
            fpr: float = DEFAULT_FPR, epsilon: float | None = None) -> RiskPoint:
    """The dial for a run's actual (q, noise, T): its ε at δ (dp-accounting's PLD, unless given) and TPR at ``fpr``.

    ``epsilon``: the run's own reported ε, to name it in the sentence (the TPR never depends on it).
    """
    from dpcore.privacy.accounting import epsilon_spent  # the project's one ε

    tpr = mechanism_tpr(mechanism, noise, sample_rate, steps, fpr)
    eps = epsilon if epsilon is not None else epsilon_spent(mechanism, noise, sample_rate, steps, delta, "pld").epsilon
    return RiskPoint(mechanism, float(noise), float(sample_rate), int(steps), float(delta), float(eps), float(fpr),
                     tpr)


def noise_for_tpr(mechanism: str, sample_rate: float, steps: int, delta: float, target_tpr: float,
                  fpr: float = DEFAULT_FPR, *, rel_tol: float = 2e-3) -> RiskPoint:
    """The reverse dial: the least noise (σ or λ) keeping every attacker at TPR ≤ ``target_tpr`` at ``fpr``.

    The TPR bound falls as noise grows (more noise, higher trade-off curve), so bisection on log-noise
    finds it; the noise returned is the upper end of the final bracket, so its TPR is ≤ the target.
    ``epsilon`` is that noise's ε at δ (PLD). A target at or below ``fpr`` is random guessing: no
    finite noise reaches it.
    """
    from dpcore.privacy.accounting import MAX_NOISE, MIN_NOISE

    if not 0.0 < fpr < 1.0:
        raise ConfigError(f"the false-positive rate must be in (0, 1), got {fpr!r}")
    if not fpr < target_tpr <= 1.0:
        raise ConfigError(f"the target true-positive rate must be above the false-positive rate {fpr:g} (random "
                          f"guessing) and at most 1, got {target_tpr!r}")
    def tpr(noise: float) -> float:
        return mechanism_tpr(mechanism, noise, sample_rate, steps, fpr)

    # bracket [lo, hi] with tpr(lo) > target ≥ tpr(hi), starting at 1 (small noises are slow to account)
    lo, hi = 1.0, 1.0
    if tpr(1.0) > target_tpr:
        while tpr(hi) > target_tpr:
            lo, hi = hi, hi * 2.0
            if hi > MAX_NOISE:
                raise ConfigError(f"no noise up to {MAX_NOISE:g} keeps the attacker at or below {target_tpr:g}")
    else:
        while tpr(lo) <= target_tpr:
            hi, lo = lo, lo / 2.0
            if lo < MIN_NOISE:
                return risk_at(mechanism, hi, sample_rate, steps, delta, fpr)
    while hi / lo > 1.0 + rel_tol:
        mid = math.sqrt(lo * hi)
        if tpr(mid) <= target_tpr:
            hi = mid
        else:
            lo = mid
    return risk_at(mechanism, hi, sample_rate, steps, delta, fpr)


def _in_100(p: float, up: bool) -> str:
    """p as "X in 100", rounded away from the reader's comfort (up for catches), at most one decimal."""
    x = p * 100.0
    x = math.ceil(x * 10 - 1e-9) / 10 if up else math.floor(x * 10 + 1e-9) / 10
    return f"{x:.1f}".rstrip("0").rstrip(".")


def risk_sentence(epsilon: float, fpr: float, tpr: float, *, unit: str = "members") -> str:
    """"At ε = 3, an attacker who wrongly accuses 1 in 100 non-members catches at most X in 100 members.\""""
    eps = "∞" if not math.isfinite(epsilon) else f"{epsilon:.3g}"
    return (f"At ε = {eps}, an attacker who wrongly accuses {_in_100(fpr, up=False)} in 100 non-{unit} catches "
            f"at most {_in_100(tpr, up=True)} in 100 {unit} (random guessing catches {_in_100(fpr, up=False)}).")

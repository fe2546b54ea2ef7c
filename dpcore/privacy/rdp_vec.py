"""RDP of the Poisson-sampled Gaussian mechanism, vectorised over noise multipliers and orders.

The same arithmetic as the scalar port in :mod:`dpcore.privacy.accounting` (Opacus's
``compute_rdp``, Mironov, Talwar and Zhang 2019), written as numpy array operations instead of
Python loops. Why: at the noise levels DP-SGD uses (σ ≈ 0.3–3) the series behind the fractional
orders needs thousands of terms, so the scalar loop spends 10–30 ms per σ, and calibrating the
noise for every move of the New run form's ε slider took 0.3–0.7 s. Here one σ costs about a
millisecond and the numbers agree with the scalar port to ~1e-12 relative
(``tests/privacy/test_rdp_vec.py``): same terms, same stopping rule, only the order of the
floating-point sums differs.

Integer orders are a finite sum (one ``logsumexp``). Fractional orders are an alternating series
evaluated in growing chunks; the terms of one (σ, α) pair are summed up to and including the first
term below e^-30, exactly where the scalar loop stops. A pair whose series has not stopped after
:data:`MAX_TERMS` terms, or whose signs would make the sum negative, is handed to the scalar code,
so every answer is the scalar answer.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import special

#: The most series terms evaluated in arrays for one (σ, α) pair before the scalar loop takes over.
MAX_TERMS = 1 << 17
_FIRST_CHUNK = 32
_STOP = -30.0  # the scalar loop's stopping rule: the first term below e^-30 is the last one summed


@functools.lru_cache(maxsize=8)
def _split_orders(orders: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(indices of integer orders, their values, indices of fractional orders, their values)."""
    arr = np.asarray(orders, dtype=float)
    is_int = np.array([float(a).is_integer() for a in orders], dtype=bool)
    return np.flatnonzero(is_int), arr[is_int], np.flatnonzero(~is_int), arr[~is_int]


def _logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """log Σ exp(x) along ``axis``; −inf for an all −inf row (scipy's version costs ~0.3 ms a call)."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.sum(np.exp(x - m), axis=axis)) + np.squeeze(m, axis=axis)


@functools.lru_cache(maxsize=8)
def _int_coefficients(alphas: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """log C(α, i) for i = 0..max α (``-inf`` past α), and i, as in ``math.log(special.binom(α, i))``."""
    top = max(alphas)
    i = np.arange(top + 1, dtype=float)
    a = np.asarray(alphas, dtype=float)[:, None]
    with np.errstate(divide="ignore"):
        log_binom = np.where(i[None, :] <= a, np.log(special.binom(a, i[None, :])), -np.inf)
    return log_binom, i


def _log_a_int(q: float, sigmas: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """log A_α for integer α: shape (len(sigmas), len(alphas))."""
    log_binom, i = _int_coefficients(tuple(int(a) for a in alphas))
    a = alphas[:, None]
    base = log_binom + i * math.log(q) + (a - i) * math.log(1 - q)  # (A, I)
    quad = (i * i - i)[None, None, :] / (2.0 * sigmas[:, None, None] ** 2)  # (S, 1, I)
    return _logsumexp(base[None, :, :] + quad, axis=-1)


class _FracCoefficients:
    """log |C(α, i)| and the sign of C(α, i) for the fractional orders, i = 0..n−1, grown on demand.

    They depend on α only, so they are computed once per set of orders (``special.binom``, as the
    scalar loop calls it) instead of once per σ and term.
    """

    def __init__(self, alphas: tuple[float, ...]) -> None:
        self.alphas = np.asarray(alphas, dtype=float)
        self.log_abs = np.empty((len(alphas), 0))
        self.positive = np.empty((len(alphas), 0), dtype=bool)

    def upto(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        have = self.log_abs.shape[1]
        if n > have:
            n_new = max(n, 2 * have)
            i = np.arange(have, n_new, dtype=float)[None, :]
            coef = special.binom(self.alphas[:, None], i)
            self.log_abs = np.concatenate([self.log_abs, np.log(np.abs(coef))], axis=1)
            self.positive = np.concatenate([self.positive, coef > 0], axis=1)
        return self.log_abs, self.positive


@functools.lru_cache(maxsize=8)
def _frac_coefficients(alphas: tuple[float, ...]) -> _FracCoefficients:
    return _FracCoefficients(alphas)


def _logsub(logx: np.ndarray, logy: np.ndarray) -> np.ndarray:
    """log(e^x − e^y) for x ≥ y elementwise (−inf where they are equal)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = logy - logx
        return np.where(np.isneginf(logy), logx, logx + np.log(-np.expm1(np.minimum(diff, 0.0))))


def _log_a_frac(q: float, sigmas: np.ndarray, alphas: np.ndarray,
                scalar: Callable[[float, float, float], float]) -> np.ndarray:
    """log A_α for fractional α: shape (len(sigmas), len(alphas)); ``scalar`` for pairs left over."""
    n_s, n_a = len(sigmas), len(alphas)
    coefficients = _frac_coefficients(tuple(float(a) for a in alphas))
    sig = np.repeat(sigmas, n_a)  # pairs, flattened (σ-major)
    alp = np.tile(alphas, n_s)
    row = np.tile(np.arange(n_a), n_s)  # each pair's order, as a row of the coefficient tables
    z0 = sig**2 * math.log(1 / q - 1) + 0.5
    log_q, log_1q = math.log(q), math.log(1 - q)
    # running sums of the positive and the negative terms of the two series, per pair
    pos0 = np.full(len(sig), -np.inf)
    neg0 = np.full(len(sig), -np.inf)
    pos1 = np.full(len(sig), -np.inf)
    neg1 = np.full(len(sig), -np.inf)
    active = np.arange(len(sig))
    start, chunk = 0, _FIRST_CHUNK
    while len(active) and start < MAX_TERMS:
        stop = min(start + chunk, MAX_TERMS)
        log_abs, positive_all = coefficients.upto(stop)
        i = np.arange(start, stop, dtype=float)[None, :]
        s, a, z = sig[active][:, None], alp[active][:, None], z0[active][:, None]
        log_coef = log_abs[row[active], start:stop]
        positive = positive_all[row[active], start:stop]
        j = a - i
        inv = 1.0 / (2 * s**2)
        log_s0 = (log_coef + i * log_q + j * log_1q + (i * i - i) * inv
                  + special.log_ndtr((z - i) / s))  # log(0.5) + _log_erfc((i − z0)/(√2 σ))
        log_s1 = (log_coef + j * log_q + i * log_1q + (j * j - j) * inv
                  + special.log_ndtr((j - z) / s))
        below = np.maximum(log_s0, log_s1) < _STOP
        stopped = below.any(axis=1)
        last = np.where(stopped, below.argmax(axis=1), below.shape[1] - 1)  # the last term summed
        keep = np.arange(below.shape[1])[None, :] <= last[:, None]
        for terms, pos, neg in ((log_s0, pos0, neg0), (log_s1, pos1, neg1)):
            p = _logsumexp(np.where(keep & positive, terms, -np.inf), axis=1)
            n = _logsumexp(np.where(keep & ~positive, terms, -np.inf), axis=1)
            pos[active] = np.logaddexp(pos[active], p)
            neg[active] = np.logaddexp(neg[active], n)
        active = active[~stopped]
        start = stop
        chunk *= 2
    bad = np.zeros(len(sig), dtype=bool)
    bad[active] = True  # the series did not stop within MAX_TERMS
    bad |= (neg0 > pos0) | (neg1 > pos1) | ~np.isfinite(pos0) | ~np.isfinite(pos1)
    with np.errstate(invalid="ignore"):
        out = np.logaddexp(_logsub(pos0, neg0), _logsub(pos1, neg1))
    for k in np.flatnonzero(bad):  # rare: the scalar loop decides (it raises where it must)
        out[k] = scalar(q, float(sig[k]), float(alp[k]))
    return out.reshape(n_s, n_a)


def rdp_table(q: float, sigmas: Sequence[float] | np.ndarray, orders: Sequence[float],
              scalar_log_a_frac: Callable[[float, float, float], float]) -> np.ndarray:
    """RDP of **one** step at every (σ, order): shape (len(sigmas), len(orders)).

    ``scalar_log_a_frac`` is the scalar port's fractional-order function (passed in, so that the
    two modules do not import each other). Zero and infinite orders, q = 0, q = 1 and σ = 0 follow
    the scalar port's special cases.
    """
    sig = np.atleast_1d(np.asarray(sigmas, dtype=float))
    ords = tuple(float(a) for a in orders)
    out = np.empty((len(sig), len(ords)))
    if q == 0:
        out[:] = 0.0
        return out
    alphas = np.asarray(ords)
    if q == 1.0:
        with np.errstate(divide="ignore"):
            out[:] = alphas[None, :] / (2 * sig[:, None] ** 2)
        return out
    out[:] = np.inf  # σ = 0 and infinite orders
    ok = sig > 0
    if not ok.any():
        return out
    idx_int, a_int, idx_frac, a_frac = _split_orders(ords)
    s = sig[ok]
    rows = np.flatnonzero(ok)
    if len(idx_int):
        fin = np.isfinite(a_int)
        cols = idx_int[fin]
        vals = _log_a_int(q, s, a_int[fin]) / (a_int[fin] - 1)
        out[np.ix_(rows, cols)] = vals
    if len(idx_frac):
        fin = np.isfinite(a_frac)
        cols = idx_frac[fin]
        vals = _log_a_frac(q, s, a_frac[fin], scalar_log_a_frac) / (a_frac[fin] - 1)
        out[np.ix_(rows, cols)] = vals
    return out


def epsilons(rdp: np.ndarray, delta: float, orders: Sequence[float]) -> np.ndarray:
    """ε at ``delta`` from RDP along the last axis (Balle et al. 2020, Theorem 21; Opacus's conversion).

    ``rdp`` has orders on its last axis; the result has the other axes. Where every order is NaN
    (no privacy) the answer is ∞, as in the scalar ``rdp_to_epsilon``.
    """
    a = np.asarray(orders, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        eps = rdp - (np.log(delta) + np.log(a)) / (a - 1) + np.log((a - 1) / a)
    all_nan = np.isnan(eps).all(axis=-1)
    with np.errstate(invalid="ignore"):
        best = np.where(all_nan, np.inf, np.nanmin(np.where(np.isnan(eps), np.inf, eps), axis=-1))
    return best

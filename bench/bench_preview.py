"""How fast the New run preview answers a change, per accountant: before (exact work on every change) and after.

    python bench/bench_preview.py [--values 1.5,2,2.5,3,4,5] [--accountants rdp,prv,pld,laplace]

One warm process: the workshop-eps3 preset's corpus sizes are cached, PRV's Opacus is imported and one
preview per accountant is drawn before anything is timed. Each timed change is a new ε (one move of the
ε slider), so no calibration is cached; the same ε values are timed before and after, interleaved.

* **before** — what a change cost until now: the bisection calibration this version replaced (kept below
  loop for loop, with the scalar RDP port it used) and the predicted ε curve at ``CURVE_POINTS`` exact points.
* **after: answer** — ``check(config)``, as the page calls it. RDP: the exact σ and curve (vectorised RDP,
  fewer evaluations). PRV, PLD, Laplace: a provisional answer at once (q, steps, δ; RDP's σ as an upper bound
  for Gaussian), while the exact one computes in the background.
* **after: exact ready** — PRV, PLD, Laplace: the time from the change until that exact preview (new
  calibration and the same curve) is ready, which the page then shows.
* **after: answer, nothing known** — the same, once per value, with every remembered calibration forgotten
  first (the first change after new settings: another batch size, number of steps or corpus).
* **calibration** — the calibration alone (what a worker that finds no stored σ pays at launch), before → after.

Prints one table with medians (max in brackets) and before/after ratios from this one invocation.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dpcore.config import TrainConfig  # noqa: E402  (after the path fix)
from dpcore.config.presets import get_preset  # noqa: E402
from dpcore.privacy.accounting import (  # noqa: E402
    MAX_NOISE,
    MIN_NOISE,
    calibrate_noise,
    compute_epsilon,
    compute_rdp_reference,
    rdp_to_epsilon,
)
from dpcore.privacy.plan import plan  # noqa: E402
from dpcore.runs import preview as pv  # noqa: E402

ROWS = {
    "rdp": dict(accountant="rdp"),
    "prv": dict(accountant="prv"),
    "pld": dict(accountant="pld"),
    "laplace": dict(mechanism="laplace", accountant="pld", engine="opacus", max_steps=150),
}


# ------------------------------------------------------------------------------- before
def _old_eps(mechanism: str, noise: float, q: float, steps: int, delta: float, accountant: str) -> float:
    if accountant == "rdp":  # the scalar port, as compute_epsilon computed RDP before
        return rdp_to_epsilon(rdp=compute_rdp_reference(q=q, noise_multiplier=noise, steps=steps), delta=delta)
    return compute_epsilon(mechanism, noise, q, steps, delta, accountant)  # PRV and PLD are unchanged


def old_calibrate(mechanism: str, target: float, delta: float, q: float, steps: int, accountant: str,
                  tolerance: float = 0.005) -> float:
    """The calibration this version replaced, loop for loop (bisection on log σ, RDP bracket)."""
    def eps(noise: float) -> float:
        return _old_eps(mechanism, noise, q, steps, delta, accountant)

    def rdp_eps(noise: float) -> float:
        return _old_eps(mechanism, noise, q, steps, delta, "rdp")

    probe = eps if (accountant == "rdp" or mechanism == "laplace") else rdp_eps
    hi = 1.0
    while probe(hi) > target:
        hi *= 2.0
        if hi > MAX_NOISE:
            raise ValueError("unreachable")
    while eps(hi) > target:
        hi *= 1.5
    lo = hi
    while eps(lo) <= target:
        hi, lo = lo, lo / 1.5
        if lo < MIN_NOISE:
            return hi
    while hi / lo > 1.0 + 1e-4:
        mid = math.sqrt(lo * hi)
        e = eps(mid)
        if e > target:
            lo = mid
        else:
            hi = mid
            if target - e <= tolerance * target:
                break
    return hi


def old_curve(mechanism: str, noise: float, q: float, delta: float, accountant: str, steps: int,
              points: int) -> list[tuple[int, float]]:
    """EpsilonCurve(...).predicted(points) as it was: one scalar RDP, or one exact PRV/PLD per point."""
    n = max(1, min(points, steps))
    grid = sorted({max(1, round(steps * (i + 1) / n)) for i in range(n)})
    if accountant == "rdp":
        rdp = compute_rdp_reference(q=q, noise_multiplier=noise, steps=1)
        return [(0, 0.0)] + [(s, rdp_to_epsilon(rdp=rdp * s, delta=delta)) for s in grid]
    return [(0, 0.0)] + [(s, compute_epsilon(mechanism, noise, q, s, delta, accountant)) for s in grid]


def before(config: TrainConfig, n: int) -> tuple[float, float]:
    """(seconds for calibration + curve, seconds for the calibration alone) of one change, as before."""
    p = plan(config, n, calibrate=False)
    t0 = time.perf_counter()
    sigma = old_calibrate(config.mechanism, config.epsilon, p.delta, p.sample_rate, p.steps,
                          config.accountant)
    t1 = time.perf_counter()
    old_curve(config.mechanism, sigma, p.sample_rate, p.delta, config.accountant, p.steps,
              pv.CURVE_POINTS.get(config.accountant, 12))
    return time.perf_counter() - t0, t1 - t0


# ------------------------------------------------------------------------------- after
def after(config: TrainConfig) -> tuple[float, float | None, bool]:
    """(seconds to the page's answer, seconds to the exact preview or None if the answer was exact, pending)."""
    t0 = time.perf_counter()
    checked = pv.check(config)
    answer = time.perf_counter() - t0
    if checked.errors:
        raise SystemExit(f"{config.accountant}: {checked.errors}")
    if not checked.preview.pending:
        return answer, None, False
    while not pv.exact_ready(config):
        time.sleep(0.005)
    return answer, time.perf_counter() - t0, True


def after_calibration(config: TrainConfig, n: int) -> float:
    from dpcore.privacy.calcache import clear_calibration_memo

    p = plan(config, n, calibrate=False)
    clear_calibration_memo()  # what a worker starts from: nothing known
    t0 = time.perf_counter()
    calibrate_noise(config.mechanism, config.epsilon, p.delta, p.sample_rate, p.steps, config.accountant)
    return time.perf_counter() - t0


def _forget_calibrations() -> None:
    from dpcore.privacy import calcache
    from dpcore.privacy.calcache import clear_calibration_memo

    calcache.clear_memory()
    clear_calibration_memo()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--values", default="1.5,2,2.5,3.5,4,5", help="ε values, one timed change each")
    parser.add_argument("--accountants", default=",".join(ROWS), help="comma-separated: " + ", ".join(ROWS))
    args = parser.parse_args()
    values = [float(v) for v in args.values.split(",") if v]
    rows = [r for r in args.accountants.split(",") if r]
    base = get_preset("workshop-eps3").config

    configs = {r: base.replace(**ROWS[r]) for r in rows}
    for config in configs.values():  # warm: corpus sizes, imports (Opacus for PRV), the first preview
        after(config.replace(epsilon=3.0))
    n = pv.check(base).preview.num_train

    results: dict[str, dict[str, list[float]]] = {r: {"before": [], "calib_before": [], "answer": [],
                                                      "cold": [], "exact": [], "calib_after": []} for r in rows}
    for i, eps in enumerate(values):
        for k, r in enumerate(rows):
            # a different ε per row, so that no row finds another's calibration (PRV's RDP bound is RDP's σ)
            config = configs[r].replace(epsilon=round(eps * (1 + 0.003 * k), 6))
            order = (True, False) if i % 2 == 0 else (False, True)
            for old in order:
                if old:
                    total, calib = before(config, n)
                    results[r]["before"].append(total)
                    results[r]["calib_before"].append(calib)
                else:
                    answer, exact, _pending = after(config)
                    results[r]["answer"].append(answer)
                    if exact is not None:
                        results[r]["exact"].append(exact)
            results[r]["calib_after"].append(after_calibration(config, n))
            cold = config.replace(epsilon=round(config.epsilon * 1.001, 6))
            _forget_calibrations()  # settings never seen: nothing to start from
            results[r]["cold"].append(after(cold)[0])
            print(f"ε={eps:g} {r}: before {results[r]['before'][-1] * 1000:.0f} ms, "
                  f"after {results[r]['answer'][-1] * 1000:.1f} ms", file=sys.stderr)

    def ms(xs: list[float]) -> str:
        return f"{statistics.median(xs) * 1000:.1f} ms (max {max(xs) * 1000:.1f})" if xs else "—"

    def s(xs: list[float]) -> str:
        return f"{statistics.median(xs):.2f} s" if xs else "— (the answer is exact)"

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nNew run preview, one ε change = one new calibration; median (max) of {len(values)} changes "
          f"(ε = {', '.join(f'{v:g}' for v in values)}), workshop-eps3 (N = {n:,}), warm process, "
          f"{os.cpu_count()} CPUs, load average {load:.1f} at the end\n")
    print("| accountant | before: calibration + curve | after: answer | ratio | after: answer, nothing known "
          "| after: exact preview ready | calibration alone: before → after (ratio) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        res = results[r]
        ratio = statistics.median(res["before"]) / statistics.median(res["answer"])
        cb, ca = statistics.median(res["calib_before"]), statistics.median(res["calib_after"])
        label = {"rdp": "RDP", "prv": "PRV", "pld": "PLD", "laplace": "Laplace (PLD)"}[r]
        print(f"| {label} | {ms(res['before'])} | {ms(res['answer'])} | {ratio:.0f}× | {ms(res['cold'])} "
              f"| {s(res['exact'])} "
              f"| {cb * 1000:.0f} → {ca * 1000:.0f} ms ({cb / ca:.1f}×) |")
    print("\nafter: RDP answers are exact; PRV/PLD answer with RDP's σ as an upper bound (Laplace: no σ yet) "
          "and no curve until the exact preview is ready. 'answer' is a slider move (ε values computed for "
          "earlier moves of the same settings are reused); 'nothing known' is the first change after new "
          "settings (another corpus, batch size or number of steps).")


if __name__ == "__main__":
    main()

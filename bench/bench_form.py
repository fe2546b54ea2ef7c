"""What drawing the New run form costs the dashboard process: time and peak RSS, with and without torch.

    python bench/bench_form.py [--rounds N]

The form's preview (corpus sizes, calibrated σ, predicted ε curve) no longer needs torch: the corpus is
sized with ``summarize_lm_data`` and RDP is computed by a torch-free port of Opacus's arithmetic. Each
scenario runs in a fresh subprocess, "before" importing torch and Opacus first (what the old path
loaded), "after" not; children run in interleaved rounds so that machine load hits both alike, and the
table shows medians and the before/after ratios from this one invocation.

Scenarios:

* ``preview`` — import ``dpcore.runs.preview`` and compute ``preview()`` of the default preset
  (``get_preset("workshop-eps3").config``).
* ``New run page`` — the page's first render through Streamlit's AppTest (``app.py``, then
  ``switch_page("pages/screens/new_run.py")``), with a temporary data folder and an executor that starts
  nothing, as in ``tests/apptest_support.py``. It opens on the workshop-eps3 preset.
* ``New run page, device=auto`` — the same with ``?preset=workshop-eps3&device=auto`` in the URL
  (``check()`` resolves a device other than "auto" through torch; the preset says "cpu").

Columns: "to result" is the child's own time from its first line (torch preload included) to the
preview or the rendered page; "process" is the parent's wall clock for the whole child (interpreter
start and exit included); "peak RSS" is the child's VmHWM; "torch" says whether torch was in
``sys.modules`` at the end of an "after" child (it should not be).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PRESET = "workshop-eps3"
PAGE = "pages/screens/new_run.py"
SCENARIOS = {
    "preview": "preview(workshop-eps3)",
    "page": "New run page, first render",
    "page-auto": "New run page, first render, ?preset=workshop-eps3&device=auto",
}


def _peak_rss_mb() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _preview() -> dict:
    from dpcore.config.presets import get_preset
    from dpcore.runs.preview import preview

    pv = preview(get_preset(PRESET).config)
    return {"final_epsilon": pv.final_epsilon, "noise": pv.noise_multiplier, "num_train": pv.num_train}


def _page(query: dict[str, str]) -> dict:
    import tempfile

    import pages.ui.session as session
    from tests.apptest_support import ROUTER, SECRET_A, DashboardAppTest, FakeExecutor

    data_dir = tempfile.mkdtemp(prefix="bench-form-")
    os.environ["DPCORE_DATA_DIR"] = data_dir
    os.chdir(ROOT)
    session.build_executor = FakeExecutor  # nothing trains
    at = DashboardAppTest(ROUTER, default_timeout=300)
    at.session_state["_owner_secret"] = SECRET_A
    at.session_state["_owner_cookie_set"] = True
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page(PAGE)
    at.run()
    if at.exception:
        raise RuntimeError(f"the page raised: {[e.value for e in at.exception]}")
    metrics = {m.label: m.value for m in at.metric}
    return {"noise": metrics.get("Noise σ"), "steps": metrics.get("Steps")}


def child(scenario: str, preload: bool) -> None:
    """In the child: optionally import torch and Opacus, then do the scenario; print one JSON line."""
    t0 = time.perf_counter()
    if preload:
        import opacus  # noqa: F401 - imports torch too
        import opacus.accountants  # noqa: F401
        import torch  # noqa: F401
    t_preload = time.perf_counter() - t0
    if scenario == "preview":
        out = _preview()
    elif scenario == "page":
        out = _page({})
    else:
        out = _page({"preset": PRESET, "device": "auto"})
    total = time.perf_counter() - t0
    print(json.dumps({"preload_s": t_preload, "result_s": total, "peak_rss_mb": _peak_rss_mb(),
                      "torch": "torch" in sys.modules, "opacus": "opacus" in sys.modules, "out": out}))


def run_child(scenario: str, preload: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", scenario] + (["--preload"] if preload else [])
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"child {scenario} preload={preload} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_s"] = wall
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated: " + ", ".join(SCENARIOS))
    parser.add_argument("--child", choices=list(SCENARIOS), help=argparse.SUPPRESS)
    parser.add_argument("--preload", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.preload)
        return

    scenarios = [s for s in args.scenarios.split(",") if s]
    results: dict[tuple[str, bool], list[dict]] = {(s, p): [] for s in scenarios for p in (True, False)}
    for r in range(args.rounds):  # interleaved: before and after of every scenario in each round
        for scenario in scenarios:
            for preload in ((True, False) if r % 2 == 0 else (False, True)):
                results[(scenario, preload)].append(run_child(scenario, preload))
                print(f"round {r + 1}/{args.rounds} {scenario} {'before' if preload else 'after'}: "
                      f"{results[(scenario, preload)][-1]['result_s']:.2f} s", file=sys.stderr)

    def med(rows: list[dict], key: str) -> float:
        return statistics.median(row[key] for row in rows)

    print(f"\nNew run form: before (torch + Opacus imported first) vs after; median of {args.rounds} rounds, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}\n")
    print("| scenario | to result: before → after (ratio) | process: before → after (ratio) "
          "| peak RSS MB: before → after (ratio) | torch after |")
    print("|---|---|---|---|---|")
    for scenario in scenarios:
        before, after = results[(scenario, True)], results[(scenario, False)]
        cells = []
        for key, fmt in (("result_s", "{:.2f} s"), ("process_s", "{:.2f} s"), ("peak_rss_mb", "{:.0f}")):
            b, a = med(before, key), med(after, key)
            cells.append(f"{fmt.format(b)} → {fmt.format(a)} ({b / a:.1f}×)")
        torch_after = "yes" if any(row["torch"] for row in after) else "no"
        print(f"| {SCENARIOS[scenario]} | " + " | ".join(cells) + f" | {torch_after} |")
    preload = statistics.median(row["preload_s"] for s in scenarios for row in results[(s, True)])
    print(f"\nimporting torch + Opacus alone (the 'before' preload): {preload:.2f} s (median)")
    for scenario in scenarios:
        outs = {json.dumps(row["out"], sort_keys=True) for p in (True, False) for row in results[(scenario, p)]}
        print(f"{scenario}: {' / '.join(sorted(outs))}")


if __name__ == "__main__":
    main()

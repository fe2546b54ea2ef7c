"""Launch → first point: how long a newcomer waits, quiet and with the machine busy.

    python bench/bench_launch.py [--tries 3] [--parts browser,store] [--configs rdp,prv,pld] [--workers standby,cold]

Two measurements, each on a quiet machine and with two busy-loop processes started (``--busy 2``, what
"a loaded 2-core machine" means here), rounds interleaved so that other load hits every cell alike:

* **browser** — the dashboard as a visitor uses it: ``streamlit run app.py`` on a free 127.0.0.1 port with
  its own data folder (``tests/browser/conftest.py``'s ``serve_app``), Debian's Chromium. Open
  ``/new_run?preset=workshop-eps3`` (``&accountant=prv`` for the PRV row), wait until the preview is final
  (for PRV: the exact σ), click **Launch run**, and time until the monitor's "training loss" trace has a
  point. The run is then cancelled and its worker waited for.
* **store** — the same launch without the browser: ``LocalExecutor.submit`` to the first metric row in the
  store (polled every 20 ms), with the σ stored by the dashboard at launch (``prepare_launch``, what the
  Launch button does) and without it (the worker calibrates itself, with this version's calibration). The
  worker's own log line "start-up: trainer ready …, first step stored …" is read back for where the time
  goes. The load average (1 min) is printed with each row: on a shared machine it says how quiet "quiet" was.

Both parts measure each ``--workers`` kind: ``standby`` (the default: the executor keeps a standby worker,
:mod:`dpcore.runs.warm`, and each launch waits, untimed, until one has warmed up, as on a server that
had a few seconds since its last launch) and ``cold`` (``DPCORE_WARM_WORKERS=0``: a worker is started
for each run, as before standby workers). The public model is built once before the first launch
(untimed; before standby workers, the first browser try included building it).

Prints the tables (median, min–max) from this one invocation.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, serve_app, wait_for_app  # noqa: E402

PRESET = "workshop-eps3"
CONFIGS = {"rdp": {}, "prv": {"accountant": "prv"}, "pld": {"accountant": "pld"}}
LOSS_POINTS_JS = """() => Math.max(0, ...Array.from(document.querySelectorAll('.js-plotly-plot'))
  .flatMap(el => (el.data || []).filter(t => t.name === 'training loss').map(t => (t.x || []).length)))"""
STARTUP_RE = re.compile(r"start-up: trainer ready ([0-9.]+) s, first step stored ([0-9.]+) s")


@contextlib.contextmanager
def busy(n: int):
    """``n`` processes spinning on a core each (none for n = 0)."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5 if n else 0)
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _stop_all(store) -> None:
    """Cancel every live run of ``store`` and wait until its worker is gone (SIGKILL after 20 s)."""
    from dpcore.runs.executors.local import process_alive

    deadline = time.monotonic() + 20
    for run in store.list_runs(status=("running", "queued")):
        store.request_cancel(run.id)
        if run.pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(run.pid, signal.SIGTERM)
    while time.monotonic() < deadline:
        alive = [r for r in store.list_runs(status=("running",)) if process_alive(r.pid, r.pid_ident)]
        if not alive:
            return
        time.sleep(0.1)
    for r in store.list_runs(status=("running",)):
        with contextlib.suppress(ProcessLookupError, PermissionError, TypeError):
            os.killpg(r.pid, signal.SIGKILL)


def _config(name: str):
    from dpcore.config.presets import get_preset

    return get_preset(PRESET).config.replace(**CONFIGS[name])


# ------------------------------------------------------------------------------- store
def _standby_waiting(data_dir: Path, executor=None, timeout: float = 180.0) -> float:
    """Wait (untimed) until a warmed-up standby worker waits in ``data_dir``'s pool; the seconds waited."""
    from dpcore.runs import warm
    from dpcore.runs.executors.local import process_alive

    pool, t0 = warm.Pool(data_dir), time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if executor is not None:
            executor.poll()  # a keeper starts its standby on poll
        for entry in pool.entries():
            with contextlib.suppress(OSError):
                if (not entry.claimed and process_alive(entry.pid, entry.ident)
                        and "warmed up" in pool.file(entry.pid, ".log").read_text()):
                    return time.perf_counter() - t0
        time.sleep(0.1)
    raise SystemExit(f"no standby worker warmed up in {timeout:.0f} s (see {pool.dir}/last-died.log)")


def _build_public_model(data_dir: Path) -> None:
    """The public model the preset starts from, built once ahead (untimed)."""
    import torch

    from dpcore.training.pretrain import ensure_public_model

    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a worker: two spin-waiting threads on a busy 2-core machine are far slower
    try:
        ensure_public_model(_config("rdp"), data_dir=data_dir)
    finally:
        torch.set_num_threads(threads)
    print(f"public model ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


def store_launch(data_dir: Path, name: str, stored: bool, mode: str = "cold") -> dict:
    """Submit one run and time it to its first metric row; σ stored by the dashboard or not."""
    from dpcore.privacy import calcache
    from dpcore.runs import preview as pv
    from dpcore.runs.executors.local import LocalExecutor
    from dpcore.runs.store import RunStore

    config = _config(name)
    store = RunStore(data_dir)
    folder = calcache.folder_in(store.data_dir)
    shutil.rmtree(folder, ignore_errors=True)  # what the last try's worker stored
    if stored:  # what Launch does: the preview's σ handed over (computed before the click: not timed)
        checked = pv.check(config)
        while checked.preview is not None and checked.preview.pending:
            pv.exact_ready(config) or time.sleep(0.05)
            checked = pv.check(config)
        pv.prepare_launch(config, store.data_dir)
        for _ in range(200):
            if list(folder.glob("*.json")):
                break
            time.sleep(0.01)
    executor = LocalExecutor(store, 1, warm_workers=1 if mode == "standby" else 0)
    if mode == "cold":
        executor.close()  # no standby of an earlier try may take this run
    waited = _standby_waiting(data_dir, executor) if mode == "standby" else 0.0
    t0 = time.perf_counter()
    run_id = executor.submit("bench-owner", config)
    first = None
    while time.perf_counter() - t0 < 600:
        run = store.get_run(run_id)
        if (run.last_step or 0) >= 1:
            first = time.perf_counter() - t0
            break
        if run.is_terminal:
            raise SystemExit(f"run {run_id} ended before its first step: {run.status} {run.error}")
        time.sleep(0.02)
    standby = "standby worker" in (store.run_dir(run_id) / "worker.log").read_text(errors="replace")
    _stop_all(store)
    log = (store.run_dir(run_id) / "worker.log").read_text(errors="replace")
    m = STARTUP_RE.search(log)
    store.close()
    return {"first_s": first, "ready_s": float(m.group(1)) if m else None,
            "worker_first_s": float(m.group(2)) if m else None, "load": os.getloadavg()[0],
            "standby": standby, "waited_s": waited}


def run_store(args, names: list[str], modes: list[str]) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-launch-store-"))
    cells: dict[tuple, list[dict]] = {}
    try:
        _build_public_model(data_dir)
        for r in range(args.tries):
            for load in (0, args.busy):
                with busy(load):
                    for mode in (modes if r % 2 == 0 else modes[::-1]):
                        for name in names:
                            for stored in ((True, False) if r % 2 == 0 else (False, True)):
                                res = store_launch(data_dir, name, stored, mode)
                                cells.setdefault((load, mode, name, stored), []).append(res)
                                print(f"store try {r + 1} busy={load} {mode} {name} stored={stored}: "
                                      f"{res['first_s']:.2f} s (standby: {res['standby']}, waited "
                                      f"{res['waited_s']:.1f} s for it)", file=sys.stderr)
    finally:
        from dpcore.runs.executors.local import LocalExecutor
        from dpcore.runs.store import RunStore

        LocalExecutor(RunStore(data_dir), 1).close()
        shutil.rmtree(data_dir, ignore_errors=True)
    print(f"\nSubmit → first metric row in the store (no browser), median (min–max) of {args.tries}; "
          f"{os.cpu_count()} CPUs\n")
    print("| machine | worker | config | σ stored at launch | worker calibrates itself | saved "
          "| worker: trainer ready / first step (σ stored) | load average |")
    print("|---|---|---|---|---|---|---|---|")
    for load, mode, name in ((lo, mo, na) for lo in (0, args.busy) for mo in modes for na in names):
        if True:
            a, b = cells[(load, mode, name, True)], cells[(load, mode, name, False)]
            fa, fb = [x["first_s"] for x in a], [x["first_s"] for x in b]
            ready = [x["ready_s"] for x in a if x["ready_s"] is not None]
            wfirst = [x["worker_first_s"] for x in a if x["worker_first_s"] is not None]
            machine = "no busy loops" if not load else f"{load} busy loops"
            print(f"| {machine} | {mode} | {name.upper()} | {_fmt(fa)} | {_fmt(fb)} "
                  f"| {statistics.median(fb) - statistics.median(fa):.2f} s "
                  f"| {_med(ready)} / {_med(wfirst)} | {statistics.median(x['load'] for x in a + b):.1f} |")


# ------------------------------------------------------------------------------- browser
def browser_launch(page, url: str, name: str, store, mode: str) -> tuple[float, bool]:
    """One launch: seconds from the click to the first point, and whether a standby worker trained it."""
    if mode == "standby":  # the home page polls the executor, which keeps its standby: wait for it, untimed
        page.goto(url)
        wait_for_app(page)
        _standby_waiting(store.data_dir)
    query = f"/new_run?preset={PRESET}" + (f"&accountant={CONFIGS[name]['accountant']}" if CONFIGS[name] else "")
    page.goto(url + query)
    wait_for_app(page)
    page.get_by_text("can change the odds").first.wait_for(timeout=120_000)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and page.get_by_text("Computing the exact").count():
        page.wait_for_timeout(200)  # a PRV preview: wait for the exact σ, as a visitor reading it would
    wait_for_app(page)
    button = page.get_by_role("button", name="Launch run")
    t0 = time.perf_counter()
    button.click()
    page.wait_for_url(re.compile(r"/monitor\?run=[0-9a-f]+$"), timeout=120_000)
    page.wait_for_function(f"({LOSS_POINTS_JS})() > 0", timeout=600_000, polling=50)
    elapsed = time.perf_counter() - t0
    run_id, standby = page.url.rsplit("run=", 1)[-1], False
    with contextlib.suppress(OSError):
        standby = "standby worker" in (store.run_dir(run_id) / "worker.log").read_text(errors="replace")
    _stop_all(store)
    return elapsed, standby


def run_browser(args, names: list[str], modes: list[str]) -> None:
    from playwright.sync_api import sync_playwright

    from dpcore.runs.store import RunStore

    root = Path(tempfile.mkdtemp(prefix="bench-launch-browser-"))
    cells: dict[tuple, list[float]] = {}
    loads: dict[int, list[float]] = {}
    handed: dict[str, list[bool]] = {}
    try:
        _build_public_model(root / "public")
        with contextlib.ExitStack() as stack, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.set_default_timeout(120_000)
            servers = {}
            for mode in modes:  # one server (and data folder) per kind, so a cold server never finds a standby
                data_dir = root / mode
                shutil.copytree(root / "public", data_dir)
                env = {"DPCORE_MAX_CONCURRENT": "1", "DPCORE_WARM_WORKERS": "1" if mode == "standby" else "0"}
                url, _proc = stack.enter_context(serve_app(data_dir, env))
                page = context.new_page()
                page.goto(url)  # warm the server (a room's server is up before the room arrives)
                wait_for_app(page)
                servers[mode] = (url, page, RunStore(data_dir))
            for r in range(args.tries):
                for load in ((0, args.busy) if r % 2 == 0 else (args.busy, 0)):
                    with busy(load):
                        for mode in (modes if r % 2 == 0 else modes[::-1]):
                            url, page, store = servers[mode]
                            for name in names:
                                t, standby = browser_launch(page, url, name, store, mode)
                                cells.setdefault((load, mode, name), []).append(t)
                                loads.setdefault(load, []).append(os.getloadavg()[0])
                                handed.setdefault(mode, []).append(standby)
                                print(f"browser try {r + 1} busy={load} {mode} {name}: {t:.2f} s "
                                      f"(standby: {standby})", file=sys.stderr)
            for _url, _page, store in servers.values():
                store.close()
            browser.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\nClick on Launch run → first point of the training loss on the monitor (Chromium), "
          f"median (min–max) of {args.tries}; {os.cpu_count()} CPUs\n")
    print("| machine | worker | " + " | ".join(f"workshop-eps3, {n.upper()}" for n in names) + " | load average |")
    print("|---|---|" + "---|" * len(names) + "---|")
    for load in (0, args.busy):
        for mode in modes:
            print(f"| {'no busy loops' if not load else f'{load} busy loops'} | {mode} | "
                  + " | ".join(_fmt(cells[(load, mode, n)]) for n in names)
                  + f" | {statistics.median(loads[load]):.1f} |")
    for mode in modes:
        print(f"\n{mode}: {sum(handed[mode])} of {len(handed[mode])} launches trained by a standby worker")


def _fmt(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} s ({min(xs):.2f}–{max(xs):.2f})"


def _med(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} s" if xs else "—"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("--busy", type=int, default=2, help="busy-loop processes for the loaded rows")
    parser.add_argument("--parts", default="browser,store")
    parser.add_argument("--configs", default="rdp,prv", help="comma-separated: " + ", ".join(CONFIGS))
    parser.add_argument("--workers", default="standby,cold", help="comma-separated: standby, cold")
    args = parser.parse_args()
    names = [n for n in args.configs.split(",") if n]
    modes = [m for m in args.workers.split(",") if m in ("standby", "cold")]
    parts = [p for p in args.parts.split(",") if p]
    print(f"load average before: {os.getloadavg()[0]:.1f}", file=sys.stderr)
    if "store" in parts:
        run_store(args, names, modes)
    if "browser" in parts:
        if not Path(CHROMIUM).exists():
            raise SystemExit(f"the browser part needs {CHROMIUM}")
        run_browser(args, names, modes)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

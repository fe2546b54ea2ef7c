"""A workshop room against one dashboard: N browser sessions while two real runs train.

    python bench/load.py [--sessions 30] [--duration 90] [--dwell 30] [--ramp 10] [--json out.json]

What it does, bounded in count and time, loopback only:

1. starts its own ``streamlit run app.py`` on a free 127.0.0.1 port with a fresh temporary
   ``DPCORE_DATA_DIR`` and ``DPCORE_MAX_CONCURRENT=2`` (the pattern and helpers of
   ``tests/browser/conftest.py``), and warms it up with one browser visit (not counted: a room's
   server is started before the room arrives);
2. submits two real runs of the ``workshop-eps3`` preset (``--steps`` 2000 instead of its 300, so
   that they train through the whole load) for two owners (``DPCORE_MAX_ACTIVE_PER_OWNER``
   is 1) through ``LocalExecutor`` and waits until both train;
3. opens ``--sessions`` browser contexts in one Debian Chromium (``/usr/bin/chromium``, asyncio
   Playwright), their starts spread over ``--ramp`` seconds. Each session repeats, until
   ``--duration`` is up: Home, New run (``/new_run?preset=workshop-eps3``), the monitor of one of the
   two runs (``/monitor?run=<id>``, sessions alternate) and stays there ``--dwell`` seconds;
4. prints one table and stops the browser, the workers and the server whatever happens.

"Page ready" is measured in the page itself: an observer installed before the document loads
records ``performance.now()`` (milliseconds since navigation start) the first time the app is
connected, Streamlit's script has finished (``[data-testid='stApp'][data-test-script-state='notRunning']``),
no skeleton is left and the page's title is drawn: what ``wait_for_app`` waits for, without the
driver's polling delay. The driver confirms the state (``--page-timeout``, else a timeout error).
Errors: ``stException`` on the page, "Page not found", "Connection error" or a connection state
other than CONNECTED (also checked every 5 s while a session watches the monitor), timeouts and
failed navigations. Resources come from ``/proc``: the server's CPU (cores busy, average over the
load and the busiest 2 s) and RSS (peak sampled during the load, and VmHWM), the workers', and the
rest of the machine (Chromium and this driver).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.browser.conftest import (  # noqa: E402  (after the path fix)
    CHROMIUM,
    CHROMIUM_ARGS,
    serve_app,
)

PRESET = "workshop-eps3"
OWNERS = ("load-owner-a", "load-owner-b")
PAGES = ("Home", "New run", "Monitor")
TICK = os.sysconf("SC_CLK_TCK")

#: Installed in every document before it loads: first "page ready" time, and how often the script
#: (or the monitor's fragment) finished since.
READY_INIT_JS = """
(() => {
  const ready = () => {
    const app = document.querySelector("[data-testid='stApp']");
    return !!app && app.getAttribute('data-test-connection-state') === 'CONNECTED'
      && app.getAttribute('data-test-script-state') === 'notRunning'
      && !document.querySelector("[data-testid='stSkeleton']")
      && !!document.querySelector("[data-testid='stMain'] h1");
  };
  window.__loadReadyAt = null;
  window.__loadFinishes = 0;
  let was = false;
  const check = () => {
    const now = ready();
    if (now && !was) {
      window.__loadFinishes += 1;
      if (window.__loadReadyAt === null) window.__loadReadyAt = performance.now();
    }
    was = now;
  };
  const start = () => {
    new MutationObserver(check).observe(document.documentElement,
      {subtree: true, childList: true, attributes: true,
       attributeFilter: ['data-test-script-state', 'data-test-connection-state', 'data-testid']});
    check();
  };
  if (document.documentElement) start(); else document.addEventListener('DOMContentLoaded', start);
})();
"""
READY_JS = "() => window.__loadReadyAt !== null"
#: What is wrong on the page now ('' when nothing).
ERRORS_JS = """() => {
  if (document.querySelector("[data-testid='stException']")) return 'exception';
  const text = document.body ? document.body.innerText : '';
  if (text.includes('Page not found')) return 'page not found';
  if (text.includes('Connection error')) return 'connection error';
  const app = document.querySelector("[data-testid='stApp']");
  const state = app && app.getAttribute('data-test-connection-state');
  if (state && state !== 'CONNECTED') return 'connection ' + state;
  return '';
}"""
#: Points in the monitor's loss curve (the most points of any trace on the page).
POINTS_JS = """() => Math.max(0, ...Array.from(document.querySelectorAll('.js-plotly-plot'))
  .flatMap(el => (el.data || []).map(t => (t.x || []).length)))"""


# ---------------------------------------------------------------------------------------- /proc
def _cpu_s(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
    except (OSError, IndexError, ValueError):
        return None


def _status_kb(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _machine_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    with open("/proc/stat", encoding="ascii") as fh:
        vals = [int(v) for v in fh.readline().split()[1:]]
    idle = vals[3] + vals[4]
    total = sum(vals[:8])
    return (total - idle) / TICK, total / TICK


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


class Sampler(threading.Thread):
    """Every 0.5 s: the server's CPU and RSS, the workers' CPU, the machine's, the runs' progress."""

    def __init__(self, server_pid: int, store, run_ids: list[str]) -> None:
        super().__init__(daemon=True)
        self.server_pid, self.store, self.run_ids = server_pid, store, run_ids
        self.stop_event = threading.Event()
        self.samples: list[dict] = []
        self._client_last: dict[int, float] = {}
        self.worker_pids: set[int] = set()
        self.client_cpu = 0.0  # this driver, Playwright's node and Chromium: positive deltas summed per pid

    def _client(self, skip: set[int]) -> float:
        me = os.getpid()
        for pid in [me, *_descendants(me)]:
            if pid in skip:
                continue
            cpu = _cpu_s(pid)
            if cpu is not None:
                self.client_cpu += max(0.0, cpu - self._client_last.get(pid, cpu if pid != me else 0.0))
                self._client_last[pid] = cpu
        return self.client_cpu

    def _worker_cpu(self) -> tuple[float, dict[str, tuple[str, int | None, int | None]]]:
        cpu, runs = 0.0, {}
        self.worker_pids = set()
        for rid in self.run_ids:
            run = self.store.get_run(rid)
            if run.pid:
                self.worker_pids.add(run.pid)
            runs[rid] = (run.status, run.last_step, run.total_steps)
            if run.pid and not run.is_terminal:
                cpu += _cpu_s(run.pid) or 0.0
        return cpu, runs

    def sample(self) -> dict:
        busy, total = _machine_busy_s()
        workers, runs = self._worker_cpu()
        client = self._client({self.server_pid, *self.worker_pids})
        return {"client_cpu": client, "t": time.monotonic(), "server_cpu": _cpu_s(self.server_pid) or 0.0,
                "server_rss_kb": _status_kb(self.server_pid, "VmRSS") or 0,
                "worker_cpu": workers, "machine_busy": busy, "machine_total": total, "runs": runs}

    def run(self) -> None:
        while not self.stop_event.is_set():
            with contextlib.suppress(Exception):  # a run or process ending mid-read
                self.samples.append(self.sample())
            self.stop_event.wait(0.5)


# ---------------------------------------------------------------------------------------- server
def serve(data_dir: Path, max_concurrent: int):
    """The app on a free loopback port (tests/browser/conftest.py's ``serve_app``); yields (url, process)."""
    return serve_app(data_dir, {"DPCORE_MAX_CONCURRENT": str(max_concurrent)})


# ---------------------------------------------------------------------------------------- sessions
@dataclasses.dataclass
class Results:
    latency_ms: dict[str, list[float]] = dataclasses.field(default_factory=lambda: {p: [] for p in PAGES})
    driver_ms: dict[str, list[float]] = dataclasses.field(default_factory=lambda: {p: [] for p in PAGES})
    errors: dict[str, list[str]] = dataclasses.field(default_factory=lambda: {p: [] for p in PAGES})
    dwell_s: float = 0.0
    dwell_finishes: int = 0  # monitor fragment runs seen while watching
    dwell_points: int = 0  # loss-curve points added while watching
    sessions_started: int = 0


async def _open(page, name: str, url: str, res: Results, timeout_ms: float) -> bool:
    t0 = time.monotonic()
    try:
        await page.goto(url, wait_until="commit", timeout=timeout_ms)
        await page.wait_for_function(READY_JS, polling=100, timeout=timeout_ms)
    except Exception as exc:  # noqa: BLE001 - every failure is a counted error
        msg = str(exc).splitlines()[0]
        kind = "timeout" if "Timeout" in type(exc).__name__ or "Timeout" in msg else f"navigation: {msg[:80]}"
        res.errors[name].append(kind)
        return False
    driver = (time.monotonic() - t0) * 1000
    ready = await page.evaluate("() => window.__loadReadyAt")
    res.latency_ms[name].append(float(ready))
    res.driver_ms[name].append(driver)
    problem = await page.evaluate(ERRORS_JS)
    if problem:
        res.errors[name].append(problem)
        return False
    return True


async def _session(i: int, browser, url: str, run_ids: list[str], args, res: Results, deadline: float) -> None:
    await asyncio.sleep(args.ramp * i / max(1, args.sessions))
    if time.monotonic() >= deadline:
        return
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    res.sessions_started += 1
    timeout_ms = args.page_timeout * 1000
    try:
        await ctx.add_init_script(READY_INIT_JS)
        page = await ctx.new_page()
        run_id = run_ids[i % len(run_ids)]
        targets = (("Home", url), ("New run", f"{url}/new_run?preset={PRESET}"),
                   ("Monitor", f"{url}/monitor?run={run_id}"))
        while time.monotonic() < deadline:
            for name, target in targets:
                ok = await _open(page, name, target, res, timeout_ms)
                if name != "Monitor" or not ok:
                    continue
                # watch the run: check for errors every 5 s, count fragment runs and new points
                t_in = time.monotonic()
                finishes0 = await page.evaluate("() => window.__loadFinishes")
                points0 = await page.evaluate(POINTS_JS)
                end = min(deadline, t_in + args.dwell)
                while time.monotonic() < end:
                    await asyncio.sleep(min(5.0, max(0.0, end - time.monotonic())))
                    problem = await page.evaluate(ERRORS_JS)
                    if problem:
                        res.errors["Monitor"].append(f"while watching: {problem}")
                        break
                res.dwell_s += time.monotonic() - t_in
                res.dwell_finishes += await page.evaluate("() => window.__loadFinishes") - finishes0
                res.dwell_points += max(0, await page.evaluate(POINTS_JS) - points0)
            if time.monotonic() >= deadline:
                break
    except Exception as exc:  # noqa: BLE001 - a broken session is an error, not a crash
        res.errors["Monitor"].append(f"session: {str(exc).splitlines()[0][:80]}")
    finally:
        with contextlib.suppress(Exception):
            await ctx.close()


async def _load(url: str, run_ids: list[str], args, res: Results, warmup: dict) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            # warm-up (not counted): the first visit flips Streamlit's router and imports the pages
            ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
            await ctx.add_init_script(READY_INIT_JS)
            page = await ctx.new_page()
            warm = Results()
            for name, target in (("Home", url), ("New run", f"{url}/new_run?preset={PRESET}"),
                                 ("Monitor", f"{url}/monitor?run={run_ids[0]}")):
                await _open(page, name, target, warm, args.page_timeout * 1000)
                warmup[name] = warm.latency_ms[name][-1] if warm.latency_ms[name] else None
            await ctx.close()

            warmup["load_start"] = time.monotonic()
            deadline = time.monotonic() + args.duration
            hard_cap = args.duration + args.ramp + 3 * args.page_timeout + 60
            tasks = [asyncio.create_task(_session(i, browser, url, run_ids, args, res, deadline))
                     for i in range(args.sessions)]
            done, pending = await asyncio.wait(tasks, timeout=hard_cap)
            for t in pending:
                t.cancel()
                res.errors["Monitor"].append("session: cancelled at the hard time cap")
            await asyncio.gather(*pending, return_exceptions=True)
            warmup["load_end"] = time.monotonic()
        finally:
            with contextlib.suppress(Exception):
                await browser.close()


# ---------------------------------------------------------------------------------------- report
def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def _window(samples: list[dict], t0: float, t1: float) -> list[dict]:
    return [s for s in samples if t0 - 0.6 <= s["t"] <= t1 + 0.6]


def report(args, res: Results, warmup: dict, samples: list[dict], server_hwm_kb: int | None,
           run_ids: list[str]) -> dict:
    t0, t1 = warmup.get("load_start", 0.0), warmup.get("load_end", 0.0)
    win = _window(samples, t0, t1)
    out: dict = {"sessions": args.sessions, "duration_s": args.duration, "dwell_s": args.dwell, "ramp_s": args.ramp,
                 "cpus": os.cpu_count(), "pages": {}, "warmup_ms": {k: warmup.get(k) for k in PAGES}}
    print(f"\nload: {args.sessions} sessions ({res.sessions_started} started), {args.duration:g} s, "
          f"ramp {args.ramp:g} s, monitor dwell {args.dwell:g} s, {os.cpu_count()} CPUs; "
          f"warm-up (not counted): " + ", ".join(f"{k} {v / 1000:.1f} s" if v else f"{k} -" for k, v in
                                               ((k, warmup.get(k)) for k in PAGES)))
    print("\n| page | count | p50 | p95 | max | errors |")
    print("|---|---|---|---|---|---|")
    for name in PAGES:
        lat = res.latency_ms[name]
        errs = res.errors[name]
        label = "New run (first render)" if name == "New run" else name
        cells = [f"{_pct(lat, q) / 1000:.2f} s" if lat else "-" for q in (0.5, 0.95)]
        cells.append(f"{max(lat) / 1000:.2f} s" if lat else "-")
        kinds = {}
        for e in errs:
            kinds[e] = kinds.get(e, 0) + 1
        err_txt = str(len(errs)) + (" (" + ", ".join(f"{v}× {k}" for k, v in kinds.items()) + ")" if errs else "")
        print(f"| {label} | {len(lat)} | " + " | ".join(cells) + f" | {err_txt} |")
        out["pages"][name] = {"count": len(lat), "p50_ms": _pct(lat, 0.5), "p95_ms": _pct(lat, 0.95),
                              "max_ms": max(lat) if lat else None, "errors": errs,
                              "driver_p95_ms": _pct(res.driver_ms[name], 0.95)}
    if len(win) >= 2:
        out.update(report_resources(win, run_ids, server_hwm_kb, warmup, "Chromium + Playwright + this driver"))
    if res.dwell_s:
        print(f"monitor while watching: {res.dwell_finishes / res.dwell_s:.2f} live refreshes/s per session "
              f"(the fragment asks for 1/s), {res.dwell_points} new loss points seen in {res.dwell_s:.0f} session-s")
        out.update(monitor_refresh_per_s=res.dwell_finishes / res.dwell_s, monitor_points=res.dwell_points)
    p95 = [out["pages"][p]["driver_p95_ms"] for p in PAGES]
    print("driver-side p95 (goto → the driver saw ready, polling 100 ms): "
          + ", ".join(f"{p} {v / 1000:.2f} s" for p, v in zip(PAGES, p95) if v == v))
    return out


def report_resources(win: list[dict], run_ids: list[str], server_hwm_kb: int | None, warmup: dict,
                     clients: str) -> dict:
    """Print and return the server's, workers' and clients' CPU and memory over the load, and the runs' progress.

    ``win``: the sampler's readings during the load (at least two); ``clients`` names what drove the load.
    """
    span = win[-1]["t"] - win[0]["t"]
    srv = (win[-1]["server_cpu"] - win[0]["server_cpu"]) / span
    peak = 0.0
    for a in win:  # busiest ~2 s window
        b = next((s for s in win if s["t"] >= a["t"] + 2.0), None)
        if b is not None:
            peak = max(peak, (b["server_cpu"] - a["server_cpu"]) / (b["t"] - a["t"]))
    wrk = sum(max(0.0, b["worker_cpu"] - a["worker_cpu"]) for a, b in zip(win, win[1:])) / span
    mach = (win[-1]["machine_busy"] - win[0]["machine_busy"]) / span
    rss_peak = max(s["server_rss_kb"] for s in win) / 1024
    cli = (win[-1]["client_cpu"] - win[0]["client_cpu"]) / span
    rest = max(0.0, mach - srv - wrk - cli)
    print(f"\nserver (streamlit): peak RSS {rss_peak:.0f} MB during the load (VmHWM "
          f"{(server_hwm_kb or 0) / 1024:.0f} MB), CPU {srv:.2f} cores on average, {peak:.2f} at the busiest 2 s")
    print(f"machine: {mach:.2f} of {os.cpu_count()} cores busy on average: server {srv:.2f}, "
          f"2 workers {wrk:.2f}, {clients} {cli:.2f}, other processes {rest:.2f} "
          f"(load average before: {warmup.get('loadavg', '?')})")
    out = dict(server_rss_peak_mb=rss_peak, server_hwm_mb=(server_hwm_kb or 0) / 1024, server_cpu_cores=srv,
               server_cpu_peak_cores=peak, worker_cpu_cores=wrk, machine_cpu_cores=mach, client_cpu_cores=cli,
               other_cpu_cores=rest)
    first, last = win[0]["runs"], win[-1]["runs"]
    out["runs"] = {}
    for k, rid in enumerate(run_ids):
        st0, s0, tot = first.get(rid, ("?", None, None))
        st1, s1, tot1 = last.get(rid, ("?", None, None))
        tot = tot1 or tot
        steps = (s1 or 0) - (s0 or 0)
        print(f"run {k + 1} ({rid}): step {s0 or 0} → {s1 or 0} of {tot} during the load "
              f"({steps / span:.2f} steps/s), {st0} → {st1}")
        out["runs"][rid] = {"step_start": s0, "step_end": s1, "total": tot, "status_start": st0,
                            "status_end": st1, "steps_per_s": steps / span}
    return out


# ---------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=30, help="concurrent browser sessions (1-60)")
    ap.add_argument("--duration", type=float, default=90.0, help="seconds of load (10-600)")
    ap.add_argument("--dwell", type=float, default=30.0, help="seconds each visit stays on the monitor")
    ap.add_argument("--ramp", type=float, default=10.0, help="session starts spread over this many seconds")
    ap.add_argument("--page-timeout", type=float, default=60.0, help="seconds until a page counts as a timeout")
    ap.add_argument("--steps", type=int, default=2000,
                    help="max_steps of the two runs (the preset's 300 would end early in the load; 0: the preset's)")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args(argv)
    if not 1 <= args.sessions <= 60 or not 10 <= args.duration <= 600:
        ap.error("--sessions must be 1-60 and --duration 10-600")
    if not Path(CHROMIUM).exists():
        print(f"load: needs Debian's chromium at {CHROMIUM}", file=sys.stderr)
        return 2

    # SIGTERM/SIGHUP unwind like Ctrl-C, so the finally blocks stop server, workers and browser
    def _raise(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise)

    max_concurrent = 2
    with tempfile.TemporaryDirectory(prefix="dprnn-load-") as tmp:
        data_dir = Path(tmp) / "data"
        os.environ["DPCORE_DATA_DIR"] = str(data_dir)  # the executor below and its workers
        os.environ["DPCORE_MAX_CONCURRENT"] = str(max_concurrent)
        from dpcore.config.presets import get_preset
        from dpcore.runs.executors.local import LocalExecutor
        from dpcore.runs.store import RunStore

        store = RunStore(data_dir)
        sampler = None
        try:
            with serve(data_dir, max_concurrent) as (url, proc):
                print(f"load: server {url} (pid {proc.pid}), data {data_dir}", flush=True)
                executor = LocalExecutor(store, max_concurrent)
                config = get_preset(PRESET).config
                if args.steps:
                    config = dataclasses.replace(config, max_steps=args.steps)
                run_ids = [executor.submit(owner, config) for owner in OWNERS]
                deadline = time.monotonic() + 120
                while True:  # until both train (worker start, corpus, calibration)
                    runs = [executor.status(r) for r in run_ids]
                    if all(r.status == "running" and r.last_step for r in runs):
                        break
                    if any(r.is_terminal for r in runs) or time.monotonic() > deadline:
                        raise RuntimeError("the runs did not start: " + ", ".join(
                            f"{r.id} {r.status} {r.error or ''}" for r in runs))
                    time.sleep(0.5)
                print(f"load: runs {', '.join(run_ids)} training; {args.sessions} sessions for "
                      f"{args.duration:g} s", flush=True)
                sampler = Sampler(proc.pid, store, run_ids)
                sampler.start()
                res, warmup = Results(), {"loadavg": " ".join(open("/proc/loadavg").read().split()[:3])}
                asyncio.run(_load(url, run_ids, args, res, warmup))
                sampler.stop_event.set()
                sampler.join(5)
                hwm = _status_kb(proc.pid, "VmHWM")
                out = report(args, res, warmup, sampler.samples, hwm, run_ids)
                if args.json:
                    args.json.write_text(json.dumps(out, indent=1, default=str) + "\n")
        finally:
            if sampler is not None:
                sampler.stop_event.set()
            store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

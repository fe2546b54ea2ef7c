"""The workshop room of bench/load.py without browsers: N websocket clients speaking Streamlit's protocol.

    python bench/load_ws.py [--sessions 30 [10 ...]] [--duration 90] [--dwell 30] [--ramp 10]
                            [--page-connection] [--no-auto-rerun] [--json out.json]

bench/load.py drives real Chromium sessions; on a 2-core machine the browsers take most of the CPU, so
it cannot tell whether the *server* keeps up. This bench runs the same scenario with clients that cost
almost nothing, so the server, the two workers and the clients' small share are what is measured.

What it does for each session count given (each count on its own server), bounded in count and time,
loopback only:

1. starts its own ``streamlit run app.py`` (``bench/load.py``'s ``serve``: a free 127.0.0.1 port, a
   fresh temporary ``DPCORE_DATA_DIR``, ``DPCORE_MAX_CONCURRENT=2``), submits two real runs of the
   ``workshop-eps3`` preset (``--steps`` 2000) for two owners through ``LocalExecutor``, waits until
   both train, and warms the server up with one client visiting the three pages (not counted);
2. opens ``--sessions`` websocket clients (``websockets``, already a Streamlit dependency) on
   ``ws://127.0.0.1:PORT/_stcore/stream``, their starts spread over ``--ramp`` seconds. Each repeats
   until ``--duration`` is up: Home, New run (``?preset=workshop-eps3``), the monitor of one of the two
   runs (``?run=<id>``, sessions alternate), staying there ``--dwell`` seconds;
3. prints one table per session count and stops the server and the workers whatever happens.

The protocol, as the frontend speaks it (``streamlit/static``'s ``sendRerunBackMsg``, the server's
``web/server/starlette/starlette_websocket.py`` and ``runtime/app_session.py``): the client connects
with the subprotocol ``streamlit`` and sends a ``BackMsg`` ``rerun_script`` (``ClientState``: the
``query_string``, ``page_name`` = the page's URL path, ``new_run``, ``monitor`` or ``""`` for Home,
``page_script_hash`` empty so that the server resolves the name against ``st.navigation``, no widget
states, ``context_info`` with the page's URL). The server answers with ``ForwardMsg``\\ s; the page is
rendered when ``script_finished`` says ``FINISHED_SUCCESSFULLY`` (every delta comes before it on the
same socket). On the monitor the server sends ``auto_rerun`` (the ``run_every`` fragment); like the
frontend's ``setInterval`` the client then sends a ``rerun_script`` with that ``fragment_id`` and
``is_auto_rerun`` every interval, and counts the fragment runs that finish
(``FINISHED_FRAGMENT_RUN_SUCCESSFULLY``) while it stays, the gaps between them, and the runs a newer
request preempted (``FINISHED_EARLY_FOR_RERUN``). ``--no-auto-rerun`` leaves the live refresh out (a
diagnosis: what the pages cost without it).

By default a session is one websocket (one Streamlit session, like a tab following the menu's links);
``--page-connection`` opens a new websocket for every page instead, like ``load.py``'s ``page.goto``
(a new Streamlit session per page), sending back the identity cookie the app set by script on the
first page, as a browser would. A page's time runs from sending the rerun (from opening the socket
when the page opens one) to ``script_finished``: the server's side of "first render", without the
HTML, JavaScript and drawing that load.py's in-page timer also counts.

Errors: ``exception`` deltas, ``page_not_found``, a script finished with a compile error, a socket
closed by the server (the next page reconnects), failed connections and timeouts (``--page-timeout``,
60 s; the socket is then closed and the next page reconnects). Resources as in load.py, from
``/proc``: the server's CPU and RSS, the workers', and this client process's own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.load import (  # noqa: E402  (after the path fix)
    OWNERS,
    PAGES,
    PRESET,
    Sampler,
    _pct,
    _status_kb,
    _window,
    report_resources,
    serve,
)

COOKIE = "dprnn_owner"  # pages/ui/session.py's COOKIE (not imported: that module imports streamlit's runtime)
_COOKIE_RE = re.compile(COOKIE + r"=([0-9a-f]{32});")
MAX_MSG_BYTES = 256 * 1024 * 1024  # streamlit's server.maxMessageSize default is 200 MB


# ---------------------------------------------------------------------------------------- results
@dataclasses.dataclass
class Results:
    latency_ms: dict[str, list[float]] = dataclasses.field(default_factory=lambda: {p: [] for p in PAGES})
    errors: dict[str, list[str]] = dataclasses.field(default_factory=lambda: {p: [] for p in PAGES})
    connect_ms: list[float] = dataclasses.field(default_factory=list)
    dwell_s: float = 0.0
    dwell_fragments: int = 0  # monitor fragment runs finished while staying
    fragment_gaps_ms: list[float] = dataclasses.field(default_factory=list)  # between consecutive ones
    fragment_requests: int = 0  # auto reruns the clients sent while staying
    dwell_interrupted: int = 0  # runs that ended FINISHED_EARLY_FOR_RERUN while staying (preempted)
    sessions_started: int = 0
    bytes_in: int = 0
    messages_in: int = 0


# ---------------------------------------------------------------------------------------- client
class Client:
    """One Streamlit session over one websocket, as the frontend drives it (no widgets, no drawing)."""

    def __init__(self, ws_url: str, http_url: str, res: Results, cookie: str | None = None,
                 auto_rerun: bool = True) -> None:
        self.ws_url, self.http_url, self.res, self.cookie = ws_url, http_url, res, cookie
        self.auto_rerun = auto_rerun
        self.ws = None
        self.reader: asyncio.Task | None = None
        self.waiter: asyncio.Future | None = None  # the full run being waited for
        self.problems: list[str] = []  # errors seen since the last take_problems()
        self.fragment_finishes: list[float] = []  # monotonic times of finished fragment runs
        self.interrupted = 0  # runs that ended early for a rerun (a newer request preempted them)
        self.auto: dict[str, asyncio.Task] = {}  # fragment id -> its interval task
        self.page = ("", "")  # (page_name, query_string) of the page shown now
        self.closed_reason: str | None = None

    # ----------------------------------------------------------------------------------- socket
    async def connect(self, timeout: float) -> None:
        from websockets.asyncio.client import connect

        headers = {"Cookie": f"{COOKIE}={self.cookie}"} if self.cookie else None
        self.ws = await asyncio.wait_for(
            connect(self.ws_url, subprotocols=["streamlit"], additional_headers=headers,
                    max_size=MAX_MSG_BYTES, open_timeout=timeout, ping_interval=None,
                    compression=None),
            timeout)
        self.closed_reason = None
        self.reader = asyncio.create_task(self._read())

    @property
    def connected(self) -> bool:
        return self.ws is not None and self.closed_reason is None

    async def close(self) -> None:
        self._stop_auto()
        ws, self.ws = self.ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 5)
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(BaseException):
                await self.reader
            self.reader = None

    def _stop_auto(self) -> None:
        for task in self.auto.values():
            task.cancel()
        self.auto.clear()

    async def _read(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        reason = "disconnect"
        try:
            async for raw in self.ws:
                if not isinstance(raw, bytes):
                    continue
                self.res.bytes_in += len(raw)
                self.res.messages_in += 1
                msg = ForwardMsg()
                msg.ParseFromString(raw)
                self._on(msg)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken socket is a counted error
            reason = f"disconnect ({type(exc).__name__})"
        self.closed_reason = reason
        self._stop_auto()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(reason))

    def _on(self, msg) -> None:
        kind = msg.WhichOneof("type")
        if kind == "delta":
            if msg.delta.WhichOneof("type") == "new_element":
                el = msg.delta.new_element
                which = el.WhichOneof("type")
                if which == "exception":
                    self.problems.append("exception")
                elif which == "html" and self.cookie is None:
                    found = _COOKIE_RE.search(el.html.body)
                    if found:  # the identity cookie the page sets by script, as a browser keeps it
                        self.cookie = found.group(1)
        elif kind == "page_not_found":
            self.problems.append("page not found")
        elif kind == "script_finished":
            status = msg.script_finished
            if status == msg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY:
                self.fragment_finishes.append(time.monotonic())
            elif status in (msg.FINISHED_SUCCESSFULLY, msg.FINISHED_WITH_COMPILE_ERROR):
                if self.waiter is not None and not self.waiter.done():
                    self.waiter.set_result(status)
            elif status == msg.FINISHED_EARLY_FOR_RERUN:  # st.rerun, or preempted by a newer rerun request;
                self.interrupted += 1  # the run that follows finishes the page
        elif kind == "auto_rerun":
            fid, interval = msg.auto_rerun.fragment_id, msg.auto_rerun.interval
            if self.auto_rerun and fid and interval > 0 and fid not in self.auto:
                self.auto[fid] = asyncio.create_task(self._auto_rerun(fid, interval))
        elif kind == "stop_auto_rerun":
            for fid in msg.stop_auto_rerun.fragment_ids:
                task = self.auto.pop(fid, None)
                if task is not None:
                    task.cancel()

    # ----------------------------------------------------------------------------------- reruns
    def _back_msg(self, fragment_id: str = "") -> bytes:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        page_name, query = self.page
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = query
        cs.page_script_hash = ""
        cs.page_name = page_name
        cs.widget_states.SetInParent()
        if fragment_id:
            cs.fragment_id = fragment_id
            cs.is_auto_rerun = True
        ci = cs.context_info
        ci.timezone, ci.timezone_offset, ci.locale = "UTC", 0, "en-US"
        ci.url = f"{self.http_url}/{page_name}" + (f"?{query}" if query else "")
        ci.is_embedded, ci.color_scheme = False, "light"
        return msg.SerializeToString()

    async def _auto_rerun(self, fragment_id: str, interval: float) -> None:
        """The frontend's ``setInterval``: ask for the fragment every ``interval`` s, finished or not."""
        with contextlib.suppress(asyncio.CancelledError, Exception):
            while self.connected:
                await asyncio.sleep(interval)
                if not self.connected or (self.waiter is not None and not self.waiter.done()):
                    continue  # a full run is on its way: it reruns the fragment too
                await self.ws.send(self._back_msg(fragment_id))
                self.res.fragment_requests += 1

    async def open_page(self, page_name: str, query: str, timeout: float) -> tuple[float | None, list[str]]:
        """Rerun the script for a page; (ms until script_finished or None, errors)."""
        t0 = time.monotonic()
        errors: list[str] = []
        if not self.connected:
            await self.close()
            try:
                await self.connect(timeout)
            except Exception as exc:  # noqa: BLE001
                return None, [f"connect: {type(exc).__name__}"]
            self.res.connect_ms.append((time.monotonic() - t0) * 1000)
        self._stop_auto()  # a full rerun replaces the page's fragments (the frontend's cleanupAutoReruns)
        self.page = (page_name, query)
        self.problems.clear()
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.ws.send(self._back_msg())
            remaining = max(0.1, timeout - (time.monotonic() - t0))
            status = await asyncio.wait_for(asyncio.shield(self.waiter), remaining)
        except asyncio.TimeoutError:
            errors.append("timeout")
            await self.close()  # its late messages must not count for the next page
            return None, errors + self.take_problems()
        except Exception as exc:  # noqa: BLE001 - the socket closed under us
            errors.append(str(exc) if isinstance(exc, ConnectionError) else f"disconnect ({type(exc).__name__})")
            await self.close()
            return None, errors + self.take_problems()
        finally:
            self.waiter = None
        ms = (time.monotonic() - t0) * 1000
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        if status == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
            errors.append("script error")
        return ms, errors + self.take_problems()

    def take_problems(self) -> list[str]:
        out, self.problems = self.problems, []
        return out


# ---------------------------------------------------------------------------------------- sessions
def _targets(run_id: str) -> tuple[tuple[str, str, str], ...]:
    return (("Home", "", ""), ("New run", "new_run", urlencode({"preset": PRESET})),
            ("Monitor", "monitor", urlencode({"run": run_id})))


async def _visit(client: Client, name: str, page_name: str, query: str, res: Results, timeout: float) -> bool:
    ms, errors = await client.open_page(page_name, query, timeout)
    if ms is not None:
        res.latency_ms[name].append(ms)
    res.errors[name].extend(errors)
    return ms is not None and not errors


async def _session(i: int, ws_url: str, url: str, run_ids: list[str], args, res: Results, deadline: float) -> None:
    await asyncio.sleep(args.ramp * i / max(1, args.sessions))
    if time.monotonic() >= deadline:
        return
    res.sessions_started += 1
    client = Client(ws_url, url, res, auto_rerun=not args.no_auto_rerun)
    try:
        targets = _targets(run_ids[i % len(run_ids)])
        while time.monotonic() < deadline:
            for name, page_name, query in targets:
                if args.page_connection:
                    await client.close()  # a new Streamlit session per page, as page.goto makes
                ok = await _visit(client, name, page_name, query, res, args.page_timeout)
                if name != "Monitor" or not ok:
                    continue
                # stay on the monitor: the fragment reruns every interval; check for errors every 1 s
                t_in = time.monotonic()
                n0, i0 = len(client.fragment_finishes), client.interrupted
                end = min(deadline, t_in + args.dwell)
                while time.monotonic() < end:
                    await asyncio.sleep(min(1.0, max(0.0, end - time.monotonic())))
                    problems = client.take_problems()
                    if not client.connected:
                        problems.append(client.closed_reason or "disconnect")
                    if problems:
                        res.errors["Monitor"].extend(f"while watching: {p}" for p in problems)
                        break
                stay = client.fragment_finishes[n0:]
                res.dwell_s += time.monotonic() - t_in
                res.dwell_fragments += len(stay)
                res.dwell_interrupted += client.interrupted - i0
                edges = [t_in, *stay]
                res.fragment_gaps_ms.extend((b - a) * 1000 for a, b in zip(edges, edges[1:]))
            if time.monotonic() >= deadline:
                break
    except Exception as exc:  # noqa: BLE001 - a broken session is an error, not a crash
        res.errors["Monitor"].append(f"session: {type(exc).__name__}: {str(exc)[:80]}")
    finally:
        await client.close()


async def _load(url: str, run_ids: list[str], args, res: Results, warmup: dict) -> None:
    ws_url = url.replace("http://", "ws://", 1) + "/_stcore/stream"
    # warm-up (not counted): the first visit flips Streamlit's router and imports the pages
    warm = Results()
    client = Client(ws_url, url, warm)
    try:
        for name, page_name, query in _targets(run_ids[0]):
            await _visit(client, name, page_name, query, warm, args.page_timeout)
            warmup[name] = warm.latency_ms[name][-1] if warm.latency_ms[name] else None
        if any(warm.errors.values()):
            print(f"load_ws: warm-up errors {warm.errors}", flush=True)
    finally:
        await client.close()

    warmup["load_start"] = time.monotonic()
    deadline = time.monotonic() + args.duration
    hard_cap = args.duration + args.ramp + 3 * args.page_timeout + 60
    tasks = [asyncio.create_task(_session(i, ws_url, url, run_ids, args, res, deadline))
             for i in range(args.sessions)]
    _, pending = await asyncio.wait(tasks, timeout=hard_cap)
    for t in pending:
        t.cancel()
        res.errors["Monitor"].append("session: cancelled at the hard time cap")
    await asyncio.gather(*pending, return_exceptions=True)
    warmup["load_end"] = time.monotonic()


# ---------------------------------------------------------------------------------------- report
def _s(ms: float | None) -> str:
    return "-" if ms is None or ms != ms else f"{ms / 1000:.2f} s"


def report(args, sessions: int, res: Results, warmup: dict, samples: list[dict], server_hwm_kb: int | None,
           run_ids: list[str]) -> dict:
    t0, t1 = warmup.get("load_start", 0.0), warmup.get("load_end", 0.0)
    win = _window(samples, t0, t1)
    mode = "a websocket per page" if args.page_connection else "one websocket per session"
    if args.no_auto_rerun:
        mode += ", no live refresh"
    out: dict = {"sessions": sessions, "duration_s": args.duration, "dwell_s": args.dwell, "ramp_s": args.ramp,
                 "mode": mode, "cpus": os.cpu_count(), "pages": {}, "warmup_ms": {k: warmup.get(k) for k in PAGES}}
    print(f"\nload_ws: {sessions} websocket sessions ({res.sessions_started} started, {mode}), "
          f"{args.duration:g} s, ramp {args.ramp:g} s, monitor dwell {args.dwell:g} s, {os.cpu_count()} CPUs; "
          "warm-up (not counted): " + ", ".join(f"{k} {_s(warmup.get(k))}" for k in PAGES))
    print("\n| page | count | p50 | p95 | max | errors |")
    print("|---|---|---|---|---|---|")
    for name in PAGES:
        lat, errs = res.latency_ms[name], res.errors[name]
        label = "New run (first render)" if name == "New run" else name
        kinds: dict[str, int] = {}
        for e in errs:
            kinds[e] = kinds.get(e, 0) + 1
        err_txt = str(len(errs)) + (" (" + ", ".join(f"{v}× {k}" for k, v in kinds.items()) + ")" if errs else "")
        print(f"| {label} | {len(lat)} | {_s(_pct(lat, 0.5))} | {_s(_pct(lat, 0.95))} | "
              f"{_s(max(lat) if lat else None)} | {err_txt} |")
        out["pages"][name] = {"count": len(lat), "p50_ms": _pct(lat, 0.5), "p95_ms": _pct(lat, 0.95),
                              "max_ms": max(lat) if lat else None, "errors": errs}
    gaps = res.fragment_gaps_ms
    if res.dwell_s:
        per_visit = res.dwell_fragments / max(1, len(res.latency_ms["Monitor"]))
        print("| Monitor live refresh (gaps: entering → 1st, between fragment runs; none after the last) | "
              f"{len(gaps)} | {_s(_pct(gaps, 0.5))} | "
              f"{_s(_pct(gaps, 0.95))} | {_s(max(gaps) if gaps else None)} | – |")
        print(f"\nmonitor while staying: {res.dwell_fragments} fragment runs finished in {res.dwell_s:.0f} "
              f"session-s = {res.dwell_fragments / res.dwell_s:.2f}/s per session (the fragment asks for 1/s; "
              f"{res.fragment_requests} auto reruns sent, {res.dwell_interrupted} runs preempted by a newer "
              f"request), {per_visit:.1f} per monitor visit")
        out.update(monitor_refresh_per_s=res.dwell_fragments / res.dwell_s, monitor_fragment_runs=res.dwell_fragments,
                   monitor_auto_reruns_sent=res.fragment_requests, monitor_runs_preempted=res.dwell_interrupted,
                   monitor_gap_p50_ms=_pct(gaps, 0.5), monitor_gap_p95_ms=_pct(gaps, 0.95),
                   monitor_per_visit=per_visit)
    if res.connect_ms:
        print(f"websocket connects: {len(res.connect_ms)}, p50 {_s(_pct(res.connect_ms, 0.5))}, "
              f"p95 {_s(_pct(res.connect_ms, 0.95))}; received {res.messages_in} ForwardMsgs, "
              f"{res.bytes_in / 1e6:.1f} MB")
    if len(win) >= 2:
        out.update(report_resources(win, run_ids, server_hwm_kb, warmup, "these websocket clients"))
    return out


# ---------------------------------------------------------------------------------------- main
def _one(args, sessions: int) -> dict:
    """One session count on its own server, data folder and two runs."""
    args = argparse.Namespace(**{**vars(args), "sessions": sessions})
    max_concurrent = 2
    with tempfile.TemporaryDirectory(prefix="dprnn-load-ws-") as tmp:
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
                print(f"load_ws: server {url} (pid {proc.pid}), data {data_dir}", flush=True)
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
                print(f"load_ws: runs {', '.join(run_ids)} training; {sessions} sessions for "
                      f"{args.duration:g} s", flush=True)
                sampler = Sampler(proc.pid, store, run_ids)
                sampler.start()
                with open("/proc/loadavg", encoding="ascii") as fh:
                    res, warmup = Results(), {"loadavg": " ".join(fh.read().split()[:3])}
                asyncio.run(_load(url, run_ids, args, res, warmup))
                sampler.stop_event.set()
                sampler.join(5)
                hwm = _status_kb(proc.pid, "VmHWM")
                return report(args, sessions, res, warmup, sampler.samples, hwm, run_ids)
        finally:
            if sampler is not None:
                sampler.stop_event.set()
            store.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, nargs="+", default=[30],
                    help="concurrent websocket sessions (1-200); several counts run one after another, "
                         "each on its own server")
    ap.add_argument("--duration", type=float, default=90.0, help="seconds of load (10-600)")
    ap.add_argument("--dwell", type=float, default=30.0, help="seconds each visit stays on the monitor")
    ap.add_argument("--ramp", type=float, default=10.0, help="session starts spread over this many seconds")
    ap.add_argument("--page-timeout", type=float, default=60.0, help="seconds until a page counts as a timeout")
    ap.add_argument("--page-connection", action="store_true",
                    help="a new websocket (Streamlit session) for every page, like a browser's navigation")
    ap.add_argument("--no-auto-rerun", action="store_true",
                    help="do not answer the monitor's auto_rerun (a diagnosis: the pages without the live refresh)")
    ap.add_argument("--steps", type=int, default=2000,
                    help="max_steps of the two runs (the preset's 300 would end early in the load; 0: the preset's)")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args(argv)
    if not all(1 <= n <= 200 for n in args.sessions) or len(args.sessions) > 5 or not 10 <= args.duration <= 600:
        ap.error("--sessions takes 1-5 counts of 1-200, --duration 10-600")

    # SIGTERM/SIGHUP unwind like Ctrl-C, so the finally blocks stop the server and the workers
    def _raise(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise)

    outs = [_one(args, n) for n in args.sessions]
    if args.json:
        args.json.write_text(json.dumps(outs if len(outs) > 1 else outs[0], indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

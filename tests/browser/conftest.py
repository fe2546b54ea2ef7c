"""Real-browser fixtures: ``streamlit run app.py`` on a free port, driven by Debian's Chromium.

The server gets its own data folder (``DPCORE_DATA_DIR``), so these tests never touch a user's runs,
and real worker processes train there; teardown cancels and kills any run still going (stopping
Streamlit does not reap the workers, which lead their own process groups).

Chromium is Debian's (``/usr/bin/chromium``), never a Playwright download; tests skip with a reason
when it is missing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic"]
START_TIMEOUT_S = 90.0

SKIP_REASON = f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)"


def _playwright():
    return pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
            return resp.read().decode().strip() == "ok"
    except OSError:
        return False


def _stop_workers(data_dir: Path) -> None:
    """Kill every worker the server started (they outlive ``streamlit run``)."""
    from dpcore.runs.executors.local import process_alive
    from dpcore.runs.store import RunStore

    if not (data_dir / "runs.sqlite3").exists():
        return
    store = RunStore(data_dir)
    for run in store.list_runs(status=("running", "queued")):
        if run.status == "queued":
            store.request_cancel(run.id)
        elif process_alive(run.pid, run.pid_ident):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(run.pid, signal.SIGKILL)
    store.close()


@pytest.fixture(scope="session")
def app_data_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="dprnn-browser-") as tmp:
        yield Path(tmp)


@contextlib.contextmanager
def serve_app(data_dir: Path, extra_env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """``streamlit run app.py`` on a free port with its own data folder; yields (URL, process) once healthy.

    Shared by the browser fixtures and the load benchmarks (bench/load.py, bench/load_ws.py).
    """
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    # the shipped gallery only where a test asks for it (extra_env DPCORE_DEMO_SNAPSHOT=""): a bare store otherwise
    env = {**os.environ, "DPCORE_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", "DPCORE_DEMO_SNAPSHOT": "off",
           **(extra_env or {})}
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none", "--global.developmentMode", "false"]
    log = tempfile.TemporaryFile()  # not a PIPE: a full pipe would block the server
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"streamlit did not come up on {url}:\n"
                                   f"{log.read().decode(errors='replace')[-3000:]}")
            time.sleep(0.3)
        yield url, proc
    finally:
        with contextlib.suppress(Exception):
            _stop_workers(data_dir)
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@pytest.fixture(scope="session")
def app_url(app_data_dir: Path) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        pytest.skip(SKIP_REASON)
    with serve_app(app_data_dir) as (url, _proc):
        yield url


@pytest.fixture()
def fresh_app_url(tmp_path: Path) -> Iterator[str]:
    """A server of its own that no session has visited yet (for first-visit behaviour)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(SKIP_REASON)
    with serve_app(tmp_path / "data") as (url, _proc):
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip(SKIP_REASON)
    with _playwright().sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def context(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(30_000)
    yield ctx
    ctx.close()


def wait_for_app(page, timeout: float = 60_000) -> None:
    """Wait until the app is connected and its script has finished (Streamlit's own e2e recipe)."""
    expect = _playwright().expect
    page.wait_for_timeout(250)
    page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']", timeout=timeout)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout)
    expect(page.get_by_test_id("stSkeleton")).to_have_count(0, timeout=timeout)


def open_page(context, url: str):
    page = context.new_page()
    page.goto(url)
    wait_for_app(page)
    return page

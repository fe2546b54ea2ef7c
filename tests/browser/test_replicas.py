"""Two dashboard replicas behind a real nginx (docs/nginx-replicas.conf), over one data folder.

Two ``streamlit run app.py`` servers share a temporary ``DPCORE_DATA_DIR``; Debian's nginx runs the
documented site config in front of them (tests/browser/nginx_proxy.py). A browser reaches replica A
through nginx by its sticky cookie and launches a real preset run (long enough to still train when
cancelled); a second browser context holding the same identity cookie, routed by nginx to replica B,
lists the run as its own and cancels it there. The run's worker was started by replica A's process, the
cancel is clicked on a page served by replica B, and the run ends "cancelled" in the store and on both
pages. Every page and websocket goes through nginx's port.

Behaviour, not timing: generous timeouts for a busy 2-core machine.
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path

import pytest

from tests.browser.conftest import CHROMIUM, SKIP_REASON, _free_port, serve_app, wait_for_app
from tests.browser.nginx_proxy import SKIP_REASON as NGINX_SKIP_REASON
from tests.browser.nginx_proxy import access_log, nginx_available, serve_nginx, upstream_of

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=SKIP_REASON),
              pytest.mark.skipif(not nginx_available(), reason=NGINX_SKIP_REASON)]
_sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
expect = _sync_api.expect

RUN_TIMEOUT_MS = 300_000  # worker start, corpus, calibration, first steps: slow on a loaded 2-core machine
#: Both replicas as the README says to run them: one machine-wide cap, one cookie secret.
REPLICA_ENV = {"DPCORE_MAX_CONCURRENT": "1", "STREAMLIT_SERVER_COOKIE_SECRET": "replica-test-cookie-secret"}
LAUNCH = "/new_run?preset=workshop-eps3&max_steps=3000"  # minutes of training: still going when cancelled
CANCELLED = re.compile(r"^Cancelled · \d+ steps")
OWN_TEXT = "\n".join(f"line {i}: a message of my own, number {i}, for the replica test" for i in range(200)).encode()


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _cookie(ctx, name: str, timeout_ms: int = 30_000) -> dict:
    """A cookie of this context, waiting for it (the app sets its identity cookie from a script)."""
    page = ctx.pages[0]
    for _ in range(timeout_ms // 250):
        found = [c for c in ctx.cookies() if c["name"] == name]
        if found:
            return found[0]
        page.wait_for_timeout(250)
    raise AssertionError(f"no {name} cookie in the browser")


def _close(ctx) -> None:
    with contextlib.suppress(Exception):  # closed already on the happy path
        ctx.close()


def _open(ctx, url: str, sockets: list[str]):
    """Open ``url``; returns the page and the replica nginx said answered (its X-Upstream header)."""
    page = ctx.new_page()
    page.on("websocket", lambda ws: sockets.append(ws.url))
    response = page.goto(url)
    wait_for_app(page)
    return page, response.headers.get("x-upstream")


def test_two_replicas_share_runs_and_the_owner_cancels_through_either(browser, tmp_path):
    from dpcore.runs.store import RunStore

    data = tmp_path / "data"
    sockets: list[str] = []
    with contextlib.ExitStack() as stack:
        url_a, proc_a = stack.enter_context(serve_app(data, REPLICA_ENV))
        url_b, proc_b = stack.enter_context(serve_app(data, REPLICA_ENV))
        servers = {f"127.0.0.1:{_port(url_a)}": proc_a, f"127.0.0.1:{_port(url_b)}": proc_b}
        proxy, log = stack.enter_context(serve_nginx(tmp_path / "nginx", _free_port(), (_port(url_a), _port(url_b))))

        # browser 1, through nginx: the sticky rule picks its replica ("A") on the first request
        ctx1 = browser.new_context(viewport={"width": 1400, "height": 1000})
        stack.callback(_close, ctx1)
        ctx1.set_default_timeout(60_000)
        page1, replica_a = _open(ctx1, f"{proxy}{LAUNCH}", sockets)
        assert replica_a in servers, f"nginx did not say which replica answered: {replica_a!r}"
        route_a = _cookie(ctx1, "lb_route")["value"]
        assert upstream_of(proxy, route_a) == replica_a  # sticky: the same cookie, the same replica
        owner = _cookie(ctx1, "dprnn_owner")
        page1.get_by_role("button", name="Launch run").click()
        page1.wait_for_url(re.compile(r"/monitor\?run=[0-9a-f]+$"), timeout=120_000)
        run_id = page1.url.rsplit("=", 1)[1]
        assert page1.url.startswith(proxy)

        store = RunStore(data)
        stack.callback(store.close)
        page1.wait_for_function(
            "() => /Step \\d+ of 3000/.test(document.body.innerText)", timeout=RUN_TIMEOUT_MS)  # it trains
        run = store.get_run(run_id)
        assert run.status == "running" and run.pid
        assert _parent_pid(run.pid) == servers[replica_a].pid, "the worker was not started by replica A"

        # browser 2: the same identity cookie, and a routing key that nginx sends to the other replica ("B")
        route_b = next((r for r in (f"to-b-{i}" for i in range(200)) if upstream_of(proxy, r) != replica_a), None)
        assert route_b is not None, "no routing key reached the second replica"
        ctx2 = browser.new_context(viewport={"width": 1400, "height": 1000})
        stack.callback(_close, ctx2)
        ctx2.set_default_timeout(60_000)
        ctx2.add_cookies([{**owner, "sameSite": owner.get("sameSite") or "Lax"},
                          {"name": "lb_route", "value": route_b, "url": proxy}])
        page2, replica_b = _open(ctx2, f"{proxy}/compare", sockets)
        assert replica_b in servers and replica_b != replica_a
        # B lists the run among this browser's own runs (no link followed: from the shared store, by owner)
        expect(page2.get_by_test_id("stMultiSelect").get_by_text(re.compile(run_id[:6]))).to_be_visible()

        page2.goto(f"{proxy}/monitor?run={run_id}")
        wait_for_app(page2)
        assert upstream_of(proxy, route_b, f"/monitor?run={run_id}") == replica_b
        cancel = page2.get_by_role("button", name="Cancel run")  # B knows the owner: same cookie, same key
        expect(cancel).to_be_visible()
        expect(page2.get_by_text("only its owner can cancel it")).to_have_count(0)
        expect(page1.get_by_role("button", name="Cancel run")).to_be_visible()  # and so does A
        cancel.click()

        expect(page2.get_by_text(CANCELLED).first).to_be_visible(timeout=120_000)  # replica B
        expect(page1.get_by_text(CANCELLED).first).to_be_visible(timeout=120_000)  # replica A, by its own poll
        run = store.get_run(run_id)
        assert run.status == "cancelled" and run.error is None and run.cancel_requested_at is not None
        expect(page1.get_by_test_id("stException")).to_have_count(0)
        expect(page2.get_by_test_id("stException")).to_have_count(0)

        # an upload is held by the session's own process until its script stores it: the sticky cookie takes
        # the PUT to replica B with B's websocket; once stored (the shared store), replica A offers it too
        page2.goto(f"{proxy}/new_run")
        wait_for_app(page2)
        page2.get_by_text("My own text (.txt or .csv)").click()
        wait_for_app(page2)
        page2.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(
            files=[{"name": "notes-b.txt", "mimeType": "text/plain", "buffer": OWN_TEXT}])
        wait_for_app(page2)
        expect(page2.get_by_text("Stored notes-b.txt for this browser only.")).to_be_visible()
        uploads = [line for line in access_log(log) if "/_stcore/upload_file/" in line]
        assert uploads and all(f"upstream={replica_b} " in line for line in uploads), uploads
        page1.goto(f"{proxy}/new_run")
        wait_for_app(page1)
        page1.get_by_text("My own text (.txt or .csv)").click()
        wait_for_app(page1)
        picker = page1.get_by_role("combobox", name="Uploaded file")
        expect(picker).to_be_visible()
        assert "notes-b.txt" in picker.aria_snapshot()

        # every websocket went to nginx's port, and nginx upgraded and proxied them to both replicas
        stream = f"ws://127.0.0.1:{_port(proxy)}/_stcore/stream"
        assert sockets and all(url == stream for url in sockets), sockets
        ctx1.close()
        ctx2.close()  # nginx logs a websocket when it closes
        for _ in range(40):
            upgraded = {line.split("upstream=")[1].split()[0] for line in access_log(log)
                        if line.startswith('101 "GET /_stcore/stream')}
            if upgraded >= {replica_a, replica_b}:
                break
            time.sleep(0.25)
        assert upgraded >= {replica_a, replica_b}, access_log(log)[-20:]

"""Every page works offline: no request from the browser leaves the server (issue 22, item 7).

Workshops run on closed networks, and a visitor's browser should tell no third party which page it
opened. Fonts, scripts, pictures, QR codes and Plotly all come from the app itself; this test opens
every page (a run's pages with a finished run, the workshop room with a room and its QR code) and
records every request the browser makes, failing on any host other than the server's own.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import CHROMIUM, SKIP_REASON, open_page, wait_for_app

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=SKIP_REASON)]
_sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
expect = _sync_api.expect
SETTLE_MS = 1500  # lazy chunks (Plotly), fonts and the favicon load just after the script run
LOCAL_SCHEMES = ("data", "blob", "about")  # never leave the browser


def test_no_page_asks_any_host_but_the_server(context, app_url, app_data_dir):
    from dpcore.runs.store import RunStore
    from tests.apptest_support import write_run

    store = RunStore(app_data_dir)
    run = write_run(store, "browser:" + "1" * 32, checkpoint=True)
    store.close()
    server = urlsplit(app_url).netloc
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))

    page = open_page(context, app_url)
    expect(page.locator("h1").first).to_have_text("DP-RNN Lab")
    for path, heading in [("/new_run", "New run"), (f"/monitor?run={run.id}", "Run monitor"),
                          (f"/compare?runs={run.id}", "Compare runs"), (f"/samples?runs={run.id}", "Samples"),
                          (f"/report?run={run.id}", "Run report"), ("/mechanisms", "Gaussian vs Laplace"),
                          ("/room", "Workshop room")]:
        page.goto(app_url + path)
        wait_for_app(page)
        expect(page.locator("h1").first).to_contain_text(heading)
        expect(page.get_by_test_id("stException")).to_have_count(0)
        if "monitor" in path:
            expect(page.locator(".js-plotly-plot").first).to_be_attached()  # Plotly, loaded from the server
        page.wait_for_timeout(SETTLE_MS)
    page.get_by_label("Room name").fill("Offline room")
    page.get_by_role("button", name="Create room").click()
    expect(page.get_by_text("You are its instructor")).to_be_visible()
    expect(page.get_by_role("img")).not_to_have_count(0)  # the QR code
    page.wait_for_timeout(SETTLE_MS)

    elsewhere = sorted({url for url in requests
                        if urlsplit(url).scheme not in LOCAL_SCHEMES and urlsplit(url).netloc != server})
    assert len(requests) > 50, f"only {len(requests)} requests recorded"
    assert not elsewhere, f"requests that left the server: {elsewhere}"

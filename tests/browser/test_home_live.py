"""Home follows the demo gallery's preparation by itself, with no reload (issue 22, item 2).

The preparation is ``python -m dpcore demo prepare``: it holds an exclusive ``flock`` on
``<data>/demo/prepare.lock`` and writes the gallery's runs into the run store one by one. This test
plays that command (it holds the lock and writes finished runs) against a real server and browser, so
it takes seconds instead of the minutes real training takes.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from tests.browser.conftest import CHROMIUM, SKIP_REASON, open_page

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=SKIP_REASON)]
_sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
expect = _sync_api.expect
QUIET_MS = 6000  # three polling intervals: a view still polling would send a rerun request in this time


def test_home_shows_the_gallery_filling_in_and_stops_polling_once_it_is_complete(context, fresh_app_url, tmp_path):
    from dpcore.runs import gallery as demo
    from dpcore.runs.store import RunStore
    from tests.apptest_support import write_run

    data_dir = tmp_path / "data"  # the fresh server's data folder (conftest's fresh_app_url)
    (data_dir / demo.DEMO_FOLDER).mkdir(parents=True, exist_ok=True)
    lock = os.open(data_dir / demo.DEMO_FOLDER / demo.LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a preparation is under way
    store = RunStore(data_dir)
    specs = demo.gallery_specs(steps=10)

    def train(upto: int) -> None:
        for spec in specs[len(store.list_runs(demo.GALLERY_OWNER)):upto]:
            cfg = spec.config.replace(sample_prompt=demo.DEMO_PROMPT)
            write_run(store, demo.GALLERY_OWNER, cfg, epsilon=cfg.epsilon if cfg.is_private else None)

    try:
        page = open_page(context, fresh_app_url)
        sent: list[str] = []  # the browser's messages to the server: a fragment's rerun request is one
        page.on("websocket", lambda ws: ws.on("framesent", lambda frame: sent.append("frame")))
        page.reload()  # the websocket listener sees this session from its start
        expect(page.get_by_text(f"Preparing the demo gallery: 0 of {len(specs)} runs trained")).to_be_visible()
        train(3)
        expect(page.get_by_text(f"Preparing the demo gallery: 3 of {len(specs)} runs trained")).to_be_visible()
        expect(page.get_by_text("The whole trade-off at a glance")).to_be_visible()  # what is there, at once
        assert sent, "the page sent no rerun request while the gallery was prepared"
        train(len(specs))
    finally:
        os.close(lock)  # the preparation is over
        store.close()
    expect(page.get_by_text("Preparing the demo gallery")).to_have_count(0, timeout=30_000)
    expect(page.get_by_text("The whole trade-off at a glance")).to_be_visible()
    expect(page.get_by_text("has not been prepared")).to_have_count(0)
    page.wait_for_timeout(1000)  # the full rerun that ends the polling
    before = len(sent)
    page.wait_for_timeout(QUIET_MS)
    assert len(sent) == before, f"{len(sent) - before} rerun requests after the gallery was complete"

"""A fresh server's first visit, in a real browser: never Streamlit's legacy page list, never "Page not found".

Streamlit treats a ``pages/`` folder next to the main script as legacy multipage navigation until a
session has run ``st.navigation``; the main script is ``pages/router.py`` (``app.py`` launches it), so
there is no such folder next to it. These tests prove it where it shows: from the first byte of the
first visit to a server no session has seen, the sidebar (sampled every 100 ms and on every change)
only ever lists the router's pages, and a shared deep link opens its page without a dialog.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser import sidebar_sampler
from tests.browser.conftest import CHROMIUM, SKIP_REASON, wait_for_app

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=SKIP_REASON)]
_sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
expect = _sync_api.expect
SETTLE_MS = 3000  # keep sampling after the first script run: a late list or dialog would show by then


def _first_visit(context, url: str):
    context.add_init_script(sidebar_sampler.INIT_JS)
    page = context.new_page()
    page.goto(url)
    wait_for_app(page)
    page.wait_for_timeout(SETTLE_MS)
    return page, sidebar_sampler.read(page)


def _assert_only_the_router_list(samples: sidebar_sampler.Samples) -> None:
    expected = sidebar_sampler.menu_titles()
    assert samples.ticks >= 20, f"only {samples.ticks} samples"
    assert samples.with_list() > 0, "the router's page list never appeared"
    wrong = samples.lists_other_than(expected)
    assert not wrong, f"{len(wrong)} of {len(samples.rows)} samples show another page list, first: {wrong[0]}"
    print(f"\nsidebar samples: {len(samples.rows)}, with the router's list: {samples.with_list()}, "
          f"with another list: {len(wrong)}")
    assert not samples.with_dialog("Page not found")


def test_the_first_visit_to_a_fresh_server_never_shows_the_legacy_page_list(context, fresh_app_url):
    page, samples = _first_visit(context, fresh_app_url)
    _assert_only_the_router_list(samples)
    expect(page.locator("h1").first).to_have_text("DP-RNN Lab")


def test_a_shared_monitor_link_as_a_fresh_servers_first_request_opens_the_run(context, fresh_app_url, tmp_path):
    from dpcore.runs.store import RunStore
    from tests.apptest_support import write_run

    store = RunStore(tmp_path / "data")  # the fresh server's data folder (conftest's fresh_app_url)
    run = write_run(store, "browser:" + "0" * 32)  # someone else's finished run: the link is shared
    store.close()
    page, samples = _first_visit(context, f"{fresh_app_url}/monitor?run={run.id}")
    _assert_only_the_router_list(samples)
    expect(page.locator("h1").first).to_have_text("Run monitor")
    expect(page).to_have_url(re.compile(rf"/monitor\?run={run.id}$"))
    expect(page.get_by_text("Page not found")).to_have_count(0)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_text(run.id[:6]).first).to_be_visible()  # the run itself, not an empty monitor

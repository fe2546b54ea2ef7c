"""The dashboard in a real browser (Debian's Chromium): a newcomer's first run, a bad upload, two visitors.

Bounded on purpose: the main flow watches a real preset run train for a few seconds and cancels it
instead of waiting for it to finish.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser.conftest import CHROMIUM, SKIP_REASON, open_page, wait_for_app

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=SKIP_REASON)]
_sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
expect = _sync_api.expect
PlaywrightTimeoutError = _sync_api.TimeoutError
RUN_TIMEOUT_MS = 240_000  # worker start, corpus, calibration: slow on a loaded 2-core machine
GOOD_TXT = "\n".join(f"line {i}: the quick brown fox jumps over the lazy dog, message number {i}"
                     for i in range(200)).encode()

#: Points per named trace of every Plotly chart on the page: [{trace name: number of points}].
TRACE_POINTS_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(el =>
    Object.fromEntries((el.data || []).map(t => [t.name, (t.x || []).length])))"""


def _points(page, trace: str) -> int:
    """Points drawn so far in the trace named ``trace`` (0 if not drawn yet)."""
    return max((c.get(trace, 0) for c in page.evaluate(TRACE_POINTS_JS)), default=0)


def _wait_points(page, trace: str, more_than: int) -> None:
    page.wait_for_function(f"({TRACE_POINTS_JS})().some(c => (c[{trace!r}] || 0) > {more_than})",
                           timeout=RUN_TIMEOUT_MS)


def _no_exception(page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_text("Page not found")).to_have_count(0)


def _choose_own_text(page) -> None:
    page.get_by_text("My own text (.txt or .csv)").click()
    wait_for_app(page)


def _upload(page, name: str, data: bytes, mime: str = "text/plain") -> None:
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(
        files=[{"name": name, "mimeType": mime, "buffer": data}])
    wait_for_app(page)  # the upload triggers a rerun; callers then wait for its message


def test_newcomer_starts_a_preset_watches_it_learn_and_finds_it_on_compare(context, app_url):
    page = open_page(context, app_url)
    expect(page.get_by_role("heading", name="DP-RNN Lab")).to_be_visible()
    page.get_by_role("link", name="Try ε = 3").click()
    wait_for_app(page)
    expect(page).to_have_url(re.compile(r"/new_run\?preset=workshop-eps3$"))
    expect(page.get_by_text("can change the odds of any outcome")).to_be_visible()
    page.get_by_role("button", name="Launch run").click()
    page.wait_for_url(re.compile(r"/monitor\?run=[0-9a-f]+$"))
    run_id = page.url.rsplit("=", 1)[1]

    # live: the ε and loss curves grow without reloading the page
    _wait_points(page, "ε spent", 2)
    loss, eps = _points(page, "training loss"), _points(page, "ε spent")
    _wait_points(page, "training loss", loss + 2)
    _wait_points(page, "ε spent", eps + 2)
    expect(page.get_by_text(re.compile(r"Step \d+ of 300 · about"))).to_be_visible()
    _no_exception(page)

    page.get_by_role("link", name="Compare").first.click()
    wait_for_app(page)
    expect(page.get_by_test_id("stDataFrame")).to_be_visible()
    expect(page.get_by_test_id("stMultiSelect").get_by_text(re.compile(f"ε=3 Gaussian · {run_id[:6]}"))).to_be_visible()
    assert max(_points(page, f"ε=3 Gaussian · {run_id[:6]}"), 0) > 0  # its ε curve on the overlay
    _no_exception(page)

    page.goto(f"{app_url}/monitor?run={run_id}")  # a reload keeps the visitor: they may still cancel
    wait_for_app(page)
    cancel = page.get_by_role("button", name="Cancel run")
    if cancel.count():  # on a fast machine the one-minute preset may already have finished
        try:
            cancel.click(timeout=10_000)
        except PlaywrightTimeoutError:
            pass  # it finished between the check and the click
    expect(page.get_by_text(re.compile(r"^(Cancelled|Finished) · \d+ steps")).first).to_be_visible(timeout=60_000)


def test_a_bad_upload_shows_an_error_and_nothing_else_breaks(context, app_url):
    page = open_page(context, f"{app_url}/new_run")  # maybe the server's very first request: a shared link
    _no_exception(page)
    _choose_own_text(page)
    _upload(page, "photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 50)
    expect(page.get_by_text(re.compile("This file cannot be used: the file looks binary"))).to_be_visible()
    expect(page.get_by_role("button", name="Launch run")).to_be_disabled()
    _no_exception(page)
    page.get_by_text("Built-in corpus (synthetic chat messages)").click()
    wait_for_app(page)
    expect(page.get_by_role("button", name="Launch run")).to_be_enabled()
    expect(page.get_by_text("can change the odds of any outcome")).to_be_visible()
    page.get_by_role("link", name="Home").click()
    wait_for_app(page)
    expect(page.get_by_role("heading", name="DP-RNN Lab")).to_be_visible()
    _no_exception(page)


def test_two_browsers_do_not_see_each_others_uploads(browser, app_url):
    first, second = browser.new_context(), browser.new_context()
    try:
        a = open_page(first, f"{app_url}/new_run")
        _choose_own_text(a)
        _upload(a, "diary-of-a.txt", GOOD_TXT)
        expect(a.get_by_text("Stored diary-of-a.txt for this browser only.")).to_be_visible()

        a.reload()  # same browser after a reload: same visitor, the upload is still there
        wait_for_app(a)
        _choose_own_text(a)
        picker = a.get_by_role("combobox", name="Uploaded file")
        expect(picker).to_be_visible()
        assert "diary-of-a.txt" in picker.aria_snapshot()

        b = open_page(second, f"{app_url}/new_run")
        _choose_own_text(b)
        expect(b.get_by_text("You have not uploaded any text yet.")).to_be_visible()
        expect(b.get_by_role("combobox", name="Uploaded file")).to_have_count(0)
        expect(b.get_by_text(re.compile("diary-of-a"))).to_have_count(0)
        _no_exception(b)
    finally:
        first.close()
        second.close()


def test_the_first_visit_to_a_fresh_server_by_a_deep_link_goes_through_the_router(context, fresh_app_url):
    """pages/ is legacy navigation until a session ran st.navigation: the first deep link must not bypass it."""
    page = open_page(context, f"{fresh_app_url}/new_run?preset=workshop-eps3")
    _no_exception(page)
    nav = page.get_by_test_id("stSidebarNav")
    for title in ("Home", "New run", "Run monitor", "Compare", "Run report"):
        expect(nav.get_by_text(title, exact=True)).to_be_visible()
    expect(page.get_by_text("Runs train in background processes")).to_be_visible()  # app.py's sidebar
    expect(page).to_have_url(re.compile(r"/new_run\?preset=workshop-eps3$"))

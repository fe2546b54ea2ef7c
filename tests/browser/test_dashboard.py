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


#: The "ε spent" metric and the number in the "With ε = …" sentence, read in one go (one DOM state).
EPSILON_SHOWN_JS = """() => {
    const metric = Array.from(document.querySelectorAll('[data-testid=stMetric]'))
        .find(m => m.querySelector('[data-testid=stMetricLabel]')?.innerText.trim() === 'ε spent');
    const sentence = Array.from(document.querySelectorAll('[data-testid=stCaptionContainer]'))
        .map(c => c.innerText).find(t => t.startsWith('With ε = '));
    return [metric ? metric.querySelector('[data-testid=stMetricValue]').innerText.trim() : null,
            sentence ? sentence.match(/^With ε = ([0-9.]+)/)[1] : null];
}"""


def _epsilon_disagreement(page) -> str | None:
    metric, said = page.evaluate(EPSILON_SHOWN_JS)
    if metric is None or said is None:
        return f"the ε metric ({metric!r}) or the ε sentence ({said!r}) is missing"
    if said != f"{float(metric):.3g}":  # the sentence says the metric's number to 3 significant digits
        return f"the sentence says ε = {said} while the metric says {metric}"
    return None


def _check_epsilon_agrees(page, reads: int = 25, every_ms: int = 160) -> None:
    """While the run trains, the ε sentence and the ε metric say the same number, poll after poll.

    A read that lands between two of a poll's messages may see them apart for a moment, so a
    disagreement counts when it is still there a moment later (the lag it pins lasted seconds).
    """
    seen = set()
    for _ in range(reads):
        if (problem := _epsilon_disagreement(page)) is not None:
            page.wait_for_timeout(100)
            assert _epsilon_disagreement(page) is None, problem
        seen.add(page.evaluate(EPSILON_SHOWN_JS)[0])
        page.wait_for_timeout(every_ms)
    assert len(seen) > 1, f"ε did not move while the run trained: {seen}"


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
    page.get_by_role("link", name="Try ε = 3 per person").click()
    wait_for_app(page)
    expect(page).to_have_url(re.compile(r"/new_run\?preset=workshop-eps3-person$"))
    expect(page.get_by_text(re.compile(r"With ε = [\d.]+, any one person, with all of their messages, can change "
                                       r"the odds of any outcome"))).to_be_visible()
    page.get_by_role("button", name="Launch run").click()
    page.wait_for_url(re.compile(r"/monitor\?run=[0-9a-f]+$"))
    run_id = page.url.rsplit("=", 1)[1]

    # live: the ε and loss curves grow without reloading the page
    _wait_points(page, "ε spent", 2)
    loss, eps = _points(page, "training loss"), _points(page, "ε spent")
    _wait_points(page, "training loss", loss + 2)
    _wait_points(page, "ε spent", eps + 2)
    expect(page.get_by_text(re.compile(r"Step \d+ of 300 · about"))).to_be_visible()
    _check_epsilon_agrees(page)  # one snapshot, one fragment: the sentence never lags the metric
    _no_exception(page)

    page.get_by_role("link", name="Compare").first.click()
    wait_for_app(page)
    expect(page.get_by_test_id("stDataFrame")).to_be_visible()
    label = f"ε=3 Gaussian per person · built-in · {run_id[:6]}"  # run_label: mechanism, unit · corpus · id
    expect(page.get_by_test_id("stMultiSelect").get_by_text(re.compile(re.escape(label)))).to_be_visible()
    assert max(_points(page, label), 0) > 0  # its ε curve on the overlay
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
    expect(page.get_by_text(re.compile(r"With ε = [\d.]+, .*can change the odds of any outcome"))).to_be_visible()
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
    expect(page.get_by_text("Runs train in background processes")).to_be_visible()  # the router's sidebar
    expect(page).to_have_url(re.compile(r"/new_run\?preset=workshop-eps3$"))
    expect(page.get_by_text("Page not found")).to_have_count(0)


def test_back_after_launch_brings_back_the_form_as_launched(context, app_url, app_data_dir):
    """Launch, land on the monitor, press Back: the same form, the same address, the same next launch."""
    from dpcore.runs.store import RunStore

    page = open_page(context, f"{app_url}/new_run?preset=workshop-eps3")
    steps = page.get_by_role("spinbutton", name="Steps")
    steps.fill("120")
    steps.press("Enter")
    wait_for_app(page)
    launched = re.compile(r"/new_run\?preset=workshop-eps3&max_steps=120$")
    expect(page).to_have_url(launched)
    page.get_by_role("button", name="Launch run").click()
    page.wait_for_url(re.compile(r"/monitor\?run=[0-9a-f]+$"))
    wait_for_app(page)
    first = page.url.rsplit("=", 1)[1]
    store = RunStore(app_data_dir)
    try:
        assert store.get_run(first).config["max_steps"] == 120
        store.request_cancel(first)  # only the form matters here: free the CPU

        page.go_back()
        wait_for_app(page)
        expect(page).to_have_url(launched)
        expect(page.get_by_role("heading", name="New run")).to_be_visible()
        expect(steps).to_have_value("120")
        expect(page.get_by_role("radio", name="Built-in corpus (synthetic chat messages)")).to_be_checked()
        expect(page.get_by_role("switch", name="No privacy (baseline)")).not_to_be_checked()
        expect(page.get_by_test_id("stMetric").filter(has_text="Steps").get_by_test_id("stMetricValue")
               ).to_have_text("120")  # what Launch would start
        expect(page.get_by_role("alert")).to_have_count(0)  # no "not a setting" warning about ?run=
        _no_exception(page)

        page.get_by_role("button", name="Launch run").click()  # launching again uses the same form
        page.wait_for_url(re.compile(r"/monitor\?run=[0-9a-f]+$"))
        second = page.url.rsplit("=", 1)[1]
        assert second != first
        store.request_cancel(second)
        assert store.get_run(second).config == store.get_run(first).config
    finally:
        store.close()

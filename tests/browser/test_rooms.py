"""A workshop room in three real browsers (instructor, two participants): create, join by link, launch, both runs
on the room's frontier, a nudge shown to both, a locked control that cannot change, close, the class report."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser.conftest import CHROMIUM, SKIP_REASON, open_page, wait_for_app

_sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
expect = _sync_api.expect

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=SKIP_REASON)
TRAIN_TIMEOUT_MS = 600_000  # two preset runs, one after the other, on a busy 2-core machine


def _frontier_names(page) -> list[str]:
    return page.evaluate(
        "Array.from(document.querySelectorAll('.js-plotly-plot')).flatMap(el => (el.data || [])"
        ".filter(t => (t.x || []).length > 0).map(t => t.name))")


def _join(browser, join_url: str, name: str):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    ctx.set_default_timeout(30_000)
    page = open_page(ctx, join_url)
    page.get_by_label("Your display name").fill(name)
    page.get_by_role("button", name="Join").click()
    expect(page.get_by_text(f"You are {name}")).to_be_visible()
    return ctx, page


def _launch(page, app_url: str) -> None:
    page.get_by_role("link", name="Launch a run in this room").click()
    wait_for_app(page)
    expect(page.get_by_text("Room “Workshop A”")).to_be_visible()
    expect(page.get_by_role("spinbutton", name="Clipping norm C")).to_be_disabled()  # locked by the room
    page.get_by_role("button", name="Launch run").click()
    page.wait_for_url(re.compile(r"/monitor\?run="))


def test_a_room_with_an_instructor_and_two_participants(browser, app_url, tmp_path):
    teacher_ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    teacher_ctx.set_default_timeout(30_000)
    teacher = open_page(teacher_ctx, f"{app_url}/room")
    teacher.get_by_label("Room name").fill("Workshop A")
    teacher.get_by_role("button", name="Create room").click()
    expect(teacher.get_by_text("You are its instructor")).to_be_visible()
    join_url = teacher.locator("[data-testid='stCode']").first.inner_text().strip()
    assert re.search(r"/room\?room=[0-9a-f]{16}$", join_url)
    expect(teacher.get_by_role("img")).not_to_have_count(0)  # the QR code

    ctx_a, ann = _join(browser, join_url, "Ann")
    ctx_b, ben = _join(browser, join_url, "Ben")
    try:
        expect(ann.get_by_role("button", name="Send nudge")).to_have_count(0)  # no instructor controls
        _launch(ann, app_url)
        _launch(ben, app_url)

        # a participant cannot change a locked control, even by editing the field
        ann.goto(f"{app_url}/new_run")
        wait_for_app(ann)
        clip = ann.get_by_role("spinbutton", name="Clipping norm C")
        expect(clip).to_be_disabled()
        expect(clip).to_have_value("1.00")

        # both runs on the room's frontier (the room page refreshes itself)
        teacher.reload()
        wait_for_app(teacher)
        teacher.wait_for_function(
            "Array.from(document.querySelectorAll('.js-plotly-plot')).flatMap(el => (el.data || [])"
            ".filter(t => (t.x || []).length > 0).map(t => t.name))"
            ".filter(n => n === 'Ann' || n === 'Ben').length === 2", timeout=TRAIN_TIMEOUT_MS)
        assert {"Ann", "Ben"} <= set(_frontier_names(teacher))

        # a nudge reaches both participants, on whatever page they are
        teacher.get_by_label("Nudge every participant").fill("Now try ε = 1")
        teacher.get_by_role("button", name="Send nudge").click()
        expect(teacher.get_by_text("Nudge sent")).to_be_visible()
        for page in (ann, ben):
            expect(page.get_by_text("Now try ε = 1")).to_be_visible(timeout=30_000)

        # close: the class report downloads, for the instructor and for a participant
        teacher.get_by_text("Yes, close it").click()
        wait_for_app(teacher)  # the rerun that enables the button; until then the old, disabled one is shown too
        close = teacher.get_by_role("button", name="Close the room", disabled=False)
        expect(close).to_have_count(1)
        close.click()
        expect(teacher.get_by_text("Room closed")).to_be_visible()
        for page in (teacher, ben):
            if page is ben:
                ben.goto(join_url)
                wait_for_app(ben)
            with page.expect_download(timeout=180_000) as info:  # the report is built on click
                page.get_by_role("button", name="Download the class report (HTML)").click()
            path = tmp_path / f"report-{id(page)}.html"
            info.value.save_as(path)
            text = path.read_text(encoding="utf-8")
            assert "Class report: Workshop A" in text and "Ann" in text and "Ben" in text
    finally:
        for ctx in (ctx_a, ctx_b, teacher_ctx):
            ctx.close()

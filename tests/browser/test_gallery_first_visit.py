"""The gallery is there on first visit (issue 22, item 2), in a real server and browser.

A fresh server (its own empty data folder, the shipped snapshot on, as a plain ``streamlit run app.py``)
draws the whole gallery on Home on the first visit, with nothing trained: both charts and every run's sample.
And a Home drawn before any preparation picks one up by itself, with no reload.

The 10 s target is the benchmark's (``bench/bench_first_visit.py``), never a timed test on a shared machine;
``pytest -s`` prints the times measured here.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import pytest

from tests.browser.conftest import CHROMIUM, SKIP_REASON, open_page, serve_app

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=SKIP_REASON)]
_sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
expect = _sync_api.expect


def test_a_fresh_server_draws_the_whole_gallery_on_the_first_visit_with_nothing_trained(context, tmp_path):
    from dpcore.runs import gallery as demo
    from dpcore.runs.store import RunStore

    specs = demo.gallery_specs()
    started = time.monotonic()
    with serve_app(tmp_path / "data", {"DPCORE_DEMO_SNAPSHOT": ""}) as (url, _proc):  # "": the shipped one
        healthy = time.monotonic()
        page = context.new_page()
        t0 = time.monotonic()
        page.goto(url)
        expect(page.get_by_text("The whole trade-off at a glance")).to_be_visible(timeout=60_000)
        charts = page.locator("[data-testid='stPlotlyChart'] .main-svg")
        expect(page.get_by_text("What privacy costs: model quality")).to_be_visible(timeout=60_000)
        expect(page.get_by_text("How much each model gives away")).to_be_visible(timeout=60_000)
        for spec in specs:  # every run's sample card, under its title
            expect(page.get_by_text(spec.title, exact=True).first).to_be_visible(timeout=60_000)
        samples = page.locator("[data-testid='stCode']").filter(has_text=demo.DEMO_PROMPT)
        expect(samples).to_have_count(len(specs), timeout=60_000)
        drawn = time.monotonic() - t0
        assert charts.count() >= 2
        print(f"\nserver start to healthy: {healthy - started:.1f} s; first visit to the whole gallery drawn: "
              f"{drawn:.1f} s")
        expect(page.get_by_text("Preparing the demo gallery")).to_have_count(0)
        expect(page.get_by_text("has not been prepared")).to_have_count(0)
        store = RunStore(tmp_path / "data")
        runs = store.list_runs()
        assert len(runs) == len(specs) and {r.status for r in runs} == {"finished"}  # loaded, nothing trained
        assert all(not (store.run_dir(r.id) / "worker.log").exists() for r in runs)
        store.close()


def test_home_picks_up_a_preparation_started_after_it_was_drawn(context, fresh_app_url, tmp_path):
    """Nothing preparing when Home is drawn (no snapshot, no autoprepare); then a preparation starts elsewhere."""
    from dpcore.runs import gallery as demo
    from dpcore.runs.store import RunStore
    from tests.apptest_support import write_run

    page = open_page(context, fresh_app_url)
    expect(page.get_by_text("has not been prepared on this server yet")).to_be_visible()
    page.evaluate("window.__same_page = true")  # gone if the page is reloaded
    data_dir = tmp_path / "data"  # fresh_app_url's data folder
    specs = demo.gallery_specs(steps=10)
    store = RunStore(data_dir)
    (data_dir / demo.DEMO_FOLDER).mkdir(parents=True, exist_ok=True)
    lock = os.open(data_dir / demo.DEMO_FOLDER / demo.LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # `demo prepare` started in a terminal, say
        for spec in specs[:3]:
            cfg = spec.config
            write_run(store, demo.GALLERY_OWNER, cfg, epsilon=cfg.epsilon if cfg.is_private else None)
        t0 = time.monotonic()
        expect(page.get_by_text(f"Preparing the demo gallery: 3 of {len(specs)} runs trained")).to_be_visible(
            timeout=20_000)
        print(f"\nHome saw a preparation started after it was drawn in {time.monotonic() - t0:.1f} s")
        expect(page.get_by_text("The whole trade-off at a glance")).to_be_visible()
        for spec in specs[3:]:
            cfg = spec.config
            write_run(store, demo.GALLERY_OWNER, cfg, epsilon=cfg.epsilon if cfg.is_private else None)
    finally:
        os.close(lock)  # the preparation is over
        store.close()
    expect(page.get_by_text("Preparing the demo gallery")).to_have_count(0, timeout=30_000)
    expect(page.get_by_text("The whole trade-off at a glance")).to_be_visible()
    assert page.evaluate("window.__same_page === true"), "the page was reloaded"

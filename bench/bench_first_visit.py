"""First visit → the whole demo gallery on Home, on a fresh server (issue 22, item 2).

    python bench/bench_first_visit.py [--tries 3]

Each try starts ``streamlit run app.py`` with an empty data folder of its own (``tests/browser/conftest.py``'s
``serve_app``, the shipped snapshot on: ``DPCORE_DEMO_SNAPSHOT`` empty, as a plain start), opens Home in
headless Debian Chromium and times, from the first request, when the gallery's heading, the frontier
chart, the exposure chart and every run's sample card are drawn. The server's start (to its health
check answering) is timed apart. The load average (1 min) is printed with each try: on a shared machine it
says how quiet the machine was. Prints one line a try and the median of the last mark.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, serve_app  # noqa: E402

TIMEOUT_MS = 300_000


def one_try(browser, gallery) -> tuple[float, dict[str, float]]:
    from playwright.sync_api import expect

    specs = gallery.gallery_specs()
    with tempfile.TemporaryDirectory(prefix="dprnn-first-visit-") as tmp:
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        started = time.monotonic()
        with serve_app(Path(tmp) / "data", {"DPCORE_DEMO_SNAPSHOT": ""}) as (url, _proc):
            healthy = time.monotonic() - started
            t0 = time.monotonic()
            page.goto(url)
            marks: dict[str, float] = {}
            for name, locator, count in (
                ("heading", page.get_by_text("The whole trade-off at a glance"), 1),
                ("frontier", page.get_by_text("What privacy costs: model quality"), 1),
                ("exposure", page.get_by_text("How much each model gives away"), 1),
                ("samples", page.locator("[data-testid='stCode']").filter(has_text=gallery.DEMO_PROMPT), len(specs)),
            ):
                expect(locator).to_have_count(count, timeout=TIMEOUT_MS)
                expect(locator.first).to_be_visible(timeout=TIMEOUT_MS)
                marks[name] = time.monotonic() - t0
        page.context.close()
    return healthy, marks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tries", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from dpcore.runs import gallery

    if not Path(CHROMIUM).exists():
        print(f"needs Debian's chromium at {CHROMIUM}", file=sys.stderr)
        return 2
    last = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        for i in range(1, args.tries + 1):
            healthy, marks = one_try(browser, gallery)
            last.append(max(marks.values()))
            print(f"try {i}: server start → healthy {healthy:.1f} s; first visit → "
                  + ", ".join(f"{k} {v:.1f} s" for k, v in marks.items())
                  + f" (load {os.getloadavg()[0]:.1f})", flush=True)
        browser.close()
    print(f"first visit → whole gallery drawn: median {statistics.median(last):.1f} s "
          f"(min {min(last):.1f}, max {max(last):.1f}) over {len(last)} fresh servers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

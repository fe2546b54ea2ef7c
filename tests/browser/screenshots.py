"""Retake the README's screenshots (assets/*.png): ``python tests/browser/screenshots.py``.

Starts ``streamlit run app.py`` on a free port with a throw-away data folder, launches the four
workshop presets through the real UI (they queue and train for real, a couple of minutes in all),
then photographs each page with Debian's Chromium. Needs /usr/bin/chromium and playwright.
Last, a quick demo gallery and a workshop room with three participants (assets/demo-home.png,
assets/room.png); ``--rooms`` takes only those two. ``--lab`` takes only the Attack lab after a game
against the shipped gallery's ε = 1 and no-privacy models (assets/lab-eps1.png, assets/lab-none.png).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "assets"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--disable-quic"]
WIDTH = 1400


def wait(page: Page) -> None:
    page.wait_for_timeout(300)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=120_000)
    page.wait_for_timeout(700)  # let Plotly finish drawing


def shoot(page: Page, name: str, height: int) -> None:
    page.set_viewport_size({"width": WIDTH, "height": height})
    wait(page)
    page.screenshot(path=str(ASSETS / f"{name}.png"))
    print("wrote", ASSETS / f"{name}.png")


def rooms_and_demo(browser, url: str, data: str) -> None:
    """assets/room.png (a room with three participants' runs) and assets/demo-home.png (the gallery on Home).

    The gallery is a quick one (``demo prepare --steps 60``), trained before the room's runs.
    """
    subprocess.run([sys.executable, "-m", "dpcore", "demo", "prepare", "--steps", "60", "--data-dir", data],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    teacher = browser.new_context(viewport={"width": WIDTH, "height": 1000}).new_page()
    teacher.goto(f"{url}/room")
    wait(teacher)
    teacher.get_by_label("Room name").fill("DP workshop")
    teacher.get_by_role("button", name="Create room").click()
    wait(teacher)
    join = teacher.locator("[data-testid='stCode']").first.inner_text().strip()
    for name, eps in (("Ada", "1"), ("Bo", "3"), ("Chen", "8")):
        page = browser.new_context(viewport={"width": WIDTH, "height": 1000}).new_page()
        page.goto(join)
        wait(page)
        page.get_by_label("Your display name").fill(name)
        page.get_by_role("button", name="Join").click()
        wait(page)
        page.goto(f"{url}/new_run?preset=workshop-eps{eps}-person")
        wait(page)
        page.get_by_role("button", name="Launch run").click()
        page.wait_for_url(re.compile(r"/monitor\?run="))
    teacher.get_by_label("Nudge every participant").fill("Now try ε = 0.5: who keeps perplexity under 10?")
    teacher.reload()
    wait(teacher)
    teacher.wait_for_function(
        "Array.from(document.querySelectorAll('.js-plotly-plot')).flatMap(el => (el.data || []))"
        ".filter(t => ['Ada', 'Bo', 'Chen'].includes(t.name) && (t.x || []).length > 0).length === 3",
        timeout=900_000)
    shoot(teacher, "room", 1500)
    home = browser.new_context(viewport={"width": WIDTH, "height": 1000}).new_page()
    home.goto(url)
    shoot(home, "demo-home", 1700)


def play_lab(page: Page, url: str, run_id: str, name: str) -> None:
    """One game of the Attack lab, guessing as an attacker who ranks by loss: the lower half "trained on"."""
    page.goto(f"{url}/attack_lab?run={run_id}")
    wait(page)
    page.get_by_role("button", name=re.compile("^Start a game")).click()
    wait(page)
    for _ in range(40):
        caption = page.get_by_text(re.compile(r"^Loss under the model")).first
        if not caption.is_visible():
            break
        found = re.search(r"rank ([\d,]+) of ([\d,]+)", caption.inner_text())
        rank, m = (int(x.replace(",", "")) for x in found.groups())
        page.get_by_role("button", name="Trained on it" if rank <= m // 2 else "Not trained on it", exact=True).click()
        wait(page)
    shoot(page, name, 1900)


def lab_shots(browser, url: str, data: str) -> None:
    sys.path.insert(0, str(ROOT))
    from dpcore.runs.gallery import gallery_state
    from dpcore.runs.store import RunStore

    state = {spec.key: run for spec, run in gallery_state(RunStore(data)).entries if run is not None}
    for key, name in (("gaussian-1", "lab-eps1"), ("none", "lab-none")):
        page = browser.new_context(viewport={"width": WIDTH, "height": 1000}).new_page()
        play_lab(page, url, state[key].id, name)


def main() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    args = sys.argv[1:]
    lab = "--lab" in args
    data = tempfile.mkdtemp(prefix="dprnn-shots-")
    if lab:  # the shipped gallery, as a fresh server loads it
        subprocess.run([sys.executable, "-m", "dpcore", "demo", "import", "--data-dir", data], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    only_rooms = "--rooms" in args  # only the workshop room and demo gallery shots
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true",
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env={**os.environ, "DPCORE_DATA_DIR": data}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.3)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_context(viewport={"width": WIDTH, "height": 1000}).new_page()
            if lab:
                lab_shots(browser, url, data)
                browser.close()
                return 0
            if only_rooms:
                rooms_and_demo(browser, url, data)
                browser.close()
                return 0
            runs = []
            for preset in ("workshop-eps1-person", "workshop-eps3-person", "workshop-eps8-person", "workshop-none"):
                page.goto(f"{url}/new_run?preset={preset}")
                wait(page)
                page.get_by_role("button", name="Launch run").click()
                page.wait_for_url(re.compile(r"/monitor\?run="))
                runs.append(page.url.rsplit("=", 1)[1])
            page.goto(f"{url}/monitor?run={runs[0]}")  # the first one trains while the others queue
            wait(page)
            page.wait_for_function(
                "Array.from(document.querySelectorAll('.js-plotly-plot'))"
                ".some(el => (el.data || []).some(t => t.name === 'ε spent' && (t.x || []).length > 120))",
                timeout=300_000)
            shoot(page, "monitor-running", 1250)
            page.goto(f"{url}/monitor?run={runs[-1]}")
            expect(page.get_by_text("Privacy statement and report")).to_be_visible(timeout=900_000)
            page.goto(f"{url}/new_run?preset=workshop-eps3-person")
            shoot(page, "new-run", 1250)
            page.goto(f"{url}/compare?runs={','.join(runs)}")
            page.set_viewport_size({"width": WIDTH, "height": 1350})
            wait(page)
            page.get_by_test_id("stDataFrame").scroll_into_view_if_needed()
            page.wait_for_timeout(2000)  # the table is drawn on a canvas once it is in view
            page.evaluate("document.querySelector('[data-testid=stMain]').scrollTo(0, 0)")
            shoot(page, "compare", 1350)
            page.goto(f"{url}/samples?runs={','.join(runs)}")
            wait(page)
            page.get_by_role("textbox", name="Prompt").fill("my number is")
            page.get_by_role("textbox", name="Prompt").press("Enter")
            shoot(page, "samples", 900)
            page.goto(f"{url}/report?run={runs[0]}")
            shoot(page, "report", 1300)
            page.goto(url)
            shoot(page, "home", 1150)
            rooms_and_demo(browser, url, data)
            browser.close()
    finally:
        server.terminate()
        server.wait(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())

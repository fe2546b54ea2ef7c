"""AppTest: Home shows the pinned demo gallery at once (frontier, samples side by side, exposures): the shipped
snapshot on a fresh server, with no training; its progress while it is prepared, and presentation mode's big
picture without the technical parts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dpcore.runs import gallery as demo
from dpcore.runs import gallery_snapshot as snap
from tests.apptest_support import SECRET_A, app_env_for, executor_of, texts, write_run


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    monkeypatch.delenv(demo.ENV_AUTOPREPARE, raising=False)
    yield from app_env_for(tmp_path, monkeypatch)


def _gallery(store, *, upto: int | None = None) -> list:
    """The gallery's runs as workers leave them (with an audit.json each), optionally only the first ``upto``."""
    runs = []
    for i, spec in enumerate(demo.gallery_specs(steps=10)[:upto]):
        cfg = spec.config.replace(sample_prompt=demo.DEMO_PROMPT)
        eps = cfg.epsilon if cfg.mechanism in ("gaussian", "laplace") else None
        run = write_run(store, demo.GALLERY_OWNER, cfg, epsilon=eps, val_perplexity=20.0 - i)
        audit = {"version": 2, "exposure": [{"insertions": 10, "rank": 5000.0}],
                 "exposure_by_insertions": [{"insertions": 10, "num_canaries": 2, "mean_exposure": 1.0 + i,
                                             "min_exposure": 0.5, "max_exposure": 2.0 + i, "max_possible": 13.3}]}
        path = store.run_dir(run.id) / "audit.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(audit))
        store.add_artifact(run.id, "audit", path)
        runs.append(run)
    return runs


def test_home_without_a_gallery_offers_to_prepare_it(app_env):
    at = app_env.app(SECRET_A).run()
    assert not at.exception
    assert any(b.label == "Prepare the demo gallery" for b in at.button)
    assert not any("whole trade-off" in s.value for s in at.subheader)


def test_home_shows_the_gallery_at_once(app_env):
    runs = _gallery(app_env.store)
    at = app_env.app(SECRET_A).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("whole trade-off" in s.value for s in at.subheader)
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # the frontier and the exposures
    assert any(m.startswith("**What each model writes after") for m in texts(at.markdown))
    assert [c.value for c in at.code].count("hello there") == len(runs)  # one sample per run, side by side
    titles = [m for m in texts(at.markdown) if m.startswith("**") and m.endswith("**")]
    assert {"**No privacy**", "**ε = 0.5**", "**Laplace, ε = 8**"} <= set(titles)
    links = {p.label: p for p in at.get("page_link")}
    assert "Train your own" in links
    assert all(r.id in links["Compare the gallery's runs"].proto.query_string for r in runs)
    # the gallery is nobody's own: it is not under "Your recent runs"
    assert not any(r.id[:6] in label for r in runs for label in links)
    assert not any(b.label == "Prepare the demo gallery" for b in at.button)


def test_a_fresh_server_shows_the_shipped_gallery_on_its_first_visit_without_training(app_env, monkeypatch):
    """No DPCORE_DEMO_SNAPSHOT (a plain `streamlit run app.py`): the first script run loads assets/gallery."""
    monkeypatch.delenv(snap.ENV_SNAPSHOT)
    assert app_env.store.list_runs() == []  # a fresh data folder
    at = app_env.app(SECRET_A).run()
    assert not at.exception, [e.value for e in at.exception]
    specs = demo.gallery_specs()
    state = demo.gallery_state(app_env.store)
    assert state.complete and [run.config for _, run in state.entries] == [s.config.to_dict() for s in specs]
    assert executor_of(at).submitted == []  # nothing trains: the runs are the snapshot's
    assert not [p for p in app_env.store.list_runs() if p.status != "finished"]
    assert any("whole trade-off" in s.value for s in at.subheader)
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # the frontier and the exposures
    frontier = json.loads(charts[0].proto.spec)
    labels = json.dumps(frontier["data"], ensure_ascii=False)
    for spec, run in state.entries:  # every gallery run is on the frontier: a point, or the baseline's line
        if spec.key == "none":
            lines = [shape["y0"] for shape in frontier["layout"]["shapes"] if shape.get("line", {}).get("dash")]
            assert lines == [run.result.val_perplexity]
        else:
            assert spec.title in labels, spec.title
    titles = {m for m in texts(at.markdown) if m.startswith("**") and m.endswith("**")}
    assert {f"**{spec.title}**" for spec in specs} <= titles
    assert sum(c.value.startswith(demo.DEMO_PROMPT) for c in at.code) == len(specs)
    exposure = json.dumps(json.loads(charts[1].proto.spec)["data"], ensure_ascii=False)
    assert all(spec.title in exposure for spec in specs)  # every run's audit is there
    links = {p.label: p for p in at.get("page_link")}
    assert all(run.id in links["Compare the gallery's runs"].proto.query_string for _, run in state.entries)
    assert not any("Preparing the demo gallery" in bar.proto.text for bar in at.get("progress"))
    assert not any(b.label == "Prepare the demo gallery" for b in at.button)
    assert not any("has not been prepared" in c for c in texts(at.caption))


def test_home_shows_progress_while_the_gallery_is_prepared(app_env, monkeypatch):
    _gallery(app_env.store, upto=3)
    monkeypatch.setattr(demo, "is_preparing", lambda _data_dir: True)
    at = app_env.app(SECRET_A).run()
    assert not at.exception
    bars = at.get("progress")
    assert bars and "3 of 9 runs trained" in bars[0].proto.text
    assert abs(bars[0].proto.value - 33) <= 1  # 3 of 9
    assert any("whole trade-off" in s.value for s in at.subheader)  # what is there is shown already


def test_home_shows_the_preparation_it_just_started_before_the_command_takes_its_lock(app_env, monkeypatch):
    """make app: the server starts the command, then Home runs at once, before the command holds the lock.

    Home must say the gallery is being prepared (and so keep looking), not that it "has not been
    prepared". Once the command is over and the gallery complete, Home shows it and nothing else.
    """
    import pages.ui.demo_ui as demo_ui

    slow_start = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # no lock, like a start
    monkeypatch.setenv(demo.ENV_AUTOPREPARE, "1")
    monkeypatch.setattr(demo, "start_background", lambda _store, **_kw: slow_start)
    try:
        at = app_env.app(SECRET_A).run()
        assert not at.exception, [e.value for e in at.exception]
        assert demo_ui.started_running() and not demo.is_preparing(app_env.store.data_dir)
        bars = at.get("progress")
        assert bars and "0 of 9 runs trained" in bars[0].proto.text
        assert not any("has not been prepared" in c for c in texts(at.caption))
        assert not any(b.label == "Prepare the demo gallery" for b in at.button)
    finally:
        slow_start.kill()
        slow_start.wait(10)
    _gallery(app_env.store)
    done = at.run()
    assert not done.exception
    assert not any("Preparing the demo gallery" in bar.proto.text for bar in done.get("progress"))
    assert any("whole trade-off" in s.value for s in done.subheader)


def test_presentation_mode_shows_the_story_without_the_technical_parts(app_env):
    _gallery(app_env.store)
    at = app_env.app(SECRET_A, present="1").run()
    assert not at.exception
    assert any("whole trade-off" in s.value for s in at.subheader)
    assert not any(s.value == "Start with a workshop preset" for s in at.subheader)
    assert not any(s.value == "Your recent runs" for s in at.subheader)
    assert at.toggle(key="present").value is True
    normal = app_env.app(SECRET_A).run()
    assert any(s.value == "Start with a workshop preset" for s in normal.subheader)

"""AppTest: a PRV preview answers at once with an upper bound, then shows the exact one; Launch hands σ over."""

from __future__ import annotations

import json

import pytest

from dpcore.privacy import calcache
from dpcore.runs import preview as pv
from tests.apptest_support import app_env_for, texts

PAGE = "pages/screens/new_run.py"


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    pv.clear_caches()
    yield from app_env_for(tmp_path, monkeypatch)
    pv.clear_caches()


def test_a_prv_preview_shows_a_bound_first_then_the_exact_sigma(app_env, monkeypatch):
    import threading

    release = threading.Event()
    real = pv._preview_cached
    with monkeypatch.context() as patch:  # the background job keeps the slow function it was given
        patch.setattr(pv, "_preview_cached", lambda c, items: (release.wait(60), real(c, items))[1])
        at = app_env.app(page=PAGE, preset="workshop-eps3", accountant="prv").run()
    assert not at.exception, [e.value for e in at.exception]
    sigma = {m.label: m.value for m in at.metric}["Noise σ"]
    assert sigma.startswith("≤ ") and float(sigma[2:]) > 0
    assert any("Computing the exact σ" in c for c in texts(at.caption))
    assert not at.get("plotly_chart") and not at.button(key="launch").disabled
    release.set()
    for job in list(pv._exact_jobs.values()):
        job.result(timeout=120)
    at.run()
    exact = {m.label: m.value for m in at.metric}["Noise σ"]
    assert not exact.startswith("≤") and float(exact) <= float(sigma[2:])
    assert at.get("plotly_chart") and not any("Computing the exact" in c for c in texts(at.caption))


def test_launch_stores_the_calibrated_sigma_for_the_worker(app_env):
    at = app_env.app(page=PAGE, preset="workshop-eps3").run()
    shown = float({m.label: m.value for m in at.metric}["Noise σ"])
    at.button(key="launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (path,) = calcache.folder_in(app_env.store.data_dir).glob("*.json")
    stored = json.loads(path.read_text())
    assert f"{stored['noise']:.3g}" == f"{shown:.3g}" and stored["key"]["epsilon"] == 3.0

"""AppTest: "sweep ε" on New run launches the grid on a real local Ray, and Compare draws its frontier.

The runs train through :class:`~dpcore.runs.executors.ray.RayExecutor` on the session's Ray
(tests/ray_support.py) with a quick stand-in trainer (tests/sweep_training.py) that reports results
shaped like the real ones, so the frontier has points.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.apptest_support import app_env_for, texts
from tests.ray_support import ray_cluster  # noqa: F401 - the session's Ray

SWEEP_TRAINER = f"{Path(__file__).parents[1] / 'sweep_training.py'}:run_training"
NEW_RUN, COMPARE = "pages/screens/new_run.py", "pages/screens/compare.py"


@pytest.fixture
def app_env(tmp_path, monkeypatch, ray_cluster):  # noqa: F811
    yield from app_env_for(tmp_path, monkeypatch)


def _frontier(at) -> dict:
    """The frontier chart's Plotly figure (Compare's ``cmp_frontier``)."""
    for chart in at.get("plotly_chart"):
        figure = json.loads(chart.proto.spec)
        if "frontier" in str(figure["layout"].get("title", "")):
            return figure
    raise AssertionError("Compare drew no frontier chart")


@pytest.mark.ray
def test_a_sweep_launched_from_new_run_opens_compare_on_four_runs_and_draws_the_frontier(app_env, monkeypatch):
    import pages.ui.session as session
    from dpcore.runs.executors.ray import RayExecutor

    monkeypatch.setenv("DPCORE_HEARTBEAT_S", "0.5")
    monkeypatch.setattr(session, "build_executor",
                        lambda store: RayExecutor(store, train_fn=SWEEP_TRAINER, grace_s=5))
    at = app_env.app(page=NEW_RUN, preset="workshop-eps3").run()
    at.text_input(key="nr_sweep_eps").input("4, 1, 2").run()
    assert at.checkbox(key="nr_sweep_base").value is True
    at.button(key="nr_sweep_launch").click().run()
    assert not at.exception, [e.value for e in at.exception]

    assert [t.value for t in at.title] == ["Compare runs"]  # the sweep opened Compare on its runs
    ids, sweep_id = at.query_params["runs"].split(","), at.query_params["sweep"]
    assert sorted(at.multiselect(key="cmp_runs").value) == sorted(ids)
    assert any(c.startswith(f"Sweep {sweep_id}: ") and c.endswith(" of 4 runs ended" + ("." if "4 of 4" in c else
               "; each point joins the frontier as its run finishes.")) for c in texts(at.caption))
    store = app_env.store
    runs = [store.get_run(i) for i in ids]
    assert [r.owner for r in runs] == [app_env.owner()] * 4
    assert [(r.config["mechanism"], r.config["epsilon"]) for r in runs[:3]] == [("gaussian", e) for e in (1, 2, 4)]
    assert runs[3].config["mechanism"] == "none"
    first = runs[0].config
    assert all(r.config == {**first, "epsilon": r.config["epsilon"]} for r in runs[:3]), "they differ in ε alone"
    privacy = ("epsilon", "mechanism", "engine", "accountant")  # what the baseline's own rules may change
    assert all(runs[3].config[k] == v for k, v in first.items() if k not in privacy)

    executor = session.executor()
    for run_id in ids:
        run = executor.wait(run_id, timeout=180, poll_s=0.2)
        assert run.status == "finished", (run.status, run.error)

    at = app_env.app(page=COMPARE, runs=",".join(ids), sweep=sweep_id).run()  # the same link, every run ended
    assert not at.exception, [e.value for e in at.exception]
    assert sorted(at.multiselect(key="cmp_runs").value) == sorted(ids)
    assert sorted(at.dataframe[0].value["run"]) == sorted(ids)
    assert f"Sweep {sweep_id}: 4 of 4 runs ended." in texts(at.caption)
    figure = _frontier(at)
    (points,) = [t for t in figure["data"] if t.get("name") == "private runs"]
    assert points["x"] == pytest.approx([0.9, 1.8, 3.6]) and points["y"] == pytest.approx([15.0, 10.0, 7.5])
    assert [s["y0"] for s in figure["layout"]["shapes"]] == [4.0]  # the baseline's reference line

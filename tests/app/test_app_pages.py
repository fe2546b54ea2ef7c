"""AppTest: Home, Run monitor, Compare, Samples and Run report, on runs written into a temporary store."""

from __future__ import annotations

import re

import pytest

from tests.apptest_support import SECRET_A, SECRET_B, TINY, app_env_for, texts, write_run


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    yield from app_env_for(tmp_path, monkeypatch)

MONITOR, COMPARE, SAMPLES, REPORT = (
    "pages/screens/monitor.py", "pages/screens/compare.py", "pages/screens/samples.py", "pages/screens/report.py"
)


def _no_crash(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _charts(at) -> int:
    return len(at.get("plotly_chart"))


# ------------------------------------------------------------------------------------ home
def test_home_explains_the_app_and_lists_only_this_browsers_runs(app_env):
    mine = write_run(app_env.store, app_env.owner(SECRET_A))
    theirs = write_run(app_env.store, app_env.owner(SECRET_B))
    at = app_env.app(SECRET_A).run()
    _no_crash(at)
    assert at.title[0].value == "DP-RNN Lab"
    links = [p.label for p in at.get("page_link")]
    assert {"New run", "Run monitor", "Compare runs", "Try ε = 1 per person", "Try ε = 3 per person",
            "Try ε = 8 per person", "Try No privacy", "Try ε = 3 per sequence"} <= set(links)
    assert any(mine.id[:6] in label and "ε spent 2.50" in label for label in links)
    assert not any(theirs.id[:6] in label for label in links)


def test_home_without_runs_says_so(app_env):
    at = app_env.app().run()
    _no_crash(at)
    assert any("None yet" in c for c in texts(at.caption))


# ------------------------------------------------------------------------------------ monitor
def test_monitor_shows_a_running_runs_progress_curves_and_samples(app_env):
    run = write_run(app_env.store, app_env.owner(), status="running", steps=4)
    at = app_env.app(page=MONITOR, run=run.id).run()
    _no_crash(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Step"] == "4 / 10" and metrics["ε spent"] == "2.500"
    assert _charts(at) == 4  # loss, perplexity, ε, clipping
    assert "Step 4 of 10" in at.get("progress")[0].proto.text
    assert "hello there" in [c.value for c in at.code]
    assert at.button(key="mon_cancel")
    assert any(run.id in c for c in texts(at.caption)), "the share link is shown"


def _epsilon_shown(at) -> tuple[str, str]:
    """The ε metric's text and the number in the "With ε = …" sentence."""
    metric = {m.label: m.value for m in at.metric}["ε spent"]
    sentence = [c for c in texts(at.caption) if c.startswith("With ε = ")]
    assert len(sentence) == 1, texts(at.caption)
    return metric, re.match(r"With ε = ([0-9.]+),", sentence[0]).group(1)


def _layout(at) -> list[str]:
    """The kinds of the elements the page draws, in order (the samples' code blocks left out)."""
    kinds: list[str] = []

    def walk(node) -> None:
        for child in getattr(node, "children", {}).values():
            kind = type(child).__name__
            if kind != "Code":
                kinds.append(kind if kind != "UnknownElement" else child.type)
            walk(child)

    walk(at.main)
    return kinds


def test_monitor_says_the_same_epsilon_in_the_sentence_and_the_metric(app_env):
    owner = app_env.owner()
    run = write_run(app_env.store, owner, status="running", steps=4, epsilon=5.851)
    at = app_env.app(page=MONITOR, run=run.id).run()
    _no_crash(at)
    metric, said = _epsilon_shown(at)
    assert metric == "5.851" and said == f"{float(metric):.3g}" == "5.85"
    app_env.store.add_metrics(run.id, [{"step": 5, "train_loss": 0.7, "epsilon": 6.2049, "batch_size": 30,
                                        "frac_clipped": 0.5, "median_grad_norm": 1.2, "step_time_s": 0.1,
                                        "elapsed_s": 0.5}])
    at.run()  # the next poll reads the new step: both move together
    metric, said = _epsilon_shown(at)
    assert metric == "6.205" and said == f"{float(metric):.3g}" == "6.21"
    assert {m.label: m.value for m in at.metric}["Step"] == "5 / 10"


def test_monitor_draws_the_same_elements_before_and_during_training(app_env):
    """The live part keeps its layout from poll to poll: Streamlit greys out what a poll does not redraw."""
    run = write_run(app_env.store, app_env.owner(), status="running", steps=0)
    at = app_env.app(page=MONITOR, run=run.id).run()
    _no_crash(at)
    assert {m.label: m.value for m in at.metric}["ε spent"] == "—"
    before = _layout(at)
    app_env.store.add_metrics(run.id, [{"step": 1, "train_loss": 4.0, "epsilon": 0.5, "batch_size": 30,
                                        "frac_clipped": 0.5, "median_grad_norm": 1.2, "step_time_s": 0.1,
                                        "elapsed_s": 0.1}])
    app_env.store.add_eval(run.id, {"step": 1, "val_loss": 2.5, "val_perplexity": 12.0})
    at.run()
    _no_crash(at)
    assert {m.label: m.value for m in at.metric}["ε spent"] == "0.500"
    assert _layout(at) == before


def test_monitor_cancel_by_the_owner(app_env):
    run = write_run(app_env.store, app_env.owner(), status="queued")
    at = app_env.app(page=MONITOR, run=run.id).run()
    at.button(key="mon_cancel").click().run()
    _no_crash(at)
    assert app_env.store.get_run(run.id).status == "cancelled"
    assert any("cancelled" in w for w in texts(at.warning))


def test_monitor_opens_a_shared_run_read_only(app_env):
    run = write_run(app_env.store, app_env.owner(SECRET_A), status="running", steps=3)
    at = app_env.app(SECRET_B, page=MONITOR, run=run.id).run()
    _no_crash(at)
    assert any("A shared run" in c for c in texts(at.caption))
    assert not [b for b in at.button if b.key == "mon_cancel"]
    assert {m.label: m.value for m in at.metric}["Step"] == "3 / 10"


def test_monitor_labels_runs_without_a_guarantee_and_shows_no_epsilon(app_env):
    run = write_run(app_env.store, app_env.owner(), TINY.replace(mechanism="naive", epsilon=1.0))
    at = app_env.app(page=MONITOR, run=run.id).run()
    _no_crash(at)
    assert any("No privacy guarantee" in e for e in texts(at.error))
    assert {m.label: m.value for m in at.metric}["ε spent"] == "none"
    assert _charts(at) == 2  # no ε and no clipping chart


def test_monitor_with_an_unknown_run_id_explains_and_recovers(app_env):
    at = app_env.app(page=MONITOR, run="doesnotexist").run()
    _no_crash(at)
    assert any("no run with the id" in e for e in texts(at.error))
    assert any("No runs yet" in i for i in texts(at.info))


def test_monitor_of_a_failed_run_shows_the_reason(app_env):
    run = write_run(app_env.store, app_env.owner(), status="running")
    app_env.store.finish_run(run.id, "failed", error="ran out of memory on cpu: lower the batch size")
    at = app_env.app(page=MONITOR, run=run.id).run()
    _no_crash(at)
    assert any("ran out of memory" in e for e in texts(at.error))


# ------------------------------------------------------------------------------------ compare
def test_compare_overlays_runs_draws_the_frontier_and_offers_csv(app_env):
    owner = app_env.owner()
    private = [write_run(app_env.store, owner, TINY.replace(epsilon=e), epsilon=e, val_perplexity=20 - e)
               for e in (1.0, 8.0)]
    baseline = write_run(app_env.store, owner, TINY.replace(mechanism="none"), val_perplexity=6.0)
    at = app_env.app(page=COMPARE).run()
    _no_crash(at)
    table = at.dataframe[0].value
    assert set(table["run"]) == {baseline.id, *(r.id for r in private)}
    assert list(table.loc[table["run"] == baseline.id, "privacy"]) == ["no privacy (baseline)"]
    assert _charts(at) == 4
    assert at.download_button(key="cmp_csv")
    assert set(at.query_params["runs"].split(",")) == set(table["run"])


def test_compare_selection_comes_from_the_link(app_env):
    owner = app_env.owner(SECRET_A)
    a, b = write_run(app_env.store, owner), write_run(app_env.store, owner)
    at = app_env.app(SECRET_B, page=COMPARE, runs=a.id).run()
    _no_crash(at)
    assert list(at.dataframe[0].value["run"]) == [a.id]
    assert b.id not in at.multiselect(key="cmp_runs").options


# ------------------------------------------------------------------------------------ samples
def test_samples_side_by_side_with_the_same_prompt_and_seed(app_env):
    owner = app_env.owner()
    runs = [write_run(app_env.store, owner, checkpoint=True),
            write_run(app_env.store, owner, TINY.replace(mechanism="none"), checkpoint=True)]
    at = app_env.app(page=SAMPLES).run()
    at.text_input(key="smp_prompt").input("hello").run()
    at.number_input(key="smp_n").set_value(2).run()
    _no_crash(at)
    codes = [c.value for c in at.code]
    assert len(codes) == 4 and all(c.startswith("hello") for c in codes)
    again = app_env.app(page=SAMPLES, runs=",".join(r.id for r in runs))
    again.session_state["smp_prompt"] = "hello"
    again.session_state["smp_n"] = 2
    assert sorted(c.value for c in again.run().code) == sorted(codes), "same prompt and seed, same text"


def test_samples_without_finished_runs_explains(app_env):
    write_run(app_env.store, app_env.owner(), status="running")
    at = app_env.app(page=SAMPLES).run()
    _no_crash(at)
    assert any("None of your runs has finished" in i for i in texts(at.info))


# ------------------------------------------------------------------------------------ report
def test_report_states_the_privacy_guarantee_and_offers_downloads(app_env):
    run = write_run(app_env.store, app_env.owner())
    at = app_env.app(page=REPORT, run=run.id).run()
    _no_crash(at)
    statement = " ".join(texts(at.markdown))
    for phrase in ("one user with all of their text", "any one person",
                   "ε = 2.5", "δ = 1e-05", "Rényi-DP", "Poisson sampling",
                   "every checkpoint", "any text sampled", "vocabulary", "floating-point"):
        assert phrase in statement, phrase
    assert at.download_button(key="rep_html") and at.download_button(key="rep_md")
    assert _charts(at) == 4


def test_a_share_link_to_an_upload_run_shows_only_what_epsilon_covers(app_env):
    upload = TINY.replace(corpus="/data/uploads/x/diary.txt")
    run = write_run(app_env.store, app_env.owner(SECRET_A), upload, val_perplexity=7.25)
    stranger = app_env.app(SECRET_B, page=REPORT, run=run.id).run()
    _no_crash(stranger)
    shown = " ".join(texts(stranger.markdown)) + str(stranger.table[0].value.to_dict())
    assert "7.25" not in shown and _charts(stranger) == 2  # ε and the private clipping chart only
    monitor = app_env.app(SECRET_B, page=MONITOR, run=run.id).run()
    _no_crash(monitor)
    assert "7.25" not in str([m.value for m in monitor.metric]) and _charts(monitor) == 2
    owner = app_env.app(SECRET_A, page=REPORT, run=run.id).run()
    assert _charts(owner) == 4 and "7.25" in str(owner.table[0].value.to_dict())
    owner.toggle(key="rep_share_uncovered").set_value(True).run()
    assert app_env.store.get_run(run.id).share_uncovered
    stranger = app_env.app(SECRET_B, page=REPORT, run=run.id).run()
    assert _charts(stranger) == 4


def test_only_the_owner_may_download_the_checkpoint(app_env):
    run = write_run(app_env.store, app_env.owner(SECRET_A), checkpoint=True)
    owner_view = app_env.app(SECRET_A, page=REPORT, run=run.id).run()
    assert owner_view.download_button(key="rep_ckpt")
    shared_view = app_env.app(SECRET_B, page=REPORT, run=run.id).run()
    _no_crash(shared_view)
    assert not [b for b in shared_view.get("download_button") if b.key == "rep_ckpt"]


def test_report_of_the_baseline_says_no_privacy(app_env):
    run = write_run(app_env.store, app_env.owner(), TINY.replace(mechanism="none"))
    at = app_env.app(SECRET_B, page=REPORT, run=run.id).run()
    _no_crash(at)
    statement = " ".join(texts(at.markdown))
    assert "no privacy" in statement and "ε =" not in statement


def test_an_unusable_data_folder_is_explained_not_a_traceback(app_env, tmp_path, monkeypatch):
    import streamlit as st

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DPCORE_DATA_DIR", str(blocker / "data"))
    st.cache_resource.clear()
    at = app_env.app().run()
    _no_crash(at)
    assert any("The run store cannot be opened" in e for e in texts(at.error))


def test_samples_of_a_non_private_upload_model_are_for_its_owner_only(app_env):
    upload = TINY.replace(corpus="/data/uploads/x/diary.txt", mechanism="none")
    run = write_run(app_env.store, app_env.owner(SECRET_A), upload, checkpoint=True)
    stranger = app_env.app(SECRET_B, page=SAMPLES, runs=run.id).run()
    _no_crash(stranger)
    assert any("for its owner only" in i for i in texts(stranger.info)) and not stranger.code
    owner = app_env.app(SECRET_A, page=SAMPLES, runs=run.id).run()
    _no_crash(owner)
    assert owner.code


def test_the_live_refresh_slows_down_when_a_room_watches():
    from streamlit.testing.v1 import AppTest

    def script():
        import streamlit as st

        from pages.ui import session

        session._watchers.clear()
        first = session.live_interval(1.0, now=100.0)
        seen, _lock = session._watchers()
        for i in range(29):  # 29 other sessions watched in the last few seconds
            seen[f"other-{i}"] = 99.0
        crowded = session.live_interval(1.0, now=100.0)
        for key in list(seen):
            seen[key] = 0.0  # long gone
        alone = session.live_interval(1.0, now=100.0)
        st.write(f"{first} {crowded} {alone}")

    at = AppTest.from_function(script).run()
    assert not at.exception
    assert at.markdown[0].value == "1.0 3.0 1.0"


def test_report_puts_the_same_epsilon_per_person_and_per_sequence_side_by_side(app_env):
    owner = app_env.owner()
    person = write_run(app_env.store, owner, TINY.replace(unit="user", epsilon=3.0))
    write_run(app_env.store, owner, TINY.replace(unit="sequence", epsilon=3.0))
    at = app_env.app(page=REPORT, run=person.id).run()
    _no_crash(at)
    assert any("Per person or per sequence, at the same ε" in m for m in texts(at.markdown))
    tables = [d.value for d in at.dataframe if "protects" in d.value.columns]
    assert len(tables) == 1 and list(tables[0]["protects"]) == ["a person", "a sequence"]

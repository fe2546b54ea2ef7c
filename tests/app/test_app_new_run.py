"""AppTest: the New run page (presets, URL state, messages at the controls, uploads, launch)."""

from __future__ import annotations

import pytest

from tests.apptest_support import SECRET_A, SECRET_B, app_env_for, executor_of, texts


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    yield from app_env_for(tmp_path, monkeypatch)

PAGE = "pages/screens/new_run.py"
TXT = ("\n".join(f"line {i}: the quick brown fox jumps over the lazy dog number {i}" for i in range(300))).encode()
CSV = ("author,body\n" + "\n".join(f"user{i % 12},message {i} about the weather and the trains today"
                                    for i in range(300))).encode()


def _no_crash(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_opens_on_the_default_preset_and_explains_it(app_env):
    at = app_env.app(page=PAGE).run()
    _no_crash(at)
    assert at.query_params["preset"] == "workshop-eps3-person"
    assert at.segmented_control(key="nr_unit").value == "user"  # per person by default
    assert any("any one person, with all of their messages, can change the odds of any outcome" in m
               for m in texts(at.markdown))
    assert any("small chance that this promise fails" in m for m in texts(at.markdown))
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["Noise σ"]) > 0 and metrics["Steps"] == "300"
    assert at.get("plotly_chart"), "the predicted ε curve is drawn"
    assert not at.button(key="launch").disabled


def test_preset_button_fills_the_form_and_the_url(app_env):
    at = app_env.app(page=PAGE).run()
    at.button(key="preset_workshop-none").click().run()
    _no_crash(at)
    assert at.query_params["preset"] == "workshop-none"
    assert at.toggle(key="nr_no_privacy").value is True
    assert any("No privacy (baseline)" in i for i in texts(at.info))
    at.button(key="preset_workshop-eps8").click().run()  # the per-sequence variant
    assert at.select_slider(key="nr_epsilon").value == 8.0
    assert at.segmented_control(key="nr_unit").value == "sequence"
    at.button(key="preset_workshop-eps8-person").click().run()
    assert at.segmented_control(key="nr_unit").value == "user" and at.number_input(key="nr_batch").value == 128


def test_editing_a_field_writes_it_to_the_url_and_a_link_reproduces_it(app_env):
    at = app_env.app(page=PAGE).run()
    at.select_slider(key="nr_epsilon").set_value(5.0).run()
    at.number_input(key="nr_steps").set_value(60).run()
    _no_crash(at)
    params = {k: at.query_params[k] for k in at.query_params}
    assert params == {"preset": "workshop-eps3-person", "epsilon": "5", "max_steps": "60"}
    other = app_env.app(secret=SECRET_B, page=PAGE, **params).run()
    assert other.select_slider(key="nr_epsilon").value == 5.0
    assert other.number_input(key="nr_steps").value == 60


def test_bad_link_values_are_explained_and_fall_back(app_env):
    at = app_env.app(page=PAGE, preset="workshop-eps1", epsilon="lots", batch_size="-3", colour="red").run()
    _no_crash(at)
    warnings = " ".join(texts(at.warning))
    assert "epsilon='lots' was ignored" in warnings and "batch_size='-3' was ignored" in warnings
    assert "'colour' is not a setting" in warnings
    assert at.select_slider(key="nr_epsilon").value == 1.0
    assert at.number_input(key="nr_batch").value == 256


def test_out_of_range_link_values_are_explained_never_clamped(app_env):
    at = app_env.app(page=PAGE, preset="workshop-eps3", lr="50", seed="1e23", clip="500").run()
    _no_crash(at)
    warnings = " ".join(texts(at.warning))
    assert "lr='50' was ignored (learning rate must be a number from 1e-06 to 10, got 50.0)" in warnings
    assert "seed='1e23' was ignored (not a whole number)" in warnings
    assert at.number_input(key="nr_lr").value == 0.02 and at.number_input(key="nr_seed").value == 0
    assert at.number_input(key="nr_clip").value == 500.0, "in the field's range (the old widget stopped at 100)"
    assert (at.number_input(key="nr_lr").min, at.number_input(key="nr_lr").max) == (1e-6, 10.0)


def test_invalid_delta_is_explained_at_its_control_and_blocks_launch(app_env):
    at = app_env.app(page=PAGE).run()
    at.toggle(key="nr_delta_custom").set_value(True).run()
    at.text_input(key="nr_delta").input("abc").run()
    assert "Write δ as a number, for example 1e-6." in texts(at.error)
    assert at.button(key="launch").disabled
    at.text_input(key="nr_delta").input("0.01").run()
    _no_crash(at)
    assert any("is not below 1/N" in e for e in texts(at.error))
    assert at.button(key="launch").disabled
    at.text_input(key="nr_delta").input("1e-7").run()
    assert not at.error and not at.button(key="launch").disabled


def test_laplace_switches_to_the_pld_accountant(app_env):
    at = app_env.app(page=PAGE).run()
    at.selectbox(key="nr_mechanism").set_value("laplace").run()
    _no_crash(at)
    acct = at.selectbox(key="nr_accountant")
    assert acct.value == "pld" and acct.disabled
    assert at.query_params["mechanism"] == "laplace" and at.query_params["accountant"] == "pld"
    engine = at.selectbox(key="nr_engine")
    assert engine.value == "opacus" and engine.disabled and at.query_params.get("engine") in (None, "opacus")


def test_naive_recipe_is_labelled_as_no_guarantee(app_env):
    at = app_env.app(page=PAGE).run()
    at.selectbox(key="nr_mechanism").set_value("naive").run()
    _no_crash(at)
    assert any("No privacy guarantee" in e and "no ε holds" in e for e in texts(at.error))
    assert not any("can change the odds" in m for m in texts(at.markdown)), "no ε is shown for the naive recipe"


def test_launch_submits_the_form_and_opens_the_monitor(app_env):
    at = app_env.app(page=PAGE).run()
    at.button(key="launch").click().run()
    _no_crash(at)
    (owner, config), = executor_of(at).submitted
    assert owner == app_env.owner(SECRET_A)
    assert config.epsilon == 3.0 and config.corpus == "builtin" and config.max_steps == 300
    run = app_env.store.list_runs(owner)[0]
    assert at.query_params["run"] == run.id
    assert any(h.value.startswith("Run monitor") for h in at.title)


def test_a_bad_upload_shows_an_error_and_stores_nothing(app_env):
    at = app_env.app(page=PAGE).run()
    at.radio(key="nr_source").set_value("upload").run()
    at.file_uploader(key="nr_file").set_value(("notes.txt", b"\x00\x01\x02binary", "text/plain")).run()
    _no_crash(at)
    assert any(e.startswith("This file cannot be used") and "binary" in e for e in texts(at.error))
    assert app_env.store.list_uploads(app_env.owner()) == []
    assert at.button(key="launch").disabled
    at.radio(key="nr_source").set_value("builtin").run()
    assert not at.button(key="launch").disabled, "the rest of the form still works"


def test_txt_upload_is_stored_for_this_browser_only_and_previewed(app_env):
    at = app_env.app(page=PAGE).run()
    at.radio(key="nr_source").set_value("upload").run()
    at.file_uploader(key="nr_file").set_value(("corpus.txt", TXT, "text/plain")).run()
    _no_crash(at)
    (upload,) = app_env.store.list_uploads(app_env.owner())
    assert at.query_params["corpus"] == f"upload:{upload.id}"
    assert any("training sequences" in c for c in texts(at.caption))
    assert not at.button(key="launch").disabled
    other = app_env.app(secret=SECRET_B, page=PAGE, corpus=f"upload:{upload.id}").run()
    assert any("belongs to another browser" in w for w in texts(other.warning))
    assert other.radio(key="nr_source").value == "builtin"
    assert app_env.store.list_uploads(app_env.owner(SECRET_B)) == []


def test_csv_upload_offers_its_columns(app_env):
    at = app_env.app(page=PAGE).run()
    at.radio(key="nr_source").set_value("upload").run()
    at.file_uploader(key="nr_file").set_value(("posts.csv", CSV, "text/csv")).run()
    _no_crash(at)
    assert at.selectbox(key="nr_text_col").options == ["author", "body"]
    at.selectbox(key="nr_text_col").set_value("body").run()
    at.selectbox(key="nr_user_col").set_value("author").run()
    _no_crash(at)
    assert at.query_params["text_column"] == "body" and at.query_params["user_column"] == "author"
    at.button(key="launch").click().run()
    (_, config), = executor_of(at).submitted
    assert config.text_column == "body" and config.user_column == "author" and config.corpus.endswith("posts.csv")


def test_back_from_the_monitor_keeps_the_launched_form(app_env):
    """st.switch_page leaves /new_run?run=<id> in the browser's history: Back lands there, and the form stays."""
    at = app_env.app(page=PAGE, preset="workshop-eps3").run()
    at.number_input(key="nr_steps").set_value(120).run()
    launched = {k: at.query_params[k] for k in at.query_params}
    assert launched == {"preset": "workshop-eps3", "max_steps": "120"}
    at.button(key="launch").click().run()
    run_id = at.query_params["run"]
    at.switch_page(PAGE).run()  # Back: the new_run page with the monitor's query string
    _no_crash(at)
    assert {k: at.query_params[k] for k in at.query_params} == launched
    assert at.number_input(key="nr_steps").value == 120 and at.radio(key="nr_source").value == "builtin"
    assert not at.warning, texts(at.warning)
    at.button(key="launch").click().run()
    first, second = executor_of(at).submitted
    assert second == first and first[1].max_steps == 120
    assert at.query_params["run"] != run_id


def test_the_crowd_size_and_the_public_start_are_choices_that_reach_the_config(app_env):
    at = app_env.app(page=PAGE).run()
    _no_crash(at)
    assert at.select_slider(key="nr_people").value == 4000
    at.select_slider(key="nr_people").set_value(400).run()
    assert at.radio(key="nr_init").value == "public"  # the workshop presets start from the public model
    at.radio(key="nr_init").set_value("scratch").run()
    _no_crash(at)
    assert at.query_params["builtin_users"] == "400" and at.query_params["init"] == "scratch"
    assert any("400 synthetic people" in c for c in texts(at.caption))

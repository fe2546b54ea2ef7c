"""AppTest: noisy decoders on Samples, the Mechanisms page, audits on Run report and Compare, and the
New run form's audit box."""

from __future__ import annotations

import pytest

from tests.apptest_support import SECRET_B, TINY, app_env_for, executor_of, texts, write_run
from tests.audit_fixture import add_audit, fake_audit


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    yield from app_env_for(tmp_path, monkeypatch)


MECHANISMS, SAMPLES, REPORT, COMPARE, NEW_RUN = (
    "pages/screens/mechanisms.py", "pages/screens/samples.py", "pages/screens/report.py",
    "pages/screens/compare.py", "pages/screens/new_run.py",
)


def _no_crash(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _charts(at) -> int:
    return len(at.get("plotly_chart"))


# ------------------------------------------------------------------------------------ mechanisms
def test_mechanisms_page_compares_noise_and_hints_without_runs(app_env):
    at = app_env.app(page=MECHANISMS).run()
    _no_crash(at)
    assert _charts(at) == 1
    assert any("Laplace noise is about" in m for m in texts(at.markdown))
    assert any("Gaussian and a Laplace run" in i for i in texts(at.info))
    at.select_slider(key="mech_eps").set_value(8.0).run()
    _no_crash(at)
    assert any("At ε = 8" in m for m in texts(at.markdown))


def test_mechanisms_page_groups_runs_and_labels_naive(app_env):
    owner = app_env.owner()
    write_run(app_env.store, owner)
    write_run(app_env.store, owner, TINY.replace(mechanism="naive", epsilon=1.0))
    at = app_env.app(page=MECHANISMS).run()
    _no_crash(at)
    assert _charts(at) == 2
    assert any("no privacy guarantee" in e for e in texts(at.error))


# ------------------------------------------------------------------------------------ samples
def test_samples_with_a_private_decoder_charge_the_ledger_and_show_it(app_env):
    owner = app_env.owner()
    runs = [write_run(app_env.store, owner, checkpoint=True),
            write_run(app_env.store, owner, TINY.replace(mechanism="none"), checkpoint=True)]
    at = app_env.app(page=SAMPLES).run()
    _no_crash(at)
    assert any("Post-processing: no extra ε; the training ε = 2.5" in c for c in texts(at.caption))
    assert any("Seeds plain sampling" in (n.help or "") for n in at.number_input if n.key == "smp_seed")
    at.number_input(key="smp_n").set_value(1).run()
    at.number_input(key="smp_tokens").set_value(10).run()  # 10 tokens × ε 2 = 20, within the default budget
    at.text_input(key="smp_prompt").input("he").run()
    at.selectbox(key="smp_decoder").set_value("exponential").run()
    _no_crash(at)
    assert not at.code, "a private decoder decodes only when asked (every text is charged)"
    assert all(not app_env.store.ledger(r.id).entries for r in runs)
    at.button(key="smp_generate").click().run()
    _no_crash(at)
    captions = texts(at.caption)
    assert sum(c.startswith("**This text: ε = ") and "× ε 2 per token" in c for c in captions) == 2  # 4B/T = 4·4/8
    assert sum(c.startswith("Each private text from this model: ε ≤ 20 ") for c in captions) == 2
    assert any("Exponential: ε per token" in c and "training: (ε = 2.5" in c for c in captions)
    assert _charts(at) == 2
    codes = [c.value for c in at.code]
    assert len(codes) == 2 and all(c.startswith("he") for c in codes)
    for run in runs:  # one ledger entry per text, charged to this browser, settled to the tokens drawn
        (entry,) = app_env.store.ledger(run.id).entries
        assert (entry.viewer, entry.decoder, entry.epsilon_per_token) == (owner, "exponential", 2.0)
        assert 1 <= entry.tokens <= 10 and entry.epsilon == 2.0 * entry.tokens
    assert sum("Private decoding of this model so far: 1 text" in c and "Basic composition: (ε =" in c
               and "advanced composition" in c and "Budget ε = 160 (the default" in c for c in captions) == 2
    at.run()  # a rerun shows the texts it paid for again and charges nothing
    assert [c.value for c in at.code] == codes
    assert all(len(app_env.store.ledger(r.id).entries) == 1 for r in runs)


def test_samples_refuse_private_decoding_past_the_budget(app_env):
    owner = app_env.owner()
    run = write_run(app_env.store, owner, checkpoint=True)
    app_env.store.charge_inference(run.id, "browser:someone-else", "mix", 1.0, 155)  # 155 of 160 spent
    at = app_env.app(page=SAMPLES)
    at.session_state["smp_decoder"], at.session_state["smp_n"] = "exponential", 1
    at.session_state["smp_tokens"] = 10  # may spend 20 > 5 left
    at.run()
    at.button(key="smp_generate").click().run()
    _no_crash(at)
    assert not at.code
    assert any(e.startswith("Refused:") and "has 5 left" in e for e in texts(at.error))
    assert len(app_env.store.ledger(run.id).entries) == 1  # the refused text was not recorded
    # the owner raises the budget; then the same request goes through
    at.number_input(key=f"smp_budget_{run.id}").set_value(200.0).run()
    assert app_env.store.get_run(run.id).inference_budget == 200.0
    at.button(key="smp_generate").click().run()
    _no_crash(at)
    assert len(at.code) == 1 and len(app_env.store.ledger(run.id).entries) == 2
    # someone who opened the run by link sees the ledger, but cannot set the budget
    other = app_env.app(secret=SECRET_B, page=SAMPLES, runs=run.id).run()
    _no_crash(other)
    assert not [n for n in other.number_input if n.key == f"smp_budget_{run.id}"]
    assert any("Private decoding of this model so far: 2 texts" in c and "set by the run's owner" in c
               for c in texts(other.caption))


def test_samples_naive_logits_decoder_claims_no_guarantee(app_env):
    write_run(app_env.store, app_env.owner(), checkpoint=True)
    at = app_env.app(page=SAMPLES)
    at.session_state["smp_decoder"] = "naive-logits"
    at.run()
    _no_crash(at)
    assert any("no privacy guarantee" in e and "unbounded" in e for e in texts(at.error))
    assert any("ε per token: none" in c for c in texts(at.caption))
    assert _charts(at) == 0


# ------------------------------------------------------------------------------------ report
def test_report_shows_the_audit(app_env):
    run = write_run(app_env.store, app_env.owner())
    add_audit(app_env.store, run.id, fake_audit())
    at = app_env.app(page=REPORT, run=run.id).run()
    _no_crash(at)
    assert _charts(at) == 4 + 3  # curves + exposure, ROC, ε bounds
    assert any("2^11.3 tries" in m for m in texts(at.markdown))


def test_report_flags_a_bound_above_the_claim_as_an_error(app_env):
    """The bug alarm is an st.error at the top of the audit, from the bounds and the claim (issue 25)."""
    run = write_run(app_env.store, app_env.owner())
    add_audit(app_env.store, run.id, fake_audit())
    at = app_env.app(page=REPORT, run=run.id).run()
    _no_crash(at)
    assert not any("BUG ALARM" in e for e in texts(at.error))
    bad = write_run(app_env.store, app_env.owner())
    audit = fake_audit(claimed=0.1)
    audit["one_run"]["alarm_level"] = {"alpha_per_test": 0.005, "epsilon_lower_bound": 0.18}
    add_audit(app_env.store, bad.id, audit)
    at = app_env.app(page=REPORT, run=bad.id).run()
    _no_crash(at)
    assert any(e.startswith("BUG ALARM") and "0.21" in e and "at most 5%" in e for e in texts(at.error))


def test_report_without_an_audit_says_how_to_get_one(app_env):
    run = write_run(app_env.store, app_env.owner(), checkpoint=True)
    at = app_env.app(page=REPORT, run=run.id).run()
    _no_crash(at)
    assert any("python -m dpcore audit --checkpoint" in i and "Audit privacy at the end" in i
               for i in texts(at.info))


# ------------------------------------------------------------------------------------ compare
def test_compare_plots_audits_against_epsilon(app_env):
    owner = app_env.owner()
    private = write_run(app_env.store, owner, epsilon=2.0)
    baseline = write_run(app_env.store, owner, TINY.replace(mechanism="none"))
    write_run(app_env.store, owner)  # no audit
    add_audit(app_env.store, private.id, fake_audit(auc=0.51))
    add_audit(app_env.store, baseline.id, fake_audit(claimed=None, auc=0.7, exposure=9.0))
    at = app_env.app(page=COMPARE).run()
    _no_crash(at)
    assert _charts(at) == 4 + 2
    assert any("∞ / none" in c for c in texts(at.caption))


# ------------------------------------------------------------------------------------ new run
def test_new_run_audit_box_goes_to_the_url_and_the_config(app_env):
    at = app_env.app(page=NEW_RUN).run()
    at.checkbox(key="nr_audit").check().run()
    _no_crash(at)
    assert at.query_params["audit"] == "true"
    at.button(key="launch").click().run()
    (_, config), = executor_of(at).submitted
    assert config.audit is True
    linked = app_env.app(page=NEW_RUN, preset="workshop-eps3", audit="true").run()
    assert linked.checkbox(key="nr_audit").value is True

"""AppTest: a visitor who opens someone's non-private upload run by link gets no plain or naive-logits text
on Samples or Report (nor in the report they download), decodes privately only within the stranger budget,
and sees the owner's raise; the owner keeps every decoder and alone sets that budget."""

from __future__ import annotations

import pytest

from tests.apptest_support import SECRET_A, SECRET_B, TINY, app_env_for, texts, write_run

SAMPLES, REPORT = "pages/screens/samples.py", "pages/screens/report.py"
UPLOAD = TINY.replace(corpus="/data/uploads/x/diary.txt", mechanism="none")


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    yield from app_env_for(tmp_path, monkeypatch)


def _no_crash(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _stranger(app_env, run, decoder: str, **state):
    at = app_env.app(SECRET_B, page=SAMPLES, runs=run.id)
    at.session_state["smp_decoder"], at.session_state["smp_n"] = decoder, 1
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def test_a_visitor_gets_no_text_without_a_guarantee_and_the_owner_keeps_it(app_env):
    run = write_run(app_env.store, app_env.owner(SECRET_A), UPLOAD, checkpoint=True)
    for decoder in ("plain", "naive-logits"):
        at = _stranger(app_env, run, decoder, smp_b=0.1)
        _no_crash(at)
        assert not at.code, decoder  # no text at all
        assert any(i.startswith(f"{decoder.capitalize()} text from this model is for its owner only")
                   for i in texts(at.info)), decoder
        assert any("Stranger budget ε = 8** (the default)" in c for c in texts(at.caption))
        assert not [n for n in at.number_input if n.key == f"smp_stranger_{run.id}"]  # not theirs to raise
    owner = app_env.app(SECRET_A, page=SAMPLES, runs=run.id)
    owner.session_state["smp_decoder"], owner.session_state["smp_n"] = "naive-logits", 1
    owner.run()
    _no_crash(owner)
    assert len(owner.code) == 1 and not [i for i in texts(owner.info) if "for its owner only" in i]


def test_a_visitor_is_refused_the_readable_point_until_the_owner_raises_the_stranger_budget(app_env):
    run = write_run(app_env.store, app_env.owner(SECRET_A), UPLOAD, checkpoint=True)
    at = _stranger(app_env, run, "readable")
    at.button(key="smp_generate").click().run()
    _no_crash(at)
    assert not at.code and not app_env.store.ledger(run.id).entries
    assert any(e.startswith("Refused:") and "stranger budget" in e for e in texts(at.error))
    private = _stranger(app_env, run, "private")
    private.button(key="smp_generate").click().run()
    _no_crash(private)
    assert len(private.code) == 1 and app_env.store.ledger(run.id).stranger_spent <= 1.0
    owner = app_env.app(SECRET_A, page=SAMPLES, runs=run.id).run()
    owner.number_input(key=f"smp_stranger_{run.id}").set_value(300.0).run()
    _no_crash(owner)
    assert app_env.store.get_run(run.id).stranger_budget == 300.0
    again = _stranger(app_env, run, "readable")
    assert any("Stranger budget ε = 300** (RAISED by the run's owner from the default ε = 8)" in c
               for c in texts(again.caption))
    again.button(key="smp_generate").click().run()
    _no_crash(again)
    assert len(again.code) == 1 and len(app_env.store.ledger(run.id).entries) == 2
    report = app_env.app(SECRET_B, page=REPORT, run=run.id).run()
    _no_crash(report)
    assert any("RAISED by the run's owner from the default ε = 8" in m for m in texts(report.markdown))


def test_the_report_and_its_downloads_keep_the_samples_for_the_owner(app_env):
    run = write_run(app_env.store, app_env.owner(SECRET_A), UPLOAD, checkpoint=True)
    app_env.store.set_share_uncovered(run.id, app_env.owner(SECRET_A), True)  # statistics, never the text
    from dpcore.views.report import html_report, markdown_report

    stranger = app_env.app(SECRET_B, page=REPORT, run=run.id).run()
    _no_crash(stranger)
    assert not stranger.code and "hello there" not in " ".join(texts(stranger.markdown))
    assert any("for its owner only" in m for m in texts(stranger.markdown))
    # the report functions behind the download buttons, with the key the page passes (the visitor's own)
    fresh = app_env.store.get_run(run.id)
    assert "hello there" not in markdown_report(fresh, app_env.store.samples(run.id),
                                                viewer=app_env.owner(SECRET_B))
    owner = app_env.app(SECRET_A, page=REPORT, run=run.id).run()
    _no_crash(owner)
    assert [c.value for c in owner.code] == ["hello there", "good day"]
    assert "hello there" in html_report(fresh, [], [], app_env.store.samples(run.id),
                                        viewer=app_env.owner(SECRET_A))

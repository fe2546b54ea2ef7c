"""AppTest: a visitor's data: deleting runs (Home), deleting uploads (New run), forgetting the browser."""

from __future__ import annotations

import pytest

from tests.apptest_support import SECRET_A, SECRET_B, TINY, app_env_for, texts, write_run


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    yield from app_env_for(tmp_path, monkeypatch)


HOME, MONITOR, NEW_RUN = "pages/screens/home.py", "pages/screens/monitor.py", "pages/screens/new_run.py"
TXT = ("\n".join(f"line {i}: the quick brown fox jumps over the lazy dog number {i}" for i in range(300))).encode()


def _no_crash(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _keys(at) -> set[str]:
    return {b.key for b in at.button if b.key}


def _links(at) -> list[str]:
    return [p.label for p in at.get("page_link")]


def _html(at) -> str:
    return " ".join(str(h.proto.body) for h in at.get("html"))


# ------------------------------------------------------------------------------------ runs (Home)
def test_deleting_an_own_finished_run_asks_once_more_then_removes_it(app_env):
    run = write_run(app_env.store, app_env.owner(), checkpoint=True)
    folder = app_env.store.run_dir(run.id)
    assert folder.exists()
    at = app_env.app().run()
    _no_crash(at)
    assert any(run.id[:6] in label for label in _links(at))
    at.button(key=f"home_del_{run.id}").click().run()
    _no_crash(at)
    assert app_env.store.list_runs(app_env.owner()), "one click only asks"
    at.button(key=f"home_del_yes_{run.id}").click().run()
    _no_crash(at)
    assert app_env.store.list_runs(app_env.owner()) == []
    assert not folder.exists(), "its checkpoint is gone too"
    assert not any(run.id[:6] in label for label in _links(at))
    assert any("Deleted run" in s for s in texts(at.success))


def test_keep_cancels_the_delete(app_env):
    run = write_run(app_env.store, app_env.owner(), status="failed")
    at = app_env.app().run()
    at.button(key=f"home_del_{run.id}").click().run()
    at.button(key=f"home_del_no_{run.id}").click().run()
    _no_crash(at)
    assert [r.id for r in app_env.store.list_runs(app_env.owner())] == [run.id]
    assert f"home_del_{run.id}" in _keys(at)


def test_a_running_run_must_be_cancelled_first(app_env):
    run = write_run(app_env.store, app_env.owner(), status="running")
    at = app_env.app().run()
    _no_crash(at)
    assert not any(k.startswith("home_del") and run.id in k for k in _keys(at))
    assert "Cancel it first on the Run monitor" in _links(at)


def test_disk_used_and_the_quota_are_shown(app_env, monkeypatch):
    monkeypatch.setenv("DPCORE_DISK_QUOTA_MB", "50")
    write_run(app_env.store, app_env.owner(), checkpoint=True)
    at = app_env.app().run()
    _no_crash(at)
    (bar,) = at.get("progress")
    assert "of the 50.0 MB this server allows you" in bar.proto.text


def test_another_owners_run_opened_by_link_offers_no_delete(app_env):
    theirs = write_run(app_env.store, app_env.owner(SECRET_A))
    at = app_env.app(SECRET_B, page=MONITOR, run=theirs.id).run()
    _no_crash(at)
    at.switch_page(HOME).run()
    _no_crash(at)
    assert any(theirs.id[:6] in label for label in _links(at)), "it is on the visitor's list"
    assert not any(k.startswith("home_del") for k in _keys(at))
    at.button(key=f"home_unlist_{theirs.id}").click().run()
    _no_crash(at)
    assert not any(theirs.id[:6] in label for label in _links(at)), "it only disappears from the list"
    assert app_env.store.get_run(theirs.id).owner == app_env.owner(SECRET_A)


# ------------------------------------------------------------------------------------ uploads (New run)
def _upload_with_runs(app_env, n_runs: int = 2):
    owner = app_env.owner()
    upload = app_env.store.save_upload(owner, "corpus.txt", TXT)
    runs = [write_run(app_env.store, owner, TINY.replace(corpus=upload.path)) for _ in range(n_runs)]
    other = write_run(app_env.store, owner)  # on the built-in corpus
    return upload, runs, other


def test_deleting_an_upload_with_its_runs(app_env):
    upload, runs, other = _upload_with_runs(app_env)
    at = app_env.app(page=NEW_RUN, corpus=f"upload:{upload.id}").run()
    _no_crash(at)
    assert at.radio(key="nr_source").value == "upload"
    at.button(key="nr_upload_delete").click().run()
    box = at.checkbox(key="nr_upload_delete_runs")
    assert "also delete the 2 runs trained on this file" in box.label and box.value is False
    box.check().run()
    at.button(key="nr_upload_delete_yes").click().run()
    _no_crash(at)
    assert app_env.store.list_uploads(app_env.owner()) == []
    assert [r.id for r in app_env.store.list_runs(app_env.owner())] == [other.id]
    assert not any(app_env.store.run_dir(r.id).exists() for r in runs)
    assert at.radio(key="nr_source").value == "builtin"
    assert at.query_params.get("corpus") in (None, "builtin")
    assert any("Deleted corpus.txt, and the 2 runs trained on it" in s for s in texts(at.success))
    assert not at.button(key="launch").disabled


def test_deleting_an_upload_keeps_its_runs_unless_asked(app_env):
    upload, runs, _ = _upload_with_runs(app_env, n_runs=1)
    at = app_env.app(page=NEW_RUN, corpus=f"upload:{upload.id}").run()
    at.button(key="nr_upload_delete").click().run()
    assert "also delete the 1 run trained on this file" in at.checkbox(key="nr_upload_delete_runs").label
    at.button(key="nr_upload_delete_yes").click().run()
    _no_crash(at)
    assert app_env.store.list_uploads(app_env.owner()) == []
    assert len(app_env.store.list_runs(app_env.owner())) == 2
    # a link that still names the deleted file falls back to the built-in corpus
    again = app_env.app(page=NEW_RUN, corpus=f"upload:{upload.id}").run()
    _no_crash(again)
    assert again.radio(key="nr_source").value == "builtin"


def test_an_upload_past_the_disk_quota_is_explained_under_the_uploader(app_env, monkeypatch):
    monkeypatch.setenv("DPCORE_DISK_QUOTA_MB", "0.01")
    at = app_env.app(page=NEW_RUN).run()
    at.radio(key="nr_source").set_value("upload").run()
    at.file_uploader(key="nr_file").set_value(("corpus.txt", TXT, "text/plain")).run()
    _no_crash(at)
    assert any("could not be stored" in e and "delete old runs or uploads" in e for e in texts(at.error))
    assert app_env.store.list_uploads(app_env.owner()) == []


# ------------------------------------------------------------------------------------ forget this browser
def _forget(at, *, delete: bool = False):
    at.checkbox(key="forget_delete").set_value(delete)
    at.button(key="forget_browser").click().run()
    _no_crash(at)
    return at


def test_forgetting_the_browser_gives_a_new_key_with_no_runs(app_env):
    mine = write_run(app_env.store, app_env.owner())
    at = app_env.app().run()
    assert any(mine.id[:6] in label for label in _links(at))
    _forget(at)
    secret = at.session_state["_owner_secret"]
    assert secret != SECRET_A and len(secret) == 32
    assert "dprnn_owner=; path=/; max-age=0" in _html(at), "the old cookie is expired"
    assert f"dprnn_owner={secret}; path=/; max-age=31536000" in _html(at), "the new key is kept for a year"
    assert not any(mine.id[:6] in label for label in _links(at))
    assert any("None yet" in c for c in texts(at.caption))
    assert any("forgotten" in s for s in texts(at.success))
    assert app_env.store.get_run(mine.id).owner == app_env.owner(SECRET_A), "unticked: the runs are kept"
    at.run()
    assert "max-age=0" not in _html(at), "the cookie is expired once"


def test_forgetting_with_the_box_ticked_deletes_runs_and_uploads(app_env):
    owner = app_env.owner()
    upload = app_env.store.save_upload(owner, "corpus.txt", TXT)
    write_run(app_env.store, owner, TINY.replace(corpus=upload.path))
    write_run(app_env.store, owner, status="queued")
    theirs = write_run(app_env.store, app_env.owner(SECRET_B))
    at = app_env.app().run()
    _forget(at, delete=True)
    assert at.session_state["_owner_secret"] != SECRET_A
    assert app_env.store.list_runs(owner) == [] and app_env.store.list_uploads(owner) == []
    assert app_env.store.get_run(theirs.id), "nobody else's runs"
    assert any("Deleted 2 runs and 1 upload" in s for s in texts(at.success))
    assert any("None yet" in c for c in texts(at.caption))


def test_forgetting_waits_for_running_runs_to_stop(app_env):
    owner = app_env.owner()
    running = write_run(app_env.store, owner, status="running")
    done = write_run(app_env.store, owner)
    at = app_env.app().run()
    _forget(at, delete=True)
    assert at.session_state["_owner_secret"] == SECRET_A, "not forgotten while a run still runs"
    assert any("not forgotten yet" in w for w in texts(at.warning))
    assert app_env.store.get_run(running.id).cancel_requested_at is not None
    assert [r.id for r in app_env.store.list_runs(owner)] == [running.id], "the stopped run is already gone"
    assert done.id not in {r.id for r in app_env.store.list_runs()}
    app_env.store.finish_run(running.id, "cancelled")  # the worker stops
    _forget(at, delete=True)
    assert at.session_state["_owner_secret"] != SECRET_A
    assert app_env.store.list_runs(owner) == []

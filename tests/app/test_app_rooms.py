"""AppTest: a workshop room from creation to class report, and the New run form inside a room."""

from __future__ import annotations

import pytest

from dpcore.runs.rooms import RoomSettings
from pages.ui import room_ui
from tests.apptest_support import SECRET_A, SECRET_B, TINY, app_env_for, executor_of, texts, write_run

ROOM, NEW_RUN = "pages/screens/room.py", "pages/screens/new_run.py"
SECRET_C = "c" * 32


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    yield from app_env_for(tmp_path, monkeypatch)


def _ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _room(app_env, **settings):
    at = app_env.app(SECRET_A, page=ROOM).run()  # the app's cached handles exist once it has run
    return room_ui.rooms().create_room("Tuesday", RoomSettings(**settings)), at


def test_creating_a_room_makes_this_browser_its_instructor(app_env):
    at = app_env.app(SECRET_A, page=ROOM).run()
    _ok(at)
    at.text_input(key="room_new_name").input("DP workshop")
    at.button[0].click().run()  # the form's submit button
    _ok(at)
    room_id = at.query_params["room"][0] if isinstance(at.query_params["room"], list) else at.query_params["room"]
    assert at.title[0].value == "DP workshop"
    assert any("You are its instructor" in c for c in texts(at.caption))
    assert len(at.get("image")) == 1  # the QR code
    assert any(f"/room?room={room_id}" in c.value for c in at.code)
    token = at.session_state["_room_tokens"][room_id]
    assert room_ui.rooms().is_instructor(room_id, token)
    assert any(b.label == "Send nudge" for b in at.button)


def test_a_participant_sees_no_instructor_controls_and_a_wrong_key_gives_none(app_env):
    created, _ = _room(app_env)
    at = app_env.app(SECRET_B, page=ROOM, room=created.room.id).run()
    _ok(at)
    assert not any(b.label in ("Send nudge", "Close the room", "Apply locks") for b in at.button)
    assert not at.get("image")
    assert created.token not in " ".join(c.value for c in at.code)
    bad = app_env.app(SECRET_B, page=ROOM, room=created.room.id, key="x" * 32).run()
    _ok(bad)
    assert any("does not open this room" in e.value for e in bad.error)
    assert "key" not in bad.query_params
    assert not any(b.label == "Send nudge" for b in bad.button)
    good = app_env.app(SECRET_C, page=ROOM, room=created.room.id, key=created.token).run()
    _ok(good)
    assert any(b.label == "Send nudge" for b in good.button) and "key" not in good.query_params


def test_join_launch_within_the_rooms_limits_and_appear_on_its_page(app_env):
    created, _ = _room(app_env, presets=("workshop-eps3-person", "workshop-eps8-person"), unlocked=("epsilon",),
                       quota=1)
    at = app_env.app(SECRET_B, page=ROOM, room=created.room.id).run()
    at.text_input(key="room_display_name").input("Bob")
    at.button(key="room_join").click().run()
    _ok(at)
    assert any("You are **Bob**" in m for m in texts(at.markdown))
    form = app_env.app(SECRET_B, page=NEW_RUN).run()
    _ok(form)
    presets = [b.label for b in form.button if (b.key or "").startswith("preset_")]
    assert presets == ["ε = 3 per person", "ε = 8 per person"]
    assert form.number_input(key="nr_clip").disabled and form.selectbox(key="nr_model").disabled
    assert not form.select_slider(key="nr_epsilon").disabled
    assert any("Room “Tuesday”" in m for m in texts(form.markdown))
    form.select_slider(key="nr_epsilon").set_value(1.0).run()
    form.button(key="launch").click().run()
    _ok(form)
    owner, config = executor_of(form).submitted[-1]
    assert owner == app_env.owner(SECRET_B) and config.epsilon == 1.0
    (entry,) = room_ui.rooms().room_runs(created.room.id)
    assert entry.display_name == "Bob"
    again = app_env.app(SECRET_B, page=NEW_RUN).run()  # the quota of one is used up
    again.button(key="launch").click().run()
    assert any("limit per participant" in e.value for e in again.error)
    assert len(executor_of(again).submitted) == 1


def test_a_locked_control_changed_anyway_snaps_back_to_the_preset(app_env):
    created, _ = _room(app_env, presets=("workshop-eps3",), unlocked=("epsilon",))
    room_ui.rooms().join(created.room.id, app_env.owner(SECRET_B), "Bob")
    form = app_env.app(SECRET_B, page=NEW_RUN).run()
    form.session_state["nr_clip"] = 4.0  # as if the disabled widget had been changed
    form.run()
    assert form.number_input(key="nr_clip").value == 1.0
    form.button(key="launch").click().run()
    assert executor_of(form).submitted[-1][1].clip == 1.0


def test_leaving_for_outside_the_room_gives_back_every_preset(app_env):
    created, _ = _room(app_env, presets=("workshop-eps3",))
    room_ui.rooms().join(created.room.id, app_env.owner(SECRET_B), "Bob")
    form = app_env.app(SECRET_B, page=NEW_RUN).run()
    form.button(key="room_outside").click().run()
    _ok(form)
    assert len([b for b in form.button if (b.key or "").startswith("preset_")]) > 1
    assert not form.number_input(key="nr_clip").disabled


def test_a_nudge_shows_on_every_page_of_a_participant_until_dismissed(app_env):
    created, _ = _room(app_env)
    room_ui.rooms().join(created.room.id, app_env.owner(SECRET_B), "Bob")
    room_ui.rooms().nudge(created.room.id, created.token, "Now try ε = 1")
    home = app_env.app(SECRET_B).run()  # Home, the default page
    _ok(home)
    assert any("Now try ε = 1" in i.value for i in home.info)
    home.button(key="room_nudge_ok_1").click().run()
    assert not any("Now try ε = 1" in i.value for i in home.info)
    outsider = app_env.app(SECRET_C).run()
    assert not any("Now try ε = 1" in i.value for i in outsider.info)


def test_the_room_page_lists_runs_under_display_names_and_closing_offers_the_report(app_env):
    created, _ = _room(app_env, corpus="own")
    rooms = room_ui.rooms()
    for secret, name in ((SECRET_B, "Bob"), (SECRET_C, "Cleo")):
        rooms.join(created.room.id, app_env.owner(secret), name)
    bob = write_run(app_env.store, app_env.owner(SECRET_B), epsilon=3.0, val_perplexity=9.0)
    upload = app_env.store.save_upload(app_env.owner(SECRET_C), "cleo-notes.txt", b"private line\n" * 80)
    cleo = write_run(app_env.store, app_env.owner(SECRET_C),
                     TINY.replace(corpus=upload.path))
    with rooms._conn() as conn:  # as RoomStore.launch records them
        for run in (bob, cleo):
            conn.execute("INSERT INTO room_runs (room_id, run_id, owner, share_numbers, created_at) "
                         "VALUES (?, ?, ?, 0, ?)", (created.room.id, run.id, run.owner, run.created_at))
    at = app_env.app(SECRET_B, page=ROOM, room=created.room.id).run()
    _ok(at)
    table = at.dataframe[0].value
    assert set(table["participant"]) == {"Bob", "Cleo"}
    cleo_row = table[table["participant"] == "Cleo"].iloc[0]
    assert "cleo-notes" not in cleo_row["run"] and cleo_row["open"] != cleo_row["open"]  # NaN: no link
    assert not any(b.label == "Download the class report (HTML)" for b in at.get("download_button"))
    rooms.close_room(created.room.id, created.token)
    closed = app_env.app(SECRET_B, page=ROOM, room=created.room.id).run()
    _ok(closed)
    assert any(b.proto.label == "Download the class report (HTML)" for b in closed.get("download_button"))
    assert not any(b.key == "room_join" for b in closed.button)

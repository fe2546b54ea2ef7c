"""Workshop rooms: instructor token, joining, quotas, locked controls and the corpus rule, all enforced at launch."""

from __future__ import annotations

import sqlite3

import pytest

from dpcore.config.presets import PRESETS, get_preset
from dpcore.runs.rooms import Challenge, RoomAccessDenied, RoomError, RoomNotFound, RoomSettings, RoomStore
from dpcore.runs.store import RunStore
from tests.apptest_support import FakeExecutor

EPS3 = get_preset("workshop-eps3-person").config
PRESET_CONFIGS = {p.name: p.config for p in PRESETS}


@pytest.fixture
def env(tmp_path):
    store = RunStore(tmp_path / "data")
    rooms = RoomStore(store, PRESET_CONFIGS)
    return store, rooms, FakeExecutor(store)


def _room(rooms, **settings):
    return rooms.create_room("Tuesday", RoomSettings(**settings) if settings else None)


def test_a_room_keeps_only_the_hash_of_its_instructor_token(env, tmp_path):
    store, rooms, _ = env
    created = _room(rooms)
    assert len(created.token) >= 32 and created.room.id not in created.token
    dump = "\n".join(sqlite3.connect(rooms.db_path).iterdump())
    assert created.token not in dump
    assert rooms.is_instructor(created.room.id, created.token)
    assert not rooms.is_instructor(created.room.id, created.room.id)  # the public id is not the key
    assert not rooms.is_instructor(created.room.id, None)


@pytest.mark.parametrize("action", ["nudge", "unlock", "challenge", "close"])
def test_instructor_actions_need_the_token(env, action):
    _, rooms, _ = env
    created = _room(rooms)
    room_id = created.room.id
    calls = {
        "nudge": lambda tok: rooms.nudge(room_id, tok, "Now try ε = 1"),
        "unlock": lambda tok: rooms.set_unlocked(room_id, tok, ["epsilon", "clip"]),
        "challenge": lambda tok: rooms.set_challenge(room_id, tok, Challenge("lowest_perplexity", 2.0)),
        "close": lambda tok: rooms.close_room(room_id, tok),
    }
    for wrong in (None, "", room_id, created.token[:-1] + ("A" if created.token[-1] != "A" else "B")):
        with pytest.raises(RoomAccessDenied):
            calls[action](wrong)
    assert rooms.get_room(room_id) == created.room  # nothing changed
    room = calls[action](created.token)
    assert room != created.room


def test_nudges_count_up_and_an_empty_one_clears(env):
    _, rooms, _ = env
    created = _room(rooms)
    room = rooms.nudge(created.room.id, created.token, "  Now   try ε = 1 ")
    assert (room.nudge, room.nudge_seq) == ("Now try ε = 1", 1)
    room = rooms.nudge(created.room.id, created.token, "")
    assert (room.nudge, room.nudge_seq) == (None, 2)


def test_display_names_are_unique_per_room_and_joining_needs_an_open_room(env):
    _, rooms, _ = env
    created = _room(rooms)
    rooms.join(created.room.id, "browser:a", "Ada")
    with pytest.raises(RoomError, match="already called"):
        rooms.join(created.room.id, "browser:b", " ada ")
    rooms.join(created.room.id, "browser:a", "Ada L.")  # renaming oneself is fine
    with pytest.raises(RoomError, match="display name"):
        rooms.join(created.room.id, "browser:b", " \t ")
    rooms.close_room(created.room.id, created.token)
    with pytest.raises(RoomError, match="closed"):
        rooms.join(created.room.id, "browser:b", "Bob")
    with pytest.raises(RoomNotFound):
        rooms.join("0123456789abcdef", "browser:b", "Bob")


def test_launching_needs_a_participant_and_an_open_room(env):
    store, rooms, executor = env
    created = _room(rooms)
    with pytest.raises(RoomError, match="join the room"):
        rooms.launch(created.room.id, "browser:a", EPS3, executor)
    rooms.join(created.room.id, "browser:a", "Ada")
    run_id = rooms.launch(created.room.id, "browser:a", EPS3, executor)
    assert store.get_run(run_id).owner == "browser:a"  # the run stays the participant's own
    assert [(e.run_id, e.display_name) for e in rooms.room_runs(created.room.id)] == [(run_id, "Ada")]
    rooms.close_room(created.room.id, created.token)
    with pytest.raises(RoomError, match="closed"):
        rooms.launch(created.room.id, "browser:a", EPS3, executor)
    assert len(rooms.room_runs(created.room.id)) == 1  # closing keeps the runs


def test_the_quota_holds_per_participant(env):
    store, rooms, executor = env
    created = _room(rooms, quota=2)
    for owner, name in (("browser:a", "Ada"), ("browser:b", "Bob")):
        rooms.join(created.room.id, owner, name)
    rooms.launch(created.room.id, "browser:a", EPS3, executor)
    rooms.launch(created.room.id, "browser:a", EPS3.replace(epsilon=1.0), executor)
    with pytest.raises(RoomError, match="2 runs in this room"):
        rooms.launch(created.room.id, "browser:a", EPS3, executor)
    rooms.launch(created.room.id, "browser:b", EPS3, executor)  # another participant has their own quota
    assert len(executor.submitted) == 3 and rooms.runs_used(created.room.id, "browser:a") == 2
    assert len(store.list_runs("browser:a")) == 2


def test_locked_controls_are_enforced_at_launch_not_only_in_the_form(env):
    _, rooms, executor = env
    created = _room(rooms, presets=("workshop-eps3-person", "workshop-none"), unlocked=("epsilon",))
    rooms.join(created.room.id, "browser:a", "Ada")
    rooms.launch(created.room.id, "browser:a", EPS3.replace(epsilon=0.5), executor)  # ε is unlocked
    for changed, label in ((EPS3.replace(clip=5.0), "Clipping norm C"), (EPS3.replace(lr=0.1), "Learning rate"),
                           (EPS3.replace(hidden_size=128), "Model size"), (EPS3.replace(seq_len=64), "seq len"),
                           (EPS3.replace_consistent(mechanism="laplace"), "Mechanism"),
                           (EPS3.replace(unit="sequence"), "Privacy unit")):
        with pytest.raises(RoomError, match=label):
            rooms.launch(created.room.id, "browser:a", changed, executor)
    laplace = get_preset("workshop-laplace").config
    with pytest.raises(RoomError, match="presets"):  # a preset the room does not offer
        rooms.launch(created.room.id, "browser:a", laplace, executor)
    rooms.launch(created.room.id, "browser:a", get_preset("workshop-none").config, executor)
    assert len(executor.submitted) == 2
    # the instructor unlocks the clipping norm: now it may change, and locking it again refuses it again
    rooms.set_unlocked(created.room.id, created.token, ["epsilon", "clip"])
    rooms.launch(created.room.id, "browser:a", EPS3.replace(clip=5.0), executor)
    rooms.set_unlocked(created.room.id, created.token, [])
    with pytest.raises(RoomError, match="Target ε"):
        rooms.launch(created.room.id, "browser:a", EPS3.replace(epsilon=0.5), executor)


def test_a_builtin_room_refuses_uploads(env):
    store, rooms, executor = env
    created = _room(rooms, corpus="builtin")
    rooms.join(created.room.id, "browser:a", "Ada")
    upload = store.save_upload("browser:a", "notes.txt", b"hello there\nhow are you\n" * 50)
    with pytest.raises(RoomError, match="built-in corpus only"):
        rooms.launch(created.room.id, "browser:a", EPS3.replace(corpus=upload.path), executor)
    assert executor.submitted == []


def test_share_numbers_is_the_owners_choice_only(env):
    store, rooms, executor = env
    created = _room(rooms, corpus="own")
    rooms.join(created.room.id, "browser:a", "Ada")
    rooms.join(created.room.id, "browser:b", "Bob")
    run_id = rooms.launch(created.room.id, "browser:a", EPS3, executor)
    with pytest.raises(RoomError, match="not one of yours"):
        rooms.set_share_numbers(created.room.id, run_id, "browser:b", True)
    rooms.set_share_numbers(created.room.id, run_id, "browser:a", True)
    assert rooms.room_runs(created.room.id)[0].share_numbers is True


def test_bad_settings_are_refused_with_a_sentence(env):
    _, rooms, _ = env
    for settings, match in ((RoomSettings(presets=()), "at least one preset"),
                            (RoomSettings(presets=("nope",)), "no preset named"),
                            (RoomSettings(unlocked=("device",)), "not a control"),
                            (RoomSettings(quota=0), "runs per participant"),
                            (RoomSettings(corpus="server-file"), "corpus rule")):
        with pytest.raises(RoomError, match=match):
            rooms.create_room("x", settings)
    with pytest.raises(RoomError, match="name"):
        rooms.create_room("  ")
    with pytest.raises(RoomError, match="1, 3, 10 or 30"):
        rooms.create_room("x", challenge=Challenge("canary_safe", 7))


def test_rooms_survive_a_new_store_object(env, tmp_path):
    store, rooms, _ = env
    created = _room(rooms)
    again = RoomStore(RunStore(tmp_path / "data"), PRESET_CONFIGS)
    assert again.get_room(created.room.id) == created.room
    assert again.is_instructor(created.room.id, created.token)

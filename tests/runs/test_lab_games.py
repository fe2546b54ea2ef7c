"""The attack lab's games in the store (dpcore.runs.lab_games): a pool never deals a canary twice, nobody is
dealt a coin they have seen, a coin comes back only to the one who guessed, and games go with their run."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from dpcore.audit.lab import MAX_TRIES, ROUNDS, ExtractionTarget, LabCanaries, max_games, save_lab_canaries
from dpcore.runs.lab_games import LabExhausted, LabGames, NotYourGame, NotYourModel, lab_of, may_play, pool_of
from dpcore.runs.store import RunStore
from tests.apptest_support import TINY, write_run


@pytest.fixture
def setup(tmp_path):
    store = RunStore(tmp_path)
    run = write_run(store, "browser:owner", TINY.replace(audit=True))
    rng = np.random.default_rng(0)
    m = 100
    included = rng.random(m) < 0.5
    save_lab_canaries(store.run_dir(run.id), [f"c{i}" for i in range(m)], rng.normal(size=m), included)
    lab = lab_of(store, run)
    assert lab is not None and lab.m == m
    return store, run, lab


def test_a_game_deals_distinct_canaries_and_a_pool_never_deals_one_twice(setup):
    store, run, lab = setup
    games = LabGames(store)
    seen: set[int] = set()
    for _ in range(max_games(lab.m)):
        game = games.start(run.id, "browser:a", lab, prediction=0.7)
        assert len(set(game.canaries)) == ROUNDS and not seen & set(game.canaries)
        seen |= set(game.canaries)
    with pytest.raises(LabExhausted):
        games.start(run.id, "browser:a", lab)
    assert len(games.pool_games(run.id, pool_of("browser:a", None))) == max_games(lab.m)


def test_nobody_is_dealt_a_canary_they_or_their_room_have_seen(setup):
    store, run, lab = setup
    games = LabGames(store)
    solo = games.start(run.id, "browser:a", lab)
    in_room = games.start(run.id, "browser:a", lab, room="r1")
    other = games.start(run.id, "browser:b", lab, room="r1")
    assert not set(solo.canaries) & set(in_room.canaries)  # a's own coins never come back to a
    assert not set(other.canaries) & set(in_room.canaries)  # the room never deals one twice
    b_solo = games.start(run.id, "browser:b", lab)
    assert not set(b_solo.canaries) & set(other.canaries)
    assert [g.player for g in games.pool_games(run.id, pool_of("x", "r1"))] == ["browser:a", "browser:b"]


def test_a_coin_comes_back_only_to_its_guesser_after_the_guess(setup):
    store, run, lab = setup
    games = LabGames(store)
    game = games.start(run.id, "browser:a", lab)
    first, second = game.canaries[:2]
    with pytest.raises(NotYourGame):
        games.guess(game.id, "browser:b", first, True, lab)  # someone else's game
    outside = next(c for c in range(lab.m) if c not in game.canaries)
    with pytest.raises(NotYourGame):
        games.guess(game.id, "browser:a", outside, True, lab)  # a canary not dealt
    reveal = games.guess(game.id, "browser:a", first, True, lab)
    assert reveal.truth == lab.truth(first) and reveal.record.correct == lab.truth(first)
    with pytest.raises(NotYourGame, match="already"):
        games.guess(game.id, "browser:a", first, False, lab)  # no second try once the coin is known
    skip = games.guess(game.id, "browser:a", second, None, lab)
    assert skip.record.guess is None and not skip.record.correct
    now = games.current(run.id, "browser:a")
    assert now.next_canary == game.canaries[2] and now.made == 1 and now.correct == int(lab.truth(first))
    assert not now.finished


def test_two_room_members_starting_at_once_get_disjoint_canaries(setup):
    store, run, lab = setup
    dealt: list[tuple[int, ...]] = []
    barrier = threading.Barrier(4)

    def play(i: int) -> None:
        own = LabGames(RunStore(store.data_dir))
        barrier.wait()
        dealt.append(own.start(run.id, f"browser:p{i}", lab, room="r").canaries)

    threads = [threading.Thread(target=play, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    flat = [c for d in dealt for c in d]
    assert len(dealt) == 4 and len(flat) == len(set(flat))


def test_games_go_with_their_run_and_bad_input_is_refused(setup):
    store, run, lab = setup
    games = LabGames(store)
    with pytest.raises(Exception, match="between 0 and 1"):
        games.start(run.id, "browser:a", lab, prediction=1.5)
    games.start(run.id, "browser:a", lab)
    store.delete_run(run.id, "browser:owner")
    assert games.player_games("browser:a") == []


def test_only_finished_runs_with_a_lab_file_have_a_lab(setup, tmp_path):
    store, run, lab = setup
    plain = write_run(store, "browser:owner", TINY)
    running = write_run(store, "browser:owner", TINY, status="running")
    assert lab_of(store, plain) is None and lab_of(store, running) is None
    assert isinstance(lab_of(store, run), LabCanaries)


def _target(secret: str = "4 9 1 7") -> ExtractionTarget:
    return ExtractionTarget(canary_id="canary-00", prefix="Dana's PIN is ", secret=secret, insertions=10,
                            alphabet="0123456789", length=4, separator=" ", rank=3.0, exposure=11.7,
                            max_exposure=13.3, guesses=("1 1 1 1", "2 2 2 2", secret))


def test_the_extraction_game_shows_the_secret_only_once_it_is_found_or_given_up(setup):
    store, run, _ = setup
    games = LabGames(store)
    target = _target()
    assert games.extraction(run.id, "browser:a", target).secret is None
    with pytest.raises(Exception, match="4 symbols"):
        games.try_secret(run.id, "browser:a", target, "12")  # malformed: refused, not counted
    state = games.try_secret(run.id, "browser:a", target, "1111")
    assert state.attempts == ("1 1 1 1",) and state.secret is None and not state.over
    with pytest.raises(Exception, match="tried 1 1 1 1 already"):
        games.try_secret(run.id, "browser:a", target, "1 1 1 1")
    found = games.try_secret(run.id, "browser:a", target, "4-9-1-7")
    assert found.found and found.tries == 2 and found.secret == "4 9 1 7"
    assert games.try_secret(run.id, "browser:a", target, "0000").tries == 2  # over: nothing more is counted
    other = games.try_secret(run.id, "browser:b", target, None)  # someone else gives up: their own state
    assert other.gave_up and other.secret == "4 9 1 7" and other.tries == 0


def test_the_extraction_game_ends_after_the_last_try(setup):
    store, run, _ = setup
    games = LabGames(store)
    target = _target("9 9 9 9")
    for i in range(MAX_TRIES):
        state = games.try_secret(run.id, "browser:a", target, f"{i:04d}")
    assert state.over and not state.found and state.secret == "9 9 9 9" and state.tries == MAX_TRIES


def test_a_model_without_a_guarantee_trained_on_an_upload_is_attacked_by_its_owner_alone(tmp_path):
    store = RunStore(tmp_path)
    run = write_run(store, "browser:owner", TINY.replace(audit=True, corpus="/data/uploads/x/diary.txt",
                                                         mechanism="none"))
    rng = np.random.default_rng(1)
    save_lab_canaries(store.run_dir(run.id), [f"c{i}" for i in range(40)], rng.normal(size=40), rng.random(40) < 0.5)
    lab = lab_of(store, run)
    assert not may_play(run, "browser:stranger") and not may_play(run, None) and may_play(run, "browser:owner")
    with pytest.raises(NotYourModel):
        LabGames(store).start(run.id, "browser:stranger", lab)
    assert LabGames(store).start(run.id, "browser:owner", lab).canaries
    dp = write_run(store, "browser:owner", TINY.replace(audit=True, corpus="/data/uploads/x/diary.txt"))
    assert may_play(dp, "browser:stranger")  # a DP model's losses are post-processing, covered by its ε

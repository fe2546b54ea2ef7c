"""What a room shows of other people's runs, its frontier, sorting, the challenge and the class report."""

from __future__ import annotations

import pytest

from dpcore.config.presets import PRESETS
from dpcore.runs.rooms import Challenge, RoomRun, RoomSettings, RoomStore
from dpcore.runs.store import RunStore
from dpcore.views import roomview
from tests.apptest_support import TINY, write_run

A, B = "browser:a", "browser:b"


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "data")


def _entry(run, name, share=False):
    return RoomRun("r" * 16, run.id, run.owner, name, share, run.created_at)


def _upload_run(store, owner):
    upload = store.save_upload(owner, "diary-of-ada.txt", b"my secret diary line\n" * 100)
    return write_run(store, owner, TINY.replace(corpus=upload.path), epsilon=2.0, val_perplexity=7.0)


def test_another_participants_upload_run_shows_no_numbers_link_or_file_name(store):
    theirs = _upload_run(store, A)
    rows = roomview.room_rows([_entry(theirs, "Ada")], {theirs.id: theirs}, viewer=B)
    (row,) = rows
    assert row.hidden and row.epsilon is None and row.val_perplexity is None and row.run_id is None
    assert "diary" not in row.label and row.label == roomview.HIDDEN_LABEL
    assert not hasattr(row, "samples")
    # its owner sees their own numbers and link; the others see the numbers only once the owner opts in
    (own,) = roomview.room_rows([_entry(theirs, "Ada")], {theirs.id: theirs}, viewer=A)
    assert (own.epsilon, own.val_perplexity, own.run_id) == (2.0, 7.0, theirs.id)
    (shared,) = roomview.room_rows([_entry(theirs, "Ada", share=True)], {theirs.id: theirs}, viewer=B)
    assert (shared.epsilon, shared.val_perplexity) == (2.0, 7.0)
    assert shared.run_id is None and "diary" not in shared.label  # never the capability link or the file name


def test_the_class_report_never_carries_samples_or_unshared_upload_numbers(store):
    builtin = write_run(store, A, epsilon=3.0, val_perplexity=9.0)
    upload = _upload_run(store, B)
    runs = {builtin.id: builtin, upload.id: upload}
    rooms = RoomStore(store, {p.name: p.config for p in PRESETS})
    room = rooms.create_room("Class", RoomSettings(), Challenge("lowest_perplexity", 3.0)).room
    rows = roomview.room_rows([_entry(builtin, "Ada"), _entry(upload, "Bob")], runs, viewer=None)
    page = roomview.class_report_html(room, rows, {builtin.id: ["What is protected: one sequence."]})
    assert "hello there" not in page and "good day" not in page  # write_run's samples
    bob_row = page.split("<h2>All runs")[1].split("<td>Bob</td>")[1].split("</tr>")[0]
    assert upload.id not in page and "diary" not in page and "7" not in bob_row  # its perplexity is 7.0
    assert builtin.id in page and "Winner:</strong> Ada" in page and "What is protected" in page


def _row(name, eps, ppl, guarantee="dp", canaries=None, hidden=False):
    return roomview.RoomRow(name=name, label="x", status="finished", mechanism="gaussian", guarantee=guarantee,
                            epsilon=eps, val_perplexity=ppl, hidden=hidden, on_upload=False, mine=False,
                            run_id=None, canaries=canaries, finished=True)


def test_sorting_puts_missing_numbers_last_either_way():
    rows = [_row("a", 8.0, 5.0), _row("b", None, 3.0, guarantee="none"), _row("c", 1.0, 12.0)]
    assert [r.name for r in roomview.sort_rows(rows, "epsilon")] == ["c", "a", "b"]
    assert [r.name for r in roomview.sort_rows(rows, "epsilon", descending=True)] == ["a", "c", "b"]
    assert [r.name for r in roomview.sort_rows(rows, "val_perplexity")] == ["b", "a", "c"]
    table = roomview.rows_table(roomview.sort_rows(rows, "val_perplexity"))
    assert list(table["participant"]) == ["b", "a", "c"] and "k = 10 canary" in table


def test_the_frontier_keeps_only_points_nobody_beats():
    points = [{"epsilon": 1, "val_perplexity": 12}, {"epsilon": 2, "val_perplexity": 14},
              {"epsilon": 4, "val_perplexity": 8}, {"epsilon": 8, "val_perplexity": 8}]
    assert [p["epsilon"] for p in roomview.pareto(points)] == [1, 4]
    fig = roomview.frontier_scatter_figure([{**p, "name": "Ada", "label": "x"} for p in points])
    assert [t.name for t in fig.data] == ["Ada", "frontier"]


def test_the_challenges_pick_their_leader():
    rows = [_row("a", 2.5, 9.0), _row("b", 3.5, 6.0), _row("c", 1.0, 12.0), _row("d", 0.5, 4.0, hidden=True),
            _row("e", None, 3.0, guarantee="none")]
    result = roomview.evaluate_challenge(Challenge("lowest_perplexity", 3.0), rows)
    assert result.leader.name == "a" and [r.name for r in result.standings] == ["a", "c"]
    rows = [_row("a", 8.0, 5.0, canaries={10: True}), _row("b", 4.0, 6.0, canaries={10: False}),
            _row("c", 2.0, 7.0, canaries={10: False}), _row("d", 1.0, 9.0), _row("e", 0.5, 9.0, canaries={30: False})]
    result = roomview.evaluate_challenge(Challenge("canary_safe", 10), rows)
    assert result.leader.name == "c" and [r.name for r in result.standings] == ["c", "b"]
    assert roomview.evaluate_challenge(None, rows) is None


def test_a_canary_counts_as_extracted_within_ten_guesses():
    audit = {"exposure": [{"insertions": 10, "rank": 3.0}, {"insertions": 10, "rank": 4000.0},
                          {"insertions": 30, "rank": 11.0}]}
    assert roomview.canary_extraction(audit) == {10: True, 30: False}
    assert roomview.canary_extraction({"exposure": []}) is None and roomview.canary_extraction(None) is None

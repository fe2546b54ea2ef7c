"""Per person beside per sequence at the same ε: Compare's columns and the report's side-by-side table."""

from __future__ import annotations

import pytest

from dpcore.runs.store import RunStore
from dpcore.training.result import RunResult
from dpcore.views.runview import canary_exposure, results_table, unit_comparison
from tests.apptest_support import TINY, write_run


@pytest.fixture()
def store(tmp_path):
    return RunStore(tmp_path)


def test_canary_exposure_reads_the_audited_group():
    result = RunResult.from_dict({"audit": {"exposure_by_insertions": [{"insertions": 1, "mean_exposure": 1.234},
                                                                       {"insertions": 30, "mean_exposure": 9.876}]}})
    assert canary_exposure(result, 30) == 9.88 and canary_exposure(result, 1) == 1.23
    assert canary_exposure(result, 10) is None and canary_exposure(RunResult.empty(), 30) is None


def test_runs_at_the_same_epsilon_with_the_other_unit_are_put_side_by_side(store):
    person = write_run(store, "o", TINY.replace(unit="user", epsilon=3.0), val_perplexity=9.0)
    snippet = write_run(store, "o", TINY.replace(unit="sequence", epsilon=3.0), val_perplexity=7.0)
    other_eps = write_run(store, "o", TINY.replace(unit="sequence", epsilon=8.0))
    baseline = write_run(store, "o", TINY.replace(mechanism="none"))
    rows = unit_comparison(person, [person, snippet, other_eps, baseline], viewer="o")
    assert [r["protects"] for r in rows] == ["a person", "a sequence"]
    assert [r["val perplexity"] for r in rows] == [9.0, 7.0]
    assert "k = 30 canary exposure (bits)" in rows[0]
    assert unit_comparison(person, [person, other_eps], viewer="o") == []  # no counterpart at this ε
    assert unit_comparison(baseline, [person, snippet], viewer="o") == []  # no guarantee, no unit
    table = results_table([person, snippet, baseline], viewer="o")
    assert list(table["protects"]) == ["a person", "a sequence", "—"]
    assert list(table.columns[:5]) == ["label", "ε spent", "protects", "val perplexity",
                                       "k = 30 canary exposure (bits)"]


def test_the_samples_page_puts_epsilon_8_next_to_no_privacy_first(store):
    from dpcore.views.samplesview import side_by_side_first

    three = write_run(store, "o", TINY.replace(epsilon=3.0))
    eight = write_run(store, "o", TINY.replace(epsilon=8.0))
    none = write_run(store, "o", TINY.replace(mechanism="none"))
    newest_first = [none, eight, three][::-1]
    assert [r.id for r in side_by_side_first(newest_first)] == [eight.id, none.id, three.id]
    assert [r.id for r in side_by_side_first([three])] == [three.id]

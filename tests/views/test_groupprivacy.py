"""Group privacy: a per-sequence ε for someone with k sequences, next to the per-person guarantee."""

from __future__ import annotations

import math

import pytest

from dpcore.views.groupprivacy import group_delta, group_rows, group_summary, group_table


def test_group_bound_is_k_epsilon_and_k_exp_delta():
    rows = {r.k: r for r in group_rows(1.0, 1e-6, (1, 2, 10))}
    assert rows[1].sequence_epsilon == 1.0 and rows[1].sequence_delta == pytest.approx(1e-6)
    assert rows[2].sequence_epsilon == 2.0 and rows[2].sequence_delta == pytest.approx(2 * math.e * 1e-6)
    assert rows[10].sequence_delta == pytest.approx(10 * math.exp(9) * 1e-6)
    assert all(r.user_epsilon == 1.0 and r.user_delta == 1e-6 for r in rows.values())  # per person: unchanged


def test_the_bound_becomes_vacuous_and_never_overflows():
    assert group_delta(8.0, 1e-5, 30) == 1.0  # e^232 would overflow a float; the log form caps it
    rows = group_rows(3.0, 1e-5)
    assert [r.sequence_vacuous for r in rows] == [False, False, True, True, True]
    table = group_table(rows)
    assert table[-1]["per-sequence run (group privacy)"] == "no promise left (δ ≥ 1)"
    assert "from 5 sequences on there is no promise left" in group_summary(3.0, 1e-5)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        group_rows(0.0, 1e-5)
    with pytest.raises(ValueError):
        group_rows(1.0, 1.0)

"""The monitor's shared ticker (pages.ui.live): one store read per tick for every tab watching a run,
what is drawn from a tick built once, and a page run that reads at once."""

from __future__ import annotations

from pages.ui.live import RunTicker
from tests.apptest_support import write_run


def test_tabs_watching_a_run_share_one_read_per_tick_and_what_is_drawn_from_it(tmp_path):
    from dpcore.runs.store import RunStore

    store = RunStore(tmp_path)
    run = write_run(store, "browser:a", status="running", steps=4)
    ticker = RunTicker(store, min_interval_s=0.5)
    first = ticker.read(run.id, now=100.0)
    for i in range(29):  # 29 more tabs within the same tick: no store read
        assert ticker.read(run.id, now=100.0 + i / 100) is first
    assert ticker.reads == 1 and [m["step"] for m in first.metrics] == [1, 2, 3, 4]
    built = []
    for _ in range(30):
        ticker.derived(first, ("viewer kind",), lambda: built.append(1) or "figures")
    assert built == [1]  # built once for all thirty
    store.add_metrics(run.id, [{"step": 5, "train_loss": 0.5}])
    assert ticker.read(run.id, now=100.2) is first  # still within the tick
    assert [m["step"] for m in ticker.read(run.id, max_age_s=0.0, now=100.2).metrics][-1] == 5  # a page run reads now
    later = ticker.read(run.id, now=101.0)
    assert later.version != first.version and ticker.reads == 3  # only new rows were read
    assert ticker.derived(later, ("viewer kind",), lambda: "new figures") == "new figures"


def test_the_executors_poll_runs_once_per_interval_for_all_tabs(tmp_path):
    from dpcore.runs.store import RunStore

    ticker = RunTicker(RunStore(tmp_path))
    calls = []
    for i in range(30):
        ticker.throttled("poll", 0.5, lambda: calls.append(1), now=10.0 + i / 100)
    assert calls == [1]
    assert ticker.throttled("poll", 0.5, lambda: calls.append(1), now=10.6) and calls == [1, 1]

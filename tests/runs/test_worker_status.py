"""Work before the first step (building the public model) is shown as the run's status line."""

from __future__ import annotations

import os

from dpcore.runs.lifecycle import StoreCallbacks
from dpcore.runs.store import RunStore
from dpcore.views.runview import progress
from tests.apptest_support import TINY


def test_a_status_before_the_first_step_reaches_the_progress_line(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.create_run("o", TINY.to_dict())
    with store.transaction() as conn:
        store.claim_run(conn, run_id, host="test-host", pid=os.getpid(), pid_ident=None)
    assert progress(store.get_run(run_id), []).text.startswith("Starting:")
    StoreCallbacks(store, run_id).on_status("Building the public model (once, a few minutes)…")
    assert progress(store.get_run(run_id), []).text == "Building the public model (once, a few minutes)…"

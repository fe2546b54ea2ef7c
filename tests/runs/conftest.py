"""Fixtures shared by the executor tests (modules that need a plain store define their own ``store``)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from dpcore.runs.executors.local import process_alive
from dpcore.runs.store import RunStore


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DPCORE_HEARTBEAT_S", "0.5")
    store = RunStore(tmp_path / "data")
    yield store
    for run in store.list_runs(status="running"):  # never leave a worker behind
        if process_alive(run.pid, run.pid_ident):
            os.killpg(run.pid, signal.SIGKILL)

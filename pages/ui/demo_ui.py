"""The instant demo in the dashboard: load the shipped gallery, start the preparation of what it lacks
in the background, once, and say whether it is under way.

A fresh server's first script run loads the gallery snapshot shipped in ``assets/gallery``
(:mod:`dpcore.runs.gallery_snapshot`, well under a second), so Home shows the whole gallery on the
first visit without training anything; ``DPCORE_DEMO_SNAPSHOT`` names another snapshot folder, or
``off``. What the snapshot does not hold (a run whose preset changed since ``make gallery``) is left
to the preparation below.

``make app`` sets ``DPCORE_DEMO_AUTOPREPARE=1``: the first script run of a fresh server then starts
``python -m dpcore demo prepare`` as a detached process when the gallery is missing (the command's own
lock makes a second start a no-op), and Home shows its progress from the run store. Without the
variable (tests, a plain ``streamlit run``) nothing starts on its own; Home offers a button.

Why :func:`preparing` looks at the process too: the command takes the preparation lock only once its
interpreter is up (a second or more), and Home's first script run comes right after the start. Asked
the lock alone, that run would see no preparation, say the gallery "has not been prepared", and never
look again (a live view polls only while something is under way).
"""

from __future__ import annotations

import subprocess
import sys
import threading

import streamlit as st

from dpcore.errors import DPCoreError
from dpcore.runs import gallery as demo
from dpcore.runs import gallery_snapshot
from pages.ui import session


@st.cache_resource(show_spinner=False)
def _started() -> tuple[list[subprocess.Popen[bytes]], threading.Lock]:
    """The preparations this server process started (shared by every session)."""
    return [], threading.Lock()


def _reap(proc: subprocess.Popen[bytes]) -> None:
    threading.Thread(target=proc.wait, name="demo-prepare-reaper", daemon=True).start()


def start() -> bool:
    """Start the preparation now (the Home button); False when there is nothing to start."""
    try:
        proc = demo.start_background(session.store())
    except (DPCoreError, OSError):
        return False
    if proc is None:
        return False
    procs, lock = _started()
    with lock:
        procs[:] = [p for p in procs if p.poll() is None] + [proc]
    _reap(proc)  # no zombie when it ends
    return True


def started_running() -> bool:
    """Is a preparation this server started still running (whether or not it holds the lock yet)?"""
    procs, lock = _started()
    with lock:
        return any(p.poll() is None for p in procs)


def preparing(state: demo.GalleryState) -> bool:
    """Is the gallery being prepared: some process holds the lock, or one this server started is starting?"""
    return not state.complete and (state.preparing or started_running())


@st.cache_resource(show_spinner=False)
def _autoprepared() -> bool:
    return start()


@st.cache_resource(show_spinner=False)
def _snapshot_loaded() -> gallery_snapshot.Imported | None:
    """Load the gallery snapshot into the store, once per server process (None: off, or it failed)."""
    folder = gallery_snapshot.snapshot_folder()
    if folder is None:
        return None
    try:
        return gallery_snapshot.import_snapshot(session.store(), folder)
    except (DPCoreError, OSError) as err:  # a missing or broken snapshot: the gallery can still be prepared
        print(f"dp-rnn-lab: the gallery snapshot {folder} was not loaded: {err}", file=sys.stderr)
        return None


def first_start() -> None:
    """Once per server process: load the shipped gallery; then, with ``DPCORE_DEMO_AUTOPREPARE=1``, prepare
    what is still missing in the background."""
    _snapshot_loaded()
    autoprepare()


def autoprepare() -> None:
    """With ``DPCORE_DEMO_AUTOPREPARE=1``: prepare a missing gallery in the background, once per server process."""
    if demo.autoprepare_enabled():
        _autoprepared()

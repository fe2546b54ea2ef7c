"""The instant demo in the dashboard: start the gallery's preparation in the background, once, and say
whether it is under way.

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
import threading

import streamlit as st

from dpcore.errors import DPCoreError
from dpcore.runs import gallery as demo
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


def autoprepare() -> None:
    """With ``DPCORE_DEMO_AUTOPREPARE=1``: prepare a missing gallery in the background, once per server process."""
    if demo.autoprepare_enabled():
        _autoprepared()

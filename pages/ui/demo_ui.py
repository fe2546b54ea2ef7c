"""The instant demo in the dashboard: start the gallery's preparation in the background, once.

``make app`` sets ``DPCORE_DEMO_AUTOPREPARE=1``: the first script run of a fresh server then starts
``python -m dpcore demo prepare`` as a detached process when the gallery is missing (the command's own
lock makes a second start a no-op), and Home shows its progress from the run store. Without the
variable (tests, a plain ``streamlit run``) nothing starts on its own; Home offers a button.
"""

from __future__ import annotations

import subprocess
import threading

import streamlit as st

from dpcore import demo
from dpcore.errors import DPCoreError
from pages.ui import session


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
    _reap(proc)  # no zombie when it ends
    return True


@st.cache_resource(show_spinner=False)
def _autoprepared() -> bool:
    return start()


def autoprepare() -> None:
    """With ``DPCORE_DEMO_AUTOPREPARE=1``: prepare a missing gallery in the background, once per server process."""
    if demo.autoprepare_enabled():
        _autoprepared()

"""DP-RNN Lab dashboard: the router, Streamlit's main script (``app.py`` launches it; see there why here).

Every script run starts here: the page config, the identity cookie, the shared handles and the
sidebar, then ``st.navigation`` over :data:`pages.ui.routes.PAGES` runs the page. Pages are thin: they
read widgets, call :mod:`dpcore`, and draw. Runs train in worker processes started by the executor,
never in this process; pages only read the run store.
"""

from pathlib import Path

import streamlit as st

from dpcore.config.presets import workshop_presets
from dpcore.errors import DPCoreError
from dpcore.runs.preview import warm
from pages.ui import data_controls, demo_ui, present, room_ui, routes, session

#: The browser tab's icon, from this app (sent inline): a ``:material/…:`` icon here, or a page's icon
#: standing in for it, makes the browser fetch the picture from Google's font host.
FAVICON = Path(__file__).resolve().parents[1] / "assets" / "favicon.svg"

st.set_page_config(page_title="DP-RNN Lab", page_icon=str(FAVICON), layout="wide")
session.ensure_cookie()
try:
    session.store()
except DPCoreError as err:  # e.g. an unwritable DPCORE_DATA_DIR: say so instead of a traceback
    st.error(f"The run store cannot be opened: {err}. Set DPCORE_DATA_DIR to a writable local folder and restart.")
    st.stop()
try:
    session.executor()
except DPCoreError as err:  # e.g. DPCORE_EXECUTOR=ray with an unreachable RAY_ADDRESS
    st.error(f"Runs cannot be started: {err}.")
    st.stop()
warm([p.config for p in workshop_presets()])  # once per process: the presets' previews are ready on arrival
demo_ui.first_start()  # once per process: the shipped gallery; with DPCORE_DEMO_AUTOPREPARE=1 (make app), what it lacks

sections: dict[str, list] = {}
for spec in routes.PAGES:
    sections.setdefault(spec.section, []).append(st.Page(spec.path, title=spec.title, icon=spec.icon,
                                                         default=spec.default))
page = st.navigation(sections)
with st.sidebar:
    st.caption(
        "Runs train in background processes: closing this tab does not stop them. Your runs are tied to "
        "this browser; share a run with its link."
    )
    st.caption(f"Runs train on: {session.executor_label()}.")
    present.toggle()
    data_controls.forget_controls()
present.apply()
room_ui.nudge_banner()  # participants of an open room: the instructor's latest nudge, on every page
page.run()

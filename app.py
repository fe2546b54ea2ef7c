"""DP-RNN Lab dashboard: the router. ``streamlit run app.py`` (or ``make app``).

Pages are thin: they read widgets, call :mod:`dpcore`, and draw. Runs train in worker processes
started by the executor, never in this process; pages only read the run store.
"""

import streamlit as st

from dpcore.errors import DPCoreError
from dpcore.views.presets import workshop_presets
from dpcore.views.preview import warm
from pages.ui import session

st.set_page_config(page_title="DP-RNN Lab", page_icon=":material/lock:", layout="wide")
session.ensure_cookie()
try:
    session.store()
except DPCoreError as err:  # e.g. an unwritable DPCORE_DATA_DIR: say so instead of a traceback
    st.error(f"The run store cannot be opened: {err}. Set DPCORE_DATA_DIR to a writable local folder and restart.")
    st.stop()
warm([p.config for p in workshop_presets()])  # once per process: the presets' previews are ready on arrival

# Page URLs are the file names (/new_run, /monitor, ...): on a fresh server Streamlit resolves the first
# request against the pages/ folder before st.navigation has run, and a custom url_path would show
# "Page not found" to the first visitor of a shared link.
pages = {
    "": [st.Page("pages/home.py", title="Home", icon=":material/home:", default=True)],
    "Train": [
        st.Page("pages/new_run.py", title="New run", icon=":material/tune:"),
        st.Page("pages/monitor.py", title="Run monitor", icon=":material/monitoring:"),
    ],
    "Understand": [
        st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
        st.Page("pages/samples.py", title="Samples", icon=":material/text_snippet:"),
        st.Page("pages/report.py", title="Run report", icon=":material/description:"),
        st.Page("pages/mechanisms.py", title="Mechanisms", icon=":material/science:"),
    ],
}
page = st.navigation(pages)
with st.sidebar:
    st.caption(
        "Runs train in background processes: closing this tab does not stop them. Your runs are tied to "
        "this browser; share a run with its link."
    )
page.run()

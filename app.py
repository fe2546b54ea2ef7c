"""DP-RNN Lab dashboard: ``streamlit run app.py`` (or ``make app``, or ``python app.py``).

This file only launches the dashboard; the router (``st.navigation`` over the page table) is
``pages/router.py``. Why the two files: Streamlit treats a folder named ``pages/`` next to the main
script as its legacy multipage navigation, which a fresh server applies to its first visit (a list
of the folder's files in the sidebar, and "Page not found" for a shared deep link such as
``/new_run``). ``pages/`` stays the dashboard's top-level folder, so the main script lives inside it,
where no ``pages/`` folder sits next to it: Streamlit never enters legacy mode. ``st.App`` is
Streamlit's public launcher for exactly that (``streamlit run`` finds it in this file).
"""

from pathlib import Path

import streamlit as st

ROUTER = Path(__file__).resolve().parent / "pages" / "router.py"

app = st.App(ROUTER)

if __name__ == "__main__":
    app.run()

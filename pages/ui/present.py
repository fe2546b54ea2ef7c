"""Presentation mode: large type and charts, no technical controls, for a projector.

On with the sidebar's toggle or a link with ``?present=1`` (a room's projector view). Pages ask
:func:`active` to draw bigger figures and to leave out forms, tables and settings.
"""

from __future__ import annotations

import streamlit as st

KEY = "present"
_CSS = """<style>
[data-testid="stMain"] p, [data-testid="stMain"] li { font-size: 1.45rem; line-height: 1.45; }
[data-testid="stMain"] h1 { font-size: 3.4rem; }
[data-testid="stMain"] h2, [data-testid="stMain"] h3 { font-size: 2.3rem; }
[data-testid="stMain"] [data-testid="stCaptionContainer"] { font-size: 1.15rem; }
[data-testid="stMain"] code { font-size: 1.3rem; }
</style>"""


def active() -> bool:
    """Is this session in presentation mode (the toggle, or ``?present=1`` in the address)?"""
    if KEY not in st.session_state and st.query_params.get(KEY) == "1":
        st.session_state[KEY] = True
    return bool(st.session_state.get(KEY))


def toggle() -> None:
    """The sidebar switch."""
    active()
    st.toggle("Presentation mode", key=KEY,
              help="Large charts and type, without the technical controls: for a projector.")


def apply() -> None:
    """Enlarge the type of the page (call once per run, before the page draws)."""
    if active():
        st.html(_CSS)

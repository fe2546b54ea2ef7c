"""Small drawing helpers used by several pages (badges, run pickers, notices)."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from dpcore.privacy.registry import Guarantee, mechanism_of
from dpcore.runs.store import Run
from dpcore.views.meaning import GUARANTEE_WHY, mechanism_label, run_label
from dpcore.views.runview import STATUS_LABELS
from pages.ui import routes

MONITOR_PAGE = routes.MONITOR.path
NEW_RUN_PAGE = routes.NEW_RUN.path
COMPARE_PAGE = routes.COMPARE.path
SAMPLES_PAGE = routes.SAMPLES.path
REPORT_PAGE = routes.REPORT.path
MECHANISMS_PAGE = routes.MECHANISMS.path

#: Every chart of the dashboard: no floating Plotly toolbar (it covers titles on small screens).
CHART_CONFIG = {"displayModeBar": False}

#: A badge's colour and icon by what the mechanism promises (every registered mechanism has a guarantee).
_BADGES = {Guarantee.DP: ("green", ":material/lock:"), Guarantee.NO_GUARANTEE: ("red", ":material/warning:"),
           Guarantee.NONE: ("gray", ":material/lock_open:")}


def privacy_badge(mechanism: str) -> None:
    """A coloured label that says at a glance whether a run is private."""
    color, icon = _BADGES[mechanism_of(mechanism).guarantee]
    st.badge(mechanism_label(mechanism), icon=icon, color=color)


def not_dp_notice(mechanism: str) -> None:
    """The label every non-DP run carries on screen, with the one sentence why."""
    guarantee = mechanism_of(mechanism).guarantee
    if guarantee is Guarantee.NONE:
        st.info(f"**No privacy (baseline).** {GUARANTEE_WHY[guarantee]}", icon=":material/lock_open:")
    elif guarantee is Guarantee.NO_GUARANTEE:
        st.error(f"**No privacy guarantee.** {GUARANTEE_WHY[guarantee]}", icon=":material/warning:")


def status_text(run: Run) -> str:
    return STATUS_LABELS.get(run.status, run.status)


def _pick_to_url(key: str) -> None:
    st.query_params["run"] = st.session_state[key]


def run_picker(runs: Sequence[Run], *, key: str, label: str = "Run", current: str | None = None) -> Run | None:
    """A selectbox over runs ("ε=3 Gaussian · 1a2b3c — finished") kept in step with ``?run=``.

    The URL is the source of truth (a reload or a shared link reopens the same run): the URL's run
    is put into the widget before it is drawn, and picking another run writes the URL.
    """
    if not runs:
        return None
    ids = [r.id for r in runs]
    by_id = {r.id: r for r in runs}
    st.session_state[key] = current if current in by_id else ids[0]
    chosen = st.selectbox(label, ids, key=key, on_change=_pick_to_url, args=(key,),
                          format_func=lambda i: f"{run_label(by_id[i])} — {by_id[i].status}")
    if st.query_params.get("run") != chosen:
        st.query_params["run"] = chosen
    return by_id.get(chosen)


def no_runs_yet() -> None:
    st.info("No runs yet in this browser. Start one from **New run** (a workshop preset takes under a minute).")
    st.page_link(NEW_RUN_PAGE, label="Configure a run", icon=":material/tune:")


def share_caption(page_path: str, run_id: str) -> None:
    """The run's shareable address: anyone with it can view the run read-only."""
    base = (st.context.url or "").split("?")[0].rstrip("/")
    if base.rsplit("/", 1)[-1] in routes.URL_PATHS:  # the app's root, also when served under a base path
        base = base.rsplit("/", 1)[0]
    st.caption(f"Share (view-only, no account needed): `{base}/{page_path}?run={run_id}`")


def run_from_link(session_module, key: str) -> Run:
    """The run named by ``?run=`` (remembered for this visitor) or picked; stops the page if none."""
    wanted = st.query_params.get("run")
    if wanted and session_module.find_run(wanted) is None:
        st.error("There is no run with the id in this link. It may be mistyped, or it was made on another server.")
        wanted = None
    if wanted:
        session_module.remember(wanted)
    run = run_picker(session_module.my_runs(), key=key, current=wanted)
    if run is None:
        no_runs_yet()
        st.stop()
    return run


def remember_linked_runs(session_module) -> list[str]:
    """The run ids of ``?runs=a,b`` (a shared comparison), remembered for this visitor when they exist."""
    linked = [r for r in st.query_params.get("runs", "").split(",") if r]
    for run_id in linked:
        if session_module.find_run(run_id) is not None:
            session_module.remember(run_id)
    return linked


def multi_run_picker(runs: Sequence[Run], linked: Sequence[str], *, key: str, default_count: int,
                     placeholder: str = "Choose runs", max_selections: int | None = None,
                     with_status: bool = True) -> list[Run]:
    """A multiselect over ``runs`` kept in step with ``?runs=``: a link chooses, picking rewrites the link.

    A shared link's runs are loaded once (and again only when the address changes under the page);
    without one the ``default_count`` newest runs are picked.
    """
    by_id = {r.id: r for r in runs}
    written = f"_{key}_written"
    if key not in st.session_state or linked and list(linked) != st.session_state.get(written):
        st.session_state[key] = [r for r in linked if r in by_id] or [r.id for r in runs[:default_count]]
    st.session_state[key] = [r for r in st.session_state[key] if r in by_id]
    chosen = st.multiselect("Runs", list(by_id), key=key, placeholder=placeholder, max_selections=max_selections,
                            format_func=lambda i: run_label(by_id[i]) + (f" — {by_id[i].status}" if with_status
                                                                         else ""))
    st.session_state[written] = chosen
    if st.query_params.get("runs", "") != ",".join(chosen):
        st.query_params["runs"] = ",".join(chosen)
    return [by_id[i] for i in chosen]

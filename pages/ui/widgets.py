"""Small drawing helpers used by several pages (badges, run pickers, notices)."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from dpcore.runs.store import Run
from dpcore.views.meaning import NAIVE_WHY, NONE_WHY, mechanism_label, run_label
from dpcore.views.runview import STATUS_LABELS

MONITOR_PAGE = "pages/monitor.py"
NEW_RUN_PAGE = "pages/new_run.py"
COMPARE_PAGE = "pages/compare.py"
SAMPLES_PAGE = "pages/samples.py"
REPORT_PAGE = "pages/report.py"
MECHANISMS_PAGE = "pages/mechanisms.py"

_PAGE_PATHS = {"new_run", "monitor", "compare", "samples", "report", "mechanisms"}
_BADGE_COLORS = {"gaussian": "green", "laplace": "green", "naive": "red", "none": "gray"}


def privacy_badge(mechanism: str) -> None:
    """A coloured label that says at a glance whether a run is private."""
    icon = {"gaussian": ":material/lock:", "laplace": ":material/lock:", "naive": ":material/warning:",
            "none": ":material/lock_open:"}.get(mechanism)
    st.badge(mechanism_label(mechanism), icon=icon, color=_BADGE_COLORS.get(mechanism, "gray"))


def not_dp_notice(mechanism: str) -> None:
    """The label every non-DP run carries on screen, with the one sentence why."""
    if mechanism == "none":
        st.info(f"**No privacy (baseline).** {NONE_WHY}", icon=":material/lock_open:")
    elif mechanism == "naive":
        st.error(f"**No privacy guarantee.** {NAIVE_WHY}", icon=":material/warning:")


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
    if base.rsplit("/", 1)[-1] in _PAGE_PATHS:  # the app's root, also when served under a base path
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

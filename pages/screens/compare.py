"""Compare: overlaid curves, the privacy–utility frontier, a results table and a CSV of every step.

The selection lives in the URL (``?runs=a,b,c``) so a comparison can be shared like a run. A sweep
launched from New run (or ``python -m dpcore runs sweep``) opens here with ``&sweep=<id>``: a line says
how many of its runs have finished while the frontier fills in.
"""

import streamlit as st

from dpcore.errors import DPCoreError
from dpcore.runs.sweeps import load_sweep
from dpcore.views import charts
from dpcore.views.auditview import audit_points
from dpcore.views.disclosure import may_show_uncovered, visible_metrics
from dpcore.views.meaning import run_label
from dpcore.views.runview import frontier, metrics_csv, results_table
from pages.ui import session
from pages.ui.widgets import CHART_CONFIG, multi_run_picker, no_runs_yet, remember_linked_runs

POLL_S = 2.0
store = session.store()
session.executor().poll()

st.title("Compare runs")
st.caption("Pick runs to see what each ε costs in model quality. Runs still training update as they go.")

linked = remember_linked_runs(session)
runs = session.my_runs()
if not runs:
    no_runs_yet()
    st.stop()
by_id = {r.id: r for r in runs}
selected_ids = [r.id for r in multi_run_picker(runs, linked, key="cmp_runs", default_count=4,
                                               placeholder="Choose runs to compare")]
if not selected_ids:
    st.info("Choose at least one run above.")
    st.stop()

any_active = any(not by_id[i].is_terminal for i in selected_ids)
try:
    sweep = load_sweep(store, st.query_params["sweep"]) if st.query_params.get("sweep") else None
except DPCoreError:
    sweep = None  # a link from another server, or a sweep whose runs were deleted: the runs still compare


@st.fragment(run_every=POLL_S if any_active else None)
def comparison() -> None:
    selected = [store.get_run(i) for i in selected_ids]
    viewer = session.owner()
    if sweep is not None:
        members = [r for r in selected if r.id in sweep.run_ids]
        ended = sum(r.is_terminal for r in members)
        st.caption(f"Sweep {sweep.id}: {ended} of {len(members)} runs ended"
                   + ("." if ended == len(members) else "; each point joins the frontier as its run finishes."))
    shown = {r.id: may_show_uncovered(r, viewer=viewer) for r in selected}  # what ε does not cover
    series = [(run_label(r), visible_metrics(store.metrics(r.id), shown[r.id])) for r in selected]
    eval_series = [(run_label(r), store.evals(r.id)) for r in selected if shown[r.id]]
    row = st.columns(2)
    with row[0]:
        st.plotly_chart(charts.overlay_figure(series, "train_loss", title="Training loss", ytitle="loss"),
                        key="cmp_loss", config=CHART_CONFIG)
    with row[1]:
        st.plotly_chart(charts.overlay_figure(eval_series, "val_perplexity", title="Validation perplexity",
                                              ytitle="perplexity"), key="cmp_ppl", config=CHART_CONFIG)
    row = st.columns(2)
    with row[0]:
        st.plotly_chart(charts.overlay_figure(series, "epsilon", title="ε spent", ytitle="ε"), key="cmp_eps",
                        config=CHART_CONFIG)
        st.caption("Runs without a privacy guarantee have no ε and draw no line here.")
    with row[1]:
        points, baselines = frontier(selected, viewer=viewer)
        st.plotly_chart(charts.frontier_figure(points, baselines), key="cmp_frontier",
                        config=CHART_CONFIG)
        if not points:
            st.caption("The frontier fills in as private runs finish; finished non-private runs are the dashed "
                       "reference line.")
    audited = audit_points(store, [r for r in selected if r.is_terminal])
    if audited:
        st.subheader("Privacy audits")
        row = st.columns(2)
        row[0].plotly_chart(charts.audit_scatter_figure(audited, "mean_exposure", title="Canary exposure (k ≥ 10)",
                                                        ytitle="mean exposure (bits)"),
                            key="cmp_aud_exposure", config=CHART_CONFIG)
        row[1].plotly_chart(charts.audit_scatter_figure(audited, "auc", title="Membership inference AUC",
                                                        ytitle="AUC (0.5 = guessing)"),
                            key="cmp_aud_auc", config=CHART_CONFIG)
        st.caption("Runs without a privacy guarantee sit at the right, marked “∞ / none”. Lower is better on both.")
    st.subheader("Configurations and results")
    if not all(shown.values()):
        st.caption("Runs trained on someone else's uploaded text show only what ε covers: their training loss and "
                   "validation perplexity are not shared.")
    st.dataframe(results_table(selected, viewer=viewer), hide_index=True, key="cmp_table", placeholder="—",
                 column_config={"ε spent": st.column_config.NumberColumn(format="%.3f"),
                                "val perplexity": st.column_config.NumberColumn(format="%.2f"),
                                "σ": st.column_config.NumberColumn(format="%.3f"),
                                "δ": st.column_config.NumberColumn(format="%.1e")})
    if all(r.is_terminal for r in selected) and any_active:
        st.rerun()


comparison()
st.download_button(
    "Download every step as CSV", data=lambda: metrics_csv(store, [store.get_run(i) for i in selected_ids]),
    help="A file can travel: for runs on uploaded text it holds only what ε covers, unless the run's owner chose to "
         "share more on its Run report.",
    file_name="dp-rnn-lab-metrics.csv", mime="text/csv", icon=":material/download:", on_click="ignore",
    key="cmp_csv",
)

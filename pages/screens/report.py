"""Run report: the privacy statement in plain sentences, the charts, and a report to download."""

from pathlib import Path

import streamlit as st

from dpcore.views import charts
from dpcore.views.auditview import empirical_epsilon, exposure_groups, how_to_audit, load_audit, roc_curves
from dpcore.views.disclosure import UNCOVERED_LABEL, is_builtin, may_show_samples, may_show_uncovered
from dpcore.views.meaning import run_label
from dpcore.views.report import html_report, markdown_report, privacy_statement, run_figures, summary_rows
from dpcore.views.runview import unit_comparison
from pages.ui import session
from pages.ui.widgets import CHART_CONFIG, privacy_badge, run_from_link, share_caption

store = session.store()
session.executor().poll()

st.title("Run report")
run = run_from_link(session, key="rep_pick")

metrics, evals, samples = store.metrics(run.id), store.evals(run.id), store.samples(run.id)
st.subheader(run_label(run))
privacy_badge(str(run.config.get("mechanism")))
share_caption("report", run.id)
if not run.is_terminal:
    st.info("This run is still training: the statement describes it so far. Reload when it has finished.")

st.markdown("### Privacy statement")
latest_eps = next((m["epsilon"] for m in reversed(metrics) if m.get("epsilon") is not None), None)
st.markdown("\n".join(f"- {s}" for s in privacy_statement(run, latest_epsilon=latest_eps)))

show_uncovered = may_show_uncovered(run, viewer=session.owner())
if session.is_owner(run) and not is_builtin(run.config):
    shared = st.toggle(
        "Share statistics that ε does not cover", value=bool(run.share_uncovered), key="rep_share_uncovered",
        help=f"Training loss, validation perplexity and clipping statistics are {UNCOVERED_LABEL}. By default "
             "people with this run's link and every downloaded report leave them out; tick this to include them. "
             "Samples of a model without a guarantee stay yours whatever this says: they can quote your text.",
    )
    if shared != bool(run.share_uncovered):
        store.set_share_uncovered(run.id, session.owner(), shared)
        st.rerun()

downloads = st.columns(3)
downloads[0].download_button(
    "Download report (HTML, with charts)",
    data=lambda: html_report(run, metrics, evals, samples, viewer=session.owner()),
    file_name=f"dp-rnn-lab-{run.id}.html", mime="text/html", icon=":material/download:", on_click="ignore",
    key="rep_html", type="primary",
)
downloads[1].download_button(
    "Download report (Markdown)", data=lambda: markdown_report(run, samples, viewer=session.owner()),
    file_name=f"dp-rnn-lab-{run.id}.md",
    mime="text/markdown", icon=":material/download:", on_click="ignore", key="rep_md",
)
checkpoint = store.artifacts(run.id).get("checkpoint")
if checkpoint and session.is_owner(run):  # weights of a non-private run can hold its owner's text
    downloads[2].download_button(
        "Download checkpoint (model.pt)", data=lambda: Path(checkpoint).read_bytes(),
        file_name=f"dp-rnn-lab-{run.id}.pt", mime="application/octet-stream", icon=":material/download:",
        on_click="ignore", key="rep_ckpt", help="Loads with `python -m dpcore generate --checkpoint model.pt`.",
    )

st.markdown("### Curves")
figures = run_figures(run, metrics, evals, show_uncovered=show_uncovered)
for start in range(0, len(figures), 2):
    row = st.columns(2)
    for col, (i, fig) in zip(row, enumerate(figures[start:start + 2], start)):
        col.plotly_chart(fig, key=f"rep_fig_{i}", config=CHART_CONFIG)

st.markdown("### Privacy audit")
audit = load_audit(store, run) if run.is_terminal else None
if audit is None:
    if run.is_terminal:
        st.info(how_to_audit(checkpoint if session.is_owner(run) else None), icon=":material/policy:")
    else:
        st.caption("An audit, if this run asked for one, appears here after training.")
else:
    from dpcore.views.auditview import bug_alarm, no_bound_reason, plain_lines  # this section's helpers

    alarm = bug_alarm(audit)
    if alarm:
        st.error(alarm, icon=":material/report:")
    lines = plain_lines(audit)
    if lines:
        st.markdown("\n".join(f"- {s}" for s in lines))
    row = st.columns(2)
    groups = exposure_groups(audit)
    if groups:
        row[0].plotly_chart(charts.exposure_figure(groups), key="rep_aud_exposure", config=CHART_CONFIG)
    elif audit.get("exposure_note"):
        row[0].caption(audit["exposure_note"])
    curves = roc_curves(audit)
    if curves:
        row[1].plotly_chart(charts.roc_figure(curves), key="rep_aud_roc", config=CHART_CONFIG)
        row[1].caption("User-level membership inference: members and non-members are windows of different users, "
                       "so it shows leakage about users; no ε is derived from it.")
    emp = empirical_epsilon(audit)
    if emp is not None or audit.get("claimed_epsilon") is not None:
        st.plotly_chart(charts.epsilon_bounds_figure(audit.get("claimed_epsilon"), emp), key="rep_aud_eps",
                        config=CHART_CONFIG)
    reason = no_bound_reason(audit)
    if reason:
        st.caption(reason)
    if audit.get("caveat"):
        st.caption(audit["caveat"])

side_by_side = unit_comparison(run, session.my_runs(), viewer=session.owner())
if side_by_side:
    st.markdown("### Per person or per sequence, at the same ε")
    st.caption("Your finished runs at this ε with the other privacy unit. A canary planted k times was written by "
               "one person k times: per sequence it is protected only as a group of k, per person as one.")
    st.dataframe(side_by_side, hide_index=True, key="rep_units")

st.markdown("### Configuration and results")
rows = summary_rows(run, show_uncovered=show_uncovered, viewer=session.owner())
st.table({"": [k for k, _ in rows], "value": [v for _, v in rows]})

final = [s for s in samples if s["kind"] == "final"] if may_show_samples(run, viewer=session.owner()) else []
if final:
    st.markdown("### Samples from the final model")
    for s in final:
        st.code(s["text"] or "(empty)", language=None, wrap_lines=True)

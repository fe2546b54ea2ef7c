"""Run monitor: live curves, progress, clipping, samples and cancel for one run (``?run=<id>``).

While the run is active a fragment re-reads the store every second (one consistent snapshot of
the new steps) and redraws only itself: everything that changes while the run trains is drawn
inside it, from that one snapshot; when the run ends it reruns the page once, which stops the
polling. Nothing is trained here: the worker process writes, this page reads.
"""

import streamlit as st

from dpcore.runs.preview import predicted_curve
from dpcore.runs.store import Run, RunSnapshot
from dpcore.views import charts
from dpcore.views.disclosure import (
    UNCOVERED_LABEL,
    may_show_samples,
    may_show_uncovered,
    visible_error,
    visible_metrics,
)
from dpcore.views.meaning import epsilon_sentence, guarantee_of, run_epsilon, run_label, unit_of
from dpcore.views.runview import baseline_perplexity, progress
from pages.ui import session
from pages.ui.widgets import (
    CHART_CONFIG,
    COMPARE_PAGE,
    REPORT_PAGE,
    SAMPLES_PAGE,
    not_dp_notice,
    privacy_badge,
    run_from_link,
    share_caption,
    status_text,
)

POLL_S = 1.0
store, executor = session.store(), session.executor()

st.title("Run monitor")
run = run_from_link(session, key="mon_pick")

run_id, cfg = run.id, run.config
header = st.columns([6, 2])
with header[0]:
    st.subheader(run_label(run))
    privacy_badge(str(cfg.get("mechanism")))
    if not session.is_owner(run):
        st.caption("A shared run: you can watch it and read its report, but only its owner can cancel it.")
with header[1]:
    if session.is_owner(run) and not run.is_terminal:
        if st.button("Cancel run", icon=":material/stop_circle:", key="mon_cancel", width="stretch"):
            executor.cancel(run_id, session.owner())
            st.rerun()
not_dp_notice(str(cfg.get("mechanism")))
share_caption("monitor", run_id)

active_at_start = not run.is_terminal
dp = guarantee_of(run) == "dp"
show_uncovered = may_show_uncovered(run, viewer=session.owner())  # loss, batch, exact clipping, val ppl
show_samples = may_show_samples(run, viewer=session.owner())
if not show_uncovered:
    st.caption("This run trained on its owner's own text: numbers that ε does not cover (training loss, validation "
               "perplexity, exact clipping statistics) are not shared, unless the owner chooses to on the Run report.")
elif str(cfg.get("corpus", "builtin")) != "builtin":
    st.caption(f"Training loss, validation perplexity and the exact clipping statistics are {UNCOVERED_LABEL}; "
               "people with this run's link do not see them unless you share them on the Run report.")


def _predicted(r: Run) -> list[tuple[int, float]] | None:
    info = r.info
    if not dp or info is None or not info.noise_multiplier or not info.sample_rate or not info.delta:
        return None
    return predicted_curve(str(cfg["mechanism"]), float(info.noise_multiplier), float(info.sample_rate),
                           float(info.delta), str(cfg.get("accountant")), int(info.total_steps))


def _read(cache: dict) -> RunSnapshot:
    """The store's state now: ONE snapshot (run, new metrics, evals), added to this tab's cache.

    Samples are read just before it (the store keeps them outside the snapshot), so they are never
    newer than the steps drawn with them.
    """
    fresh = store.samples(run_id, since_id=cache["sample_id"])
    snap = store.snapshot(run_id, since_step=cache["last"])
    if snap.metric_count < len(cache["metrics"]):  # the store was rebuilt under us: start again
        cache.update(last=-1, metrics=[], sample_id=0, samples=[])
        fresh = store.samples(run_id)
        snap = store.snapshot(run_id)
    if snap.metrics:
        cache["metrics"].extend(snap.metrics)
        cache["last"] = snap.metrics[-1]["step"]
    if fresh:
        cache["samples"].extend(fresh)
        cache["sample_id"] = fresh[-1]["id"]
    return snap


@st.fragment(run_every=session.live_interval(POLL_S) if active_at_start else None)
def live() -> None:
    """Everything that changes while the run trains, from one snapshot, computed first, then drawn.

    The layout is the same on every poll (the same elements in the same order), and nothing is
    drawn until every number and figure is ready: Streamlit greys out the previous poll's elements
    until they are redrawn, so drawing them all in one quick burst keeps the page from greying out,
    and no element can show a value from a different read than its neighbours (the ε metric and
    the ε sentence, say).
    """
    session.live_interval(POLL_S)  # counts this session as watching (pages loaded later poll slower)
    executor.poll()  # reap a dead worker, start a queued run: the store must match reality
    cache = st.session_state.setdefault("_mon_cache", {}).setdefault(
        run_id, {"last": -1, "metrics": [], "sample_id": 0, "samples": []})
    snap = _read(cache)
    r = snap.run
    if r.is_terminal and active_at_start:
        st.rerun()  # once: redraw the whole page without polling and with the results below

    # ---- compute (no drawing yet)
    metrics = visible_metrics(cache["metrics"], show_uncovered)
    evals = snap.evals if show_uncovered else []
    queue = store.queue_position(run_id) if r.status == "queued" else None
    prog = progress(r, metrics, queue)
    last = metrics[-1] if metrics else {}
    not_shared = "not shared"
    loss = next((m["train_loss"] for m in reversed(metrics) if m.get("train_loss") is not None), None)
    ppl = evals[-1]["val_perplexity"] if evals else None
    eps = run_epsilon(r, last.get("epsilon"))
    eps = round(eps, 3) if eps is not None else None  # as the metric shows it: the sentence says the same number
    step_text = f"{r.last_step or 0:,}" + (f" / {r.total_steps:,}" if r.total_steps else "")
    eps_text = f"{eps:.3f}" if eps is not None else "none" if not dp else "—"
    eps_words = (epsilon_sentence(eps, seq_len=cfg.get("seq_len"), tokenizer=cfg.get("tokenizer", "char"),
                                  privacy_unit=unit_of(cfg))
                 if eps is not None else "ε is counted from the first training step.")
    total = r.total_steps
    figures: dict[str, object] = {}
    if show_uncovered:
        baseline = baseline_perplexity(session.my_runs(), cfg) if cfg.get("mechanism") != "none" else None
        figures["mon_loss"] = charts.loss_figure(metrics, total_steps=total)
        figures["mon_ppl"] = charts.perplexity_figure(evals, total_steps=total, baseline=baseline)
    if dp:
        target = cfg.get("epsilon") if cfg.get("noise_multiplier") is None else None
        figures["mon_eps"] = charts.epsilon_figure(metrics, predicted=_predicted(r), target=target, total_steps=total)
        figures["mon_clip"] = charts.clipping_figure(metrics, clip=cfg.get("clip"), total_steps=total)
    samples = cache["samples"] if show_samples else []
    if not show_samples:
        samples_note, shown = ("Samples of a model without a privacy guarantee, trained on someone's own text, are "
                               "shown to its owner only: they can quote that text."), []
    elif not samples:
        samples_note, shown = "The first samples appear at the first evaluation.", []
    else:
        latest = max(s["step"] for s in samples)
        shown = [s for s in samples if s["step"] == latest]
        samples_note = f"At step {latest}" + (" (final model)" if any(s["kind"] == "final" for s in shown) else "")

    # ---- draw, in one burst, always the same elements in the same order
    st.progress(prog.fraction, text=f"{status_text(r)} · {prog.text}")
    cols = st.columns(4)
    cols[0].metric("Step", step_text)
    cols[1].metric("Training loss", f"{loss:.3f}" if loss is not None else "—" if show_uncovered else not_shared,
                   help=f"Mean loss of the step's batch: {UNCOVERED_LABEL}.")
    cols[2].metric("Validation perplexity", f"{ppl:.2f}" if ppl is not None else "—" if show_uncovered else not_shared,
                   help="exp(average loss per token) on held-out users: lower is better. Measured on their text "
                        f"without noise: {UNCOVERED_LABEL}.")
    cols[3].metric("ε spent", eps_text,
                   help="Grows with every step; the run stops at its target." if dp else
                   "This run has no privacy guarantee, so no ε is shown.")
    if dp:
        st.caption(eps_words)  # right under the metric it explains, from the same number
    for keys in (("mon_loss", "mon_ppl"), ("mon_eps", "mon_clip")):
        if keys[0] in figures:
            row = st.columns(2)
            for col, key in zip(row, keys):
                with col:
                    st.plotly_chart(figures[key], key=key, config=CHART_CONFIG)
    st.markdown("**Samples as they arrive** (generated from the model at each evaluation)")
    st.caption(samples_note)
    for s in shown:
        st.code(s["text"] or "(empty)", language=None, wrap_lines=True)
    if r.is_terminal:  # only on a full run (a polling fragment reran the page above)
        _ended(r)


def _ended(r: Run) -> None:
    """What a run that has ended leaves: why it stopped, and where to go next."""
    if r.status == "failed":
        st.error(f"The run failed: {visible_error(r, viewer=session.owner())}", icon=":material/error:")
    elif r.status == "cancelled":
        error = visible_error(r, viewer=session.owner())
        st.warning("The run was cancelled" + (f": {error}" if error else ".") + " Its curves so far are kept.")
    st.divider()
    links = st.columns(3)
    links[0].page_link(REPORT_PAGE, label="Privacy statement and report", icon=":material/description:",
                       query_params={"run": run_id})
    links[1].page_link(SAMPLES_PAGE, label="Generate samples", icon=":material/text_snippet:",
                       query_params={"runs": run_id})
    links[2].page_link(COMPARE_PAGE, label="Compare with other runs", icon=":material/compare_arrows:")


live()  # the last thing on the page: nothing after it depends on the run's live state

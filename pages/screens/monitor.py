"""Run monitor: live curves, progress, clipping, samples and cancel for one run (``?run=<id>``).

While the run is active a fragment reads the run every second (one consistent snapshot of the new
steps, shared with every other tab watching it: :mod:`pages.ui.live`) and redraws only itself:
everything that changes while the run trains is drawn inside it, from that one snapshot; when the run
ends it reruns the page once, which stops the polling. Nothing is trained here: the worker process
writes, this page reads.
"""

import streamlit as st

from dpcore.runs.preview import predicted_curve
from dpcore.runs.store import Run
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
from pages.ui.live import Tick
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
store, executor, ticker = session.store(), session.executor(), session.ticker()

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


def _view(tick: Tick) -> dict:
    """Everything the live view shows of one tick, for one kind of viewer: built once per tick by
    :meth:`pages.ui.live.RunTicker.derived` and shared by every tab that may see the same thing."""
    r = tick.run
    metrics = visible_metrics(tick.metrics, show_uncovered)
    evals = list(tick.evals) if show_uncovered else []
    last = metrics[-1] if metrics else {}
    eps = run_epsilon(r, last.get("epsilon"))
    eps = round(eps, 3) if eps is not None else None  # as the metric shows it: the sentence says the same number
    total = r.total_steps
    figures: dict[str, object] = {}
    if show_uncovered:
        figures["mon_loss"] = charts.loss_figure(metrics, total_steps=total)
        figures["mon_ppl"] = charts.perplexity_figure(evals, total_steps=total, baseline=baseline)
    if dp:
        target = cfg.get("epsilon") if cfg.get("noise_multiplier") is None else None
        figures["mon_eps"] = charts.epsilon_figure(metrics, predicted=_predicted(r), target=target, total_steps=total)
        figures["mon_clip"] = charts.clipping_figure(metrics, clip=cfg.get("clip"), total_steps=total)
    samples = list(tick.samples) if show_samples else []
    if not show_samples:
        samples_note, shown = ("Samples of a model without a privacy guarantee, trained on someone's own text, are "
                               "shown to its owner only: they can quote that text."), []
    elif not samples:
        samples_note, shown = "The first samples appear at the first evaluation.", []
    else:
        latest = max(s["step"] for s in samples)
        shown = [s for s in samples if s["step"] == latest]
        samples_note = f"At step {latest}" + (" (final model)" if any(s["kind"] == "final" for s in shown) else "")
    return {
        "metrics": metrics,
        "loss": next((m["train_loss"] for m in reversed(metrics) if m.get("train_loss") is not None), None),
        "ppl": evals[-1]["val_perplexity"] if evals else None,
        "eps_text": f"{eps:.3f}" if eps is not None else "none" if not dp else "—",
        "eps_words": (epsilon_sentence(eps, seq_len=cfg.get("seq_len"), tokenizer=cfg.get("tokenizer", "char"),
                                       privacy_unit=unit_of(cfg))
                      if eps is not None else "ε is counted from the first training step."),
        "step_text": f"{r.last_step or 0:,}" + (f" / {r.total_steps:,}" if r.total_steps else ""),
        "figures": figures, "samples_note": samples_note, "shown": shown,
    }


# a page run (opening, reloading, a click) reads the store at once; the fragment's own polls share the ticker's reads
_page_run = {"fresh": True}
# per viewer, once per page run (their own runs are the baseline's candidates), not on every poll
baseline = (baseline_perplexity(session.my_runs(), cfg)
            if show_uncovered and cfg.get("mechanism") != "none" else None)


@st.fragment(run_every=session.live_interval(POLL_S) if active_at_start else None)
def live() -> None:
    """Everything that changes while the run trains, from one tick, computed first, then drawn.

    The layout is the same on every poll (the same elements in the same order), and nothing is
    drawn until every number and figure is ready: Streamlit greys out the previous poll's elements
    until they are redrawn, so drawing them all in one quick burst keeps the page from greying out,
    and no element can show a value from a different read than its neighbours (the ε metric and
    the ε sentence, say). The tick and what is drawn from it are shared by every tab that watches
    this run and may see the same (:mod:`pages.ui.live`): a room of thirty reads the store once a tick.
    """
    session.live_interval(POLL_S)  # counts this session as watching (pages loaded later poll slower)
    ticker.throttled("executor.poll", POLL_S / 2, executor.poll)  # reap a dead worker, start a queued run
    tick = ticker.read(run_id, max_age_s=0.0 if _page_run.pop("fresh", False) else None)
    r = tick.run
    if r.is_terminal and active_at_start:
        st.rerun()  # once: redraw the whole page without polling and with the results below

    # ---- compute (no drawing yet)
    view = ticker.derived(tick, (show_uncovered, show_samples, dp, baseline), lambda: _view(tick))
    queue = store.queue_position(run_id) if r.status == "queued" else None
    prog = progress(r, view["metrics"], queue)
    not_shared = "not shared"
    loss, ppl, eps_text, eps_words = view["loss"], view["ppl"], view["eps_text"], view["eps_words"]
    step_text, figures, samples_note, shown = view["step_text"], view["figures"], view["samples_note"], view["shown"]

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

"""Home: what the app is for, the path configure → watch → compare, presets, the visitor's runs and data."""

import streamlit as st

from dpcore.config.presets import PRESETS, per_sequence_presets, workshop_presets
from dpcore.errors import DPCoreError
from dpcore.runs import gallery as demo
from dpcore.views import demoview
from dpcore.views.auditview import load_audit
from dpcore.views.meaning import CENSUS_SENTENCE, odds_multiplier, run_epsilon, run_label
from pages.ui import data_controls, demo_ui, present, routes, session
from pages.ui.widgets import CHART_CONFIG, COMPARE_PAGE, MONITOR_PAGE, NEW_RUN_PAGE, status_text

big = present.active()

st.title("DP-RNN Lab")


def _gallery() -> demo.GalleryState | None:
    try:
        return demo.gallery_state(session.store())
    except DPCoreError:
        return None


#: Seconds between Home's looks at the gallery while it is prepared (longer when many people watch).
GALLERY_POLL_S = 2.0
#: ... and while it is incomplete with nothing preparing it: a preparation started elsewhere (another
#: visitor's button, ``python -m dpcore demo prepare``, an import) shows up here without a reload.
GALLERY_IDLE_POLL_S = 5.0


def _phase(state: demo.GalleryState | None) -> str:
    """"complete" (nothing to poll for), "preparing" or "incomplete" (nothing under way yet)."""
    if state is None or state.complete:
        return "complete"
    return "preparing" if demo_ui.preparing(state) else "incomplete"


_state = _gallery()
_start_phase = _phase(_state)
_poll_s = {"preparing": GALLERY_POLL_S, "incomplete": GALLERY_IDLE_POLL_S}.get(_start_phase)


def _gallery_views(entries: list) -> tuple:
    """The gallery's frontier, its final samples and its exposure chart (None without audits)."""
    store = session.store()
    samples = {run.id: store.samples(run.id) for _, run in entries}
    audits = {run.id: load_audit(store, run) for _, run in entries}
    exposure = demoview.exposure_figure(entries, audits, big=big) if any(audits.values()) else None
    return demoview.frontier_figure(entries, big=big), demoview.final_samples(entries, samples), exposure


@st.fragment(run_every=session.live_interval(_poll_s) if _poll_s else None)
def gallery() -> None:
    """The instant demo: the pinned gallery's whole story on one screen, updating itself until it is complete.

    While the gallery is incomplete the fragment reruns on its own (faster while a preparation is under
    way); when the phase changes (a preparation starts, ends, or the gallery is complete) one full rerun
    draws the page for the new phase and sets the polling for it, none once the gallery is complete.
    """
    state = _gallery()
    if state is None:
        return
    phase = _phase(state)
    if phase != _start_phase:
        st.rerun()
    live = phase == "preparing"
    if live:
        done = sum(1 for r in state.runs if r.is_terminal)
        st.progress(state.progress, text=f"Preparing the demo gallery: {done} of {len(state.entries)} runs trained. "
                                         "It appears here as it fills in.")
    if not state.exists:
        if not live:
            st.caption("The demo gallery (the same model at ε = 0.5 to 16, without privacy, the naive recipe and "
                       "Laplace, each audited) has not been prepared on this server yet.")
            if st.button("Prepare the demo gallery", icon=":material/play_circle:", key="home_demo_prepare",
                         help="Trains the gallery once in the background (a few minutes); it is kept across restarts."):
                demo_ui.start()
                st.rerun()
        return
    entries = [(spec.title, run) for spec, run in state.entries if run is not None and run.status == "finished"]
    st.subheader("The whole trade-off at a glance")
    st.caption("The same small model trained on the same synthetic chat messages, once per privacy level: what each "
               "ε costs in quality, what the models write, and what they give away about planted secrets.")
    frontier, shown, exposure = session.ticker().shared(
        ("home-gallery", big, tuple((run.id, run.status, run.finished_at) for _, run in entries)),
        lambda: _gallery_views(entries))  # the same for every visitor: built once per finished gallery
    st.plotly_chart(frontier, key="home_demo_frontier", config=CHART_CONFIG)
    if shown:
        st.markdown(f"**What each model writes after “{shown[0][1]}”**")
        per_row = 3 if big else 5
        for start in range(0, len(shown), per_row):
            cols = st.columns(per_row)
            for col, (title, _prompt, texts) in zip(cols, shown[start:start + per_row]):
                with col, st.container(border=True):
                    st.markdown(f"**{title}**")
                    st.code(texts[0] or "(empty)", language=None, wrap_lines=True)
    if exposure is not None:
        st.plotly_chart(exposure, key="home_demo_exposure", config=CHART_CONFIG)
        st.caption("Each planted secret is a 4-digit PIN after a known prefix. Exposure counts the bits a model gives "
                   "away: 0 means an attacker does no better than guessing; at the dashed line the model recites it.")
    links = st.columns(3)
    links[0].page_link(NEW_RUN_PAGE, label="Train your own", icon=":material/rocket_launch:")
    links[1].page_link(COMPARE_PAGE, label="Compare the gallery's runs", icon=":material/compare_arrows:",
                       query_params={"runs": ",".join(run.id for _, run in entries)})
    links[2].page_link(routes.ROOM.path, label="Run a workshop room", icon=":material/groups:")


gallery()
if big:
    st.stop()
st.markdown(
    "See what privacy **costs** and what it **buys**. Train a small language model on text with "
    "*real* differentially private SGD (per-example clipping, calibrated noise, a privacy accountant), "
    "watch the privacy budget ε being spent, and compare the model's quality and its samples with a "
    "non-private baseline."
)

steps = st.columns(3)
with steps[0], st.container(border=True):
    st.markdown("**1 · Configure**  \nPick a privacy level ε and see what it means *before* training.")
    st.page_link(NEW_RUN_PAGE, label="New run", icon=":material/tune:")
with steps[1], st.container(border=True):
    st.markdown("**2 · Watch**  \nLoss, perplexity and ε spent grow live; samples arrive as it learns.")
    st.page_link(MONITOR_PAGE, label="Run monitor", icon=":material/monitoring:")
with steps[2], st.container(border=True):
    st.markdown("**3 · Compare**  \nPrivacy–utility frontier, curves side by side, a report to keep.")
    st.page_link(COMPARE_PAGE, label="Compare runs", icon=":material/compare_arrows:")

st.subheader("Start with a workshop preset")
st.caption(
    "Each one trains the same small model on the built-in corpus with the same seed; only the privacy "
    "changes. Each finishes in under a minute on a laptop CPU. Predict first: how much worse will ε = 1 be?"
)
cols = st.columns(len(workshop_presets()))
for col, preset in zip(cols, workshop_presets()):
    with col, st.container(border=True):
        st.markdown(f"#### {preset.title}")
        st.caption(preset.description)
        st.page_link(NEW_RUN_PAGE, label=f"Try {preset.title}", icon=":material/play_circle:",
                     query_params={"preset": preset.name})
st.caption("The same ε **per sequence** protects one 32-character snippet instead of a person: the model learns "
           "more, and someone who wrote many messages is protected far less (see Mechanisms).")
cols = st.columns(len(per_sequence_presets()))
for col, preset in zip(cols, per_sequence_presets()):
    col.page_link(NEW_RUN_PAGE, label=f"Try {preset.title}", icon=":material/compare_arrows:",
                  query_params={"preset": preset.name})
others = [p for p in PRESETS if p.group not in ("workshop", "per-sequence")]
with st.expander("More presets: lessons and longer studies"):
    for preset in others:
        st.page_link(NEW_RUN_PAGE, label=f"{preset.title} — {preset.description}", icon=":material/science:",
                     query_params={"preset": preset.name})

st.subheader("What ε means")
st.markdown(
    f"With ε = 1 per person, any one person, with all of their messages, can change the odds of any outcome by at most "
    f"e¹ ≈ {odds_multiplier(1)}×; with ε = 10, by up to e¹⁰ ≈ {odds_multiplier(10)}×. Smaller is more private. "
    f"{CENSUS_SENTENCE}"
)

st.subheader("Your recent runs")
session.executor().poll()
runs = session.my_runs(limit=8)
if not runs:
    st.caption("None yet: pick a preset above. Your runs are kept for this browser.")
for run in runs:
    eps = run_epsilon(run)
    ppl = run.result.val_perplexity if run.result is not None else None
    bits = [status_text(run)]
    if eps is not None:
        bits.append(f"ε spent {eps:.2f}")
    if ppl is not None:
        bits.append(f"perplexity {ppl:.2f}")
    st.page_link(MONITOR_PAGE, label=f"{run_label(run)} — {' · '.join(bits)}", icon=":material/monitoring:",
                 query_params={"run": run.id})
data_controls.your_data(session.store(), session.owner())

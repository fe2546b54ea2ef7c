"""Home: what the app is for, the path configure → watch → compare, presets, the visitor's runs and data."""

import streamlit as st

from dpcore.views.meaning import CENSUS_SENTENCE, odds_multiplier, run_epsilon, run_label
from dpcore.views.presets import PRESETS, workshop_presets
from pages.ui import data_controls, session
from pages.ui.widgets import COMPARE_PAGE, MONITOR_PAGE, NEW_RUN_PAGE, status_text

session.use_router()

st.title("DP-RNN Lab")
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
others = [p for p in PRESETS if p.group != "workshop"]
with st.expander("More presets: lessons and longer studies"):
    for preset in others:
        st.page_link(NEW_RUN_PAGE, label=f"{preset.title} — {preset.description}", icon=":material/science:",
                     query_params={"preset": preset.name})

st.subheader("What ε means")
st.markdown(
    f"With ε = 1, any single training sequence can change the odds of any outcome by at most "
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
    ppl = (run.result or {}).get("val_perplexity")
    bits = [status_text(run)]
    if eps is not None:
        bits.append(f"ε spent {eps:.2f}")
    if ppl is not None:
        bits.append(f"perplexity {ppl:.2f}")
    st.page_link(MONITOR_PAGE, label=f"{run_label(run)} — {' · '.join(bits)}", icon=":material/monitoring:",
                 query_params={"run": run.id})
data_controls.your_data(session.store(), session.owner())

"""Samples: the same prompt and seed through several runs' final models, side by side.

Sampling is post-processing of the trained model: it costs no privacy, however many samples are
drawn. Generation is a few milliseconds per sample with the small GRU, so it runs here on
demand (it is not training).
"""

import streamlit as st

from dpcore.errors import DPCoreError
from dpcore.report import guarantee_of, run_epsilon, run_label
from dpcore.runview import generate_samples, unknown_prompt_chars
from pages.ui import session
from pages.ui.widgets import no_runs_yet, privacy_badge

session.use_router()

MAX_COLUMNS = 4
store = session.store()

st.title("Samples side by side")
st.caption("Same prompt, same seed, different privacy: read what each model learned. Sampling from a "
           "DP-trained model is post-processing and costs no extra privacy. Decoder: plain sampling.")

linked = [r for r in st.query_params.get("runs", "").split(",") if r]
for run_id in linked:
    if session.find_run(run_id) is not None:
        session.remember(run_id)
runs = [r for r in session.my_runs() if "checkpoint" in store.artifacts(r.id)]
if not runs:
    if session.my_runs():
        st.info("None of your runs has finished yet: samples come from a run's final model.")
    else:
        no_runs_yet()
    st.stop()
by_id = {r.id: r for r in runs}
if "smp_runs" not in st.session_state or linked and linked != st.session_state.get("_smp_written"):
    st.session_state["smp_runs"] = [r for r in linked if r in by_id] or [r.id for r in runs[:3]]
st.session_state["smp_runs"] = [r for r in st.session_state["smp_runs"] if r in by_id]

chosen = st.multiselect("Runs", list(by_id), key="smp_runs", max_selections=8,
                        format_func=lambda i: f"{run_label(by_id[i])}")
st.session_state["_smp_written"] = chosen
if st.query_params.get("runs", "") != ",".join(chosen):
    st.query_params["runs"] = ",".join(chosen)
cols = st.columns([4, 1, 1, 1, 1])
prompt = cols[0].text_input("Prompt", key="smp_prompt", placeholder="e.g. my phone number is",
                            help="The text every model continues. Empty: each starts a new message.")
seed = cols[1].number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key="smp_seed")
count = cols[2].number_input("Samples", min_value=1, max_value=5, value=3, step=1, key="smp_n")
tokens = cols[3].number_input("Length", min_value=10, max_value=300, value=80, step=10, key="smp_tokens",
                              help="Maximum number of tokens per sample.")
temperature = cols[4].number_input("Temperature", min_value=0.1, max_value=2.0, value=0.8, step=0.1,
                                   key="smp_temp", help="Lower: safer, more repetitive text. Higher: wilder.")

if not chosen:
    st.info("Choose at least one run.")
    st.stop()

for start in range(0, len(chosen), MAX_COLUMNS):
    row = st.columns(MAX_COLUMNS)
    for col, run_id in zip(row, chosen[start:start + MAX_COLUMNS]):
        run = by_id[run_id]
        with col, st.container(border=True):
            st.markdown(f"**{run_label(run)}**")
            privacy_badge(str(run.config.get("mechanism")))
            eps = run_epsilon(run)
            ppl = (run.result or {}).get("val_perplexity")
            st.caption(" · ".join(
                ([f"ε = {eps:.2f}"] if eps is not None else ["no ε" if guarantee_of(run) != "dp" else "ε pending"])
                + ([f"perplexity {ppl:.2f}"] if ppl is not None else [])))
            try:
                texts = generate_samples(store, run, prompt, n=int(count), max_tokens=int(tokens),
                                         temperature=float(temperature), seed=int(seed))
                unknown = unknown_prompt_chars(store, run, prompt)
            except DPCoreError as err:
                st.error(str(err))
                continue
            if unknown:
                st.caption(f"Not in this model's vocabulary (read as unknown): {unknown!r}")
            for text in texts:
                st.code(text or "(empty)", language=None, wrap_lines=True)

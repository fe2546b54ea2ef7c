"""Samples: the same prompt and seed through several runs' final models, side by side.

Sampling is post-processing of the trained model: it costs no privacy, however many samples are
drawn. Generation is a few milliseconds per sample with the small GRU, so it runs here on
demand (it is not training). A private decoder (exponential, noisy-max, mix) adds its own ε per
token, which protects even a non-private model; naive-logits noise protects nothing.
"""

import streamlit as st

from dpcore import charts
from dpcore.decoding import DECODERS, DecoderSpec
from dpcore.errors import DPCoreError
from dpcore.report import guarantee_of, run_epsilon, run_label
from dpcore.runview import decode_text, generate_samples, unknown_prompt_chars
from pages.ui import session
from pages.ui.widgets import no_runs_yet, privacy_badge

session.use_router()

MAX_COLUMNS = 4
store = session.store()

st.title("Samples side by side")
st.caption("Same prompt, same seed, different privacy: read what each model learned. Sampling from a "
           "DP-trained model is post-processing and costs no extra privacy; a private decoder adds its own ε "
           "per token.")

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

DECODER_HELP = {
    "plain": "Ordinary sampling: post-processing of the model, no ε of its own.",
    "exponential": "Clip logits to [−B, B], sample from softmax(clipped / T): ε = 4B/T per token.",
    "noisy-max": "Clip logits to [−B, B], add Laplace(b) noise, take the largest: ε = 4B/b per token.",
    "mix": "Sample from λ·p + (1−λ)/V: every token keeps a floor; ε = ln(1 + λV/(1−λ)) per token.",
    "naive-logits": "Laplace noise on unclipped logits: no privacy guarantee (a counterexample).",
}
NAIVE_DECODER_WHY = ("The logits are unbounded, so no finite noise hides how much one training example "
                     "moved them: the noise protects nothing.")
dcols = st.columns([2, 1, 1, 1, 1, 1])
decoder = dcols[0].selectbox("Decoder", DECODERS, key="smp_decoder", help="How each next token is chosen.",
                             format_func=lambda d: d)
dcols[0].caption(DECODER_HELP[decoder])
bound = dcols[1].number_input("Logit bound B", min_value=0.1, max_value=50.0, value=4.0, step=0.5, key="smp_B",
                              disabled=decoder not in ("exponential", "noisy-max"))
dec_temp = dcols[2].number_input("Decoder T", min_value=0.1, max_value=100.0, value=8.0, step=1.0, key="smp_T",
                                 disabled=decoder != "exponential",
                                 help="Exponential mechanism temperature: ε per token = 4B/T. (Plain and mix use "
                                      "the Temperature above.)")
scale = dcols[3].number_input("Laplace scale b", min_value=0.1, max_value=100.0, value=8.0, step=1.0, key="smp_b",
                              disabled=decoder not in ("noisy-max", "naive-logits"))
mix = dcols[4].number_input("Mixing λ", min_value=0.0, max_value=0.99, value=0.5, step=0.05, key="smp_mix",
                            disabled=decoder != "mix")
delta_prime = dcols[5].number_input("δ′", min_value=1e-12, max_value=0.1, value=1e-6, format="%.0e",
                                    key="smp_dprime", disabled=decoder in ("plain", "naive-logits"),
                                    help="The δ′ of advanced composition over the tokens of one text.")
try:
    spec = DecoderSpec(decoder, logit_bound=float(bound),
                       temperature=float(dec_temp if decoder == "exponential" else temperature),
                       noise_scale=float(scale), mix=float(mix)).validate()
except DPCoreError as err:
    st.error(str(err))
    st.stop()
if decoder == "naive-logits":
    st.error(f"**naive-logits: no privacy guarantee.** {NAIVE_DECODER_WHY}", icon=":material/warning:")

if not chosen:
    st.info("Choose at least one run.")
    st.stop()


def decoded_sample(run, index: int, key: str) -> None:
    """One text from a non-plain decoder, with its ε per token, running total and guarantee."""
    out, guarantee = decode_text(store, run, prompt, spec, max_tokens=int(tokens), seed=int(seed) + index,
                                 delta_prime=float(delta_prime))
    st.code(out.text or "(empty)", language=None, wrap_lines=True)
    if out.epsilon_per_token is None:
        st.caption(f"ε per token: none (no privacy guarantee). {guarantee.explanation}.")
        return
    st.caption(f"ε per token = {out.epsilon_per_token:.3g} · this text: ε = {out.epsilon:.3g}")
    if out.epsilon_basic:
        st.plotly_chart(charts.decoding_epsilon_figure(out.epsilon_basic, out.epsilon_advanced,
                                                       delta_prime=out.delta_prime),
                        key=key, config={"displayModeBar": False})
    st.caption(guarantee.explanation[:1].upper() + guarantee.explanation[1:] + ".")

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
                                         temperature=float(temperature), seed=int(seed)) if decoder == "plain" else []
                unknown = unknown_prompt_chars(store, run, prompt)
            except DPCoreError as err:
                st.error(str(err))
                continue
            if unknown:
                st.caption(f"Not in this model's vocabulary (read as unknown): {unknown!r}")
            if decoder == "plain":
                if eps is not None and guarantee_of(run) == "dp":
                    st.caption(f"Post-processing: no extra ε; the training ε = {eps:.3g} covers unlimited samples.")
                else:
                    st.caption("Plain sampling from a model without a DP guarantee: these texts have no privacy "
                               "guarantee.")
                for text in texts:
                    st.code(text or "(empty)", language=None, wrap_lines=True)
                continue
            for i in range(int(count)):
                try:
                    decoded_sample(run, i, key=f"smp_eps_{run_id}_{i}")
                except DPCoreError as err:
                    st.error(str(err))

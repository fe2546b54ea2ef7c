"""Samples: the same prompt and seed through several runs' final models, side by side.

Sampling is post-processing of the trained model: it costs no privacy, however many samples are
drawn. Generation is a few milliseconds per sample with the small GRU, so it runs here on
demand (it is not training). A private decoder (exponential, noisy-max, mix) adds its own ε per
token, which protects even a non-private model; naive-logits noise protects nothing.

Private decoding compounds: every private text is charged to the model's inference ledger (across
all viewers) before it is shown, and refused past the budget its owner set. A model without a
guarantee trained on an upload gives plain and naive-logits text to its owner only, and everyone else
together decodes it privately within its stranger budget (``dpcore.runs.access``: the core enforces
both; this page only says so). It runs only on a
click, never on a rerun, and its randomness is secret: the seed drives plain sampling only. Two
named operating points ("readable", "private": :data:`dpcore.privacy.decoders.OPERATING_POINTS`) come
first in the decoder menu; each text shows the ε it spent, which is what its ledger keeps.
"""

import streamlit as st

from dpcore.errors import DPCoreError, TextRefused
from dpcore.privacy.decoders import DECODER_CHOICES, OPERATING_POINTS, PRIVATE_DECODERS, DecoderSpec
from dpcore.runs.inference import (
    MAX_PROMPT_CHARS,
    check_access,
    decode_point,
    decode_text,
    epsilon_per_text,
    generate_samples,
    ledger,
    point_spec,
    stranger_budget,
    unknown_prompt_chars,
)
from dpcore.runs.store import InferenceBudgetExceeded
from dpcore.views import charts, samplesview
from dpcore.views.disclosure import may_show_uncovered
from dpcore.views.meaning import guarantee_of, run_epsilon, run_label
from pages.ui import session
from pages.ui.widgets import CHART_CONFIG, multi_run_picker, no_runs_yet, privacy_badge, remember_linked_runs

MAX_COLUMNS = 4
store = session.store()

st.title("Samples side by side")
st.caption("Same prompt, same seed, different privacy: read what each model learned. Sampling from a "
           "DP-trained model is post-processing and costs no extra privacy; a private decoder adds its own ε "
           "per token.")

linked = remember_linked_runs(session)
runs = [r for r in session.my_runs() if "checkpoint" in store.artifacts(r.id)]
if not runs:
    if session.my_runs():
        st.info("None of your runs has finished yet: samples come from a run's final model.")
    else:
        no_runs_yet()
    st.stop()
runs = samplesview.side_by_side_first(runs)  # without a link: ε = 8 next to no privacy, when this browser has both
by_id = {r.id: r for r in runs}
chosen = [r.id for r in multi_run_picker(runs, linked, key="smp_runs", default_count=3, max_selections=8,
                                         with_status=False)]
cols = st.columns([4, 1, 1, 1, 1])
prompt = cols[0].text_input("Prompt", key="smp_prompt", placeholder="e.g. my phone number is",
                            max_chars=MAX_PROMPT_CHARS,
                            help="The text every model continues. Empty: each starts a new message.")
seed = cols[1].number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key="smp_seed",
                            help="Seeds plain sampling (and the naive-logits counterexample) only: same seed, same "
                                 "texts. Private decoders draw secret randomness that nobody can replay, or their "
                                 "ε would not hold.")
count = cols[2].number_input("Samples", min_value=1, max_value=5, value=3, step=1, key="smp_n")
# An operating point fixes the length and the model temperature: its own (disabled) widgets show them.
point = OPERATING_POINTS.get(st.session_state.get("smp_decoder", ""))
if point is None:
    tokens = cols[3].number_input("Length", min_value=10, max_value=300, value=80, step=10, key="smp_tokens",
                                  help="Maximum number of tokens per sample.")
    temperature = cols[4].number_input("Temperature", min_value=0.1, max_value=2.0, value=0.8, step=0.1,
                                       key="smp_temp", help="Lower: safer, more repetitive text. Higher: wilder.")
else:
    fixed = f"Set by the {point.name} operating point."
    tokens = cols[3].number_input("Length", value=point.max_tokens, disabled=True, key=f"smp_tokens_{point.name}",
                                  help=fixed)
    temperature = cols[4].number_input("Temperature", value=point.temperature, disabled=True,
                                       key=f"smp_temp_{point.name}", help=fixed)

dcols = st.columns([2, 1, 1, 1, 1, 1])
decoder = dcols[0].selectbox("Decoder", DECODER_CHOICES, key="smp_decoder", help="How each next token is chosen.",
                             format_func=lambda d: samplesview.choice_label(d, OPERATING_POINTS))
point = OPERATING_POINTS.get(decoder)
private = point is not None or decoder in PRIVATE_DECODERS
if point is not None:
    dcols[0].caption(samplesview.point_help(point))
else:
    dcols[0].caption(samplesview.DECODER_HELP[decoder])
if private:
    st.caption(samplesview.PER_TOKEN_WHY)
bound = dcols[1].number_input("Logit bound B", min_value=0.1, max_value=50.0, value=4.0, step=0.5, key="smp_B",
                              disabled=decoder not in ("exponential", "noisy-max"))
dec_temp = dcols[2].number_input("Decoder T", min_value=0.1, max_value=100.0, value=8.0, step=1.0, key="smp_T",
                                 disabled=decoder != "exponential",
                                 help="Exponential mechanism temperature: ε per token = 4B/T. (Plain and mix use "
                                      "the Temperature above.)")
scale = dcols[3].number_input("Laplace scale b", min_value=0.1, max_value=100.0, value=8.0, step=1.0, key="smp_b",
                              disabled=decoder not in ("noisy-max", "naive-logits"))
mix = dcols[4].number_input("Mixing λ", min_value=0.0, max_value=0.99, value=0.5, step=0.05, key="smp_mix",
                            disabled=decoder != "mix",
                            help="An operating point sets λ per model from its vocabulary.")
delta_prime = dcols[5].number_input("δ′", min_value=1e-12, max_value=0.1, value=1e-6, format="%.0e",
                                    key="smp_dprime", disabled=not private,
                                    help="The δ′ of advanced composition over the tokens of one text.")
spec = None  # an operating point's decoder depends on each model's vocabulary: made per run
if point is None:
    try:
        spec = DecoderSpec(decoder, logit_bound=float(bound),
                           temperature=float(dec_temp if decoder == "exponential" else temperature),
                           noise_scale=float(scale), mix=float(mix)).validate()
    except DPCoreError as err:
        st.error(str(err))
        st.stop()
if decoder == "naive-logits":
    st.error(f"**naive-logits: no privacy guarantee.** {samplesview.NAIVE_DECODER_WHY}", icon=":material/warning:")

if not chosen:
    st.info("Choose at least one run.")
    st.stop()

viewer = session.owner()
generate_private = False
if private:
    # A point promises the same ε per text on every model, and so do exponential and noisy-max (4B/T,
    # 4B/b: no vocabulary in them); a custom mix's ε depends on each model's vocabulary.
    same_for_all = point.epsilon_per_text if point is not None else (
        None if decoder == "mix" else spec.epsilon_per_token(vocab_size=0) * int(tokens))
    st.caption(samplesview.click_caption(same_for_all, int(tokens), int(count)))
    generate_private = st.button("Generate privately (spends ε)", key="smp_generate", type="primary")
# The last private texts stay on screen (they were paid for) until a setting changes.
signature = (tuple(chosen), prompt, decoder, point or spec, int(tokens), int(count), float(delta_prime))
kept = st.session_state.get("_smp_private")
if generate_private:
    kept = st.session_state["_smp_private"] = {"signature": signature, "by_run": {}}
private_results = kept["by_run"] if kept and kept["signature"] == signature else {}


def set_budget(run_id: str) -> None:
    try:
        store.set_inference_budget(run_id, viewer, float(st.session_state[f"smp_budget_{run_id}"]))
    except DPCoreError as err:
        st.session_state["_smp_budget_error"] = str(err)


def set_stranger_budget(run_id: str) -> None:
    try:
        store.set_stranger_budget(run_id, viewer, float(st.session_state[f"smp_stranger_{run_id}"]))
    except DPCoreError as err:
        st.session_state["_smp_budget_error"] = str(err)


def show_decoded(out, guarantee, key: str) -> None:
    """One text from a non-plain decoder, with its ε per token, running totals and statements."""
    st.code(out.text or "(empty)", language=None, wrap_lines=True)
    if out.epsilon_per_token is None:
        st.caption(f"ε per token: none (no privacy guarantee). {guarantee.explanation}.")
        return
    basic, advanced = out.statements()
    st.caption(samplesview.text_epsilon_caption(out.epsilon_per_token, out.picks, basic.epsilon, advanced.epsilon,
                                                advanced.delta, ended=out.picks > len(out.tokens)))
    if out.epsilon_basic:
        st.plotly_chart(charts.decoding_epsilon_figure(out.epsilon_basic, out.epsilon_advanced,
                                                       delta_prime=out.delta_prime),
                        key=key, config=CHART_CONFIG)
    st.caption(guarantee.explanation[:1].upper() + guarantee.explanation[1:] + ".")


def private_texts(run) -> list:
    """``count`` privately decoded texts, each charged to the ledger first; stops at a refusal."""
    made: list = []
    for _ in range(int(count)):
        try:
            if point is not None:
                made.append(("text", *decode_point(store, run, prompt, point, viewer=viewer,
                                                   delta_prime=float(delta_prime))))
            else:
                made.append(("text", *decode_text(store, run, prompt, spec, viewer=viewer, max_tokens=int(tokens),
                                                  delta_prime=float(delta_prime))))
        except InferenceBudgetExceeded as err:
            made.append(("refused", str(err)))
            break
    return made


def ledger_panel(run) -> None:
    """What all private texts of this model have spent so far, and (its owner only) the budget."""
    summary = ledger(store, run, float(delta_prime))
    head, pairs, budget = summary.lines()
    st.caption(f"**{head}**. {pairs[:1].upper() + pairs[1:]}. {budget[:1].upper() + budget[1:]}.")
    if session.is_owner(run):
        st.number_input("Private-decoding budget ε (yours to set)", min_value=0.0, max_value=1e6,
                        value=min(float(summary.budget), 1e6), step=1.0, key=f"smp_budget_{run.id}",
                        on_change=set_budget, args=(run.id,),
                        help="The most ε that private decoding of this model may spend, over all texts and "
                             "viewers together (basic composition, δ = 0). Past it, private decoding is refused.")
    strangers = stranger_budget(store, run)
    if strangers is not None:
        st.caption(samplesview.stranger_caption(strangers))
        if session.is_owner(run):
            st.number_input("Stranger budget ε (yours to raise)", min_value=0.0, max_value=1e6,
                            value=min(float(strangers.budget), 1e6), step=1.0, key=f"smp_stranger_{run.id}",
                            on_change=set_stranger_budget, args=(run.id,),
                            help="What everyone but you may spend together on private decoding of this model, "
                                 "which has no guarantee of its own. A raise is named in the run's privacy "
                                 "statement and under this model for every viewer.")

for start in range(0, len(chosen), MAX_COLUMNS):
    row = st.columns(MAX_COLUMNS)
    for col, run_id in zip(row, chosen[start:start + MAX_COLUMNS]):
        run = by_id[run_id]
        with col, st.container(border=True):
            st.markdown(f"**{run_label(run)}**")
            privacy_badge(str(run.config.get("mechanism")))
            eps = run_epsilon(run)
            ppl = (run.result.val_perplexity if run.result is not None and may_show_uncovered(run, viewer=viewer)
                   else None)
            st.caption(" · ".join(
                ([f"ε = {eps:.2f}"] if eps is not None else ["no ε" if guarantee_of(run) != "dp" else "ε pending"])
                + ([f"perplexity {ppl:.2f}"] if ppl is not None else [])))
            try:  # the core's rule, asked before anything is drawn (every decode below asks it again)
                check_access(store, run, viewer, spec if spec is not None else point_spec(store, run, point))
                texts = generate_samples(store, run, prompt, viewer=viewer, n=int(count), max_tokens=int(tokens),
                                         temperature=float(temperature), seed=int(seed)) if decoder == "plain" else []
                unknown = unknown_prompt_chars(store, run, prompt)
            except TextRefused as err:
                st.info(f"{str(err)[:1].upper()}{str(err)[1:]}. {samplesview.OWNER_ONLY_HINT}", icon=":material/lock:")
                ledger_panel(run)
                continue
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
                if texts and all(t == prompt for t in texts):
                    st.caption("The model ended the message right after the prompt every time (it predicted the end "
                               "of a record): try a prompt that reads like the start of a message, or a higher "
                               "temperature.")
            elif not private:  # naive-logits: claims nothing, charges nothing, seeded
                for i in range(int(count)):
                    try:
                        show_decoded(*decode_text(store, run, prompt, spec, viewer=viewer, max_tokens=int(tokens),
                                                  seed=int(seed) + i, delta_prime=float(delta_prime)),
                                     key=f"smp_eps_{run_id}_{i}")
                    except DPCoreError as err:
                        st.error(str(err))
            else:
                try:
                    per_text = epsilon_per_text(store, run, point_spec(store, run, point) if point else spec,
                                                int(tokens))
                except DPCoreError as err:
                    st.error(str(err))
                    continue
                if per_text is not None:
                    st.caption(samplesview.per_text_caption(per_text))
                if generate_private:
                    try:
                        private_results[run_id] = private_texts(run)
                    except DPCoreError as err:
                        private_results[run_id] = [("refused", str(err))]
                made = private_results.get(run_id)
                if made is None:
                    st.caption("Press **Generate privately** to decode (it is charged to this model's ledger).")
                for i, item in enumerate(made or []):
                    if item[0] == "refused":
                        st.error(f"Refused: {item[1]}.", icon=":material/block:")
                    else:
                        show_decoded(item[1], item[2], key=f"smp_eps_{run_id}_{i}")
            ledger_panel(run)
if (problem := st.session_state.pop("_smp_budget_error", None)) is not None:
    st.error(problem)

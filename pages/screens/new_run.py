"""New run: configure, see what the choice means (σ, batch, predicted ε, odds), launch."""

import streamlit as st

from dpcore.config.presets import PRESETS
from dpcore.errors import DPCoreError
from dpcore.privacy.registry import mechanism_of
from dpcore.runs.preview import check, exact_ready, prepare_launch
from dpcore.views.charts import predicted_epsilon_figure
from dpcore.views.meaning import CENSUS_SENTENCE, preview_delta_sentence, preview_epsilon_sentence
from dpcore.views.urlstate import upload_id_of
from pages.ui import corpus_form, room_ui, run_form, session, sweep_form
from pages.ui.widgets import CHART_CONFIG, MONITOR_PAGE, not_dp_notice


@st.fragment(run_every=0.5)
def _await_exact(config) -> None:
    """Rerun the page once the exact PRV/PLD preview of ``config`` is computed (it showed a provisional one)."""
    if exact_ready(config):
        st.rerun()


store, owner = session.store(), session.owner()
messages = run_form.sync_from_url(store, owner)

st.title("New run")
st.caption("Choose the privacy and the training; the right-hand side shows what your choice means before you "
           "launch. The address bar always holds this configuration: copy it to share the exact setup.")

room = room_ui.form_hook(run_form)  # inside a workshop room: its presets only, its locked controls disabled
shown_presets = room_ui.presets(PRESETS)
st.markdown("**Presets**")
preset_cols = st.columns(len(shown_presets))
for col, preset in zip(preset_cols, shown_presets):
    col.button(preset.title, key=f"preset_{preset.name}", help=preset.description, width="stretch",
               on_click=run_form.apply_preset, args=(preset.name,))
for message in messages:
    st.warning(message, icon=":material/link_off:")

left, right = st.columns([5, 4], gap="large")
with left:
    slots: dict = {}
    with st.container(border=True):
        st.subheader("Data")
        slots.update(corpus_form.corpus_widgets(store, owner))
    with st.container(border=True):
        st.subheader("Privacy")
        slots.update(run_form.privacy_widgets())
    with st.container(border=True):
        st.subheader("Training")
        slots.update(run_form.training_widgets())
        with st.expander("Advanced: engine, tokens, sequence length, samples"):
            slots.update(run_form.advanced_widgets())

values = run_form.current_values()  # checked below, each problem at its control
config = run_form.current_config(values)  # always valid: a refused value keeps the form's base value
run_form.write_url(config)

# The check needs the real file behind an upload reference; the URL keeps the reference only.
resolved, resolved_values, corpus_problem = config, values, None
upload_id = upload_id_of(config.corpus)
if upload_id is not None:
    try:
        path = store.get_upload(owner, upload_id).path
        resolved, resolved_values = config.replace(corpus=path), {**values, "corpus": path}
    except DPCoreError:
        corpus_problem = "That uploaded file is gone; upload it again or choose the built-in corpus."
elif st.session_state.get("nr_source") == "upload":
    corpus_problem = "Upload a file first, or choose the built-in corpus."
if corpus_problem:
    checked, errors = None, {"corpus": corpus_problem}
else:
    with right, st.spinner("Calibrating the noise to your ε…"):
        checked = check(resolved_values)
    errors = dict(checked.errors)
if (problem := run_form.delta_text_problem()) is not None:
    errors["delta"] = problem
for field, message in errors.items():
    slot = slots.get(field)
    if slot is not None:
        slot.error(message, icon=":material/error:")

with right:
    st.subheader("What this run means")
    pv = checked.preview if checked else None
    launch = st.button("Launch run", type="primary", icon=":material/rocket_launch:", width="stretch",
                       disabled=bool(errors) or pv is None, key="launch")
    unplaced = {f: m for f, m in errors.items() if f not in slots}
    for message in unplaced.values():
        st.error(message, icon=":material/error:")
    if errors:
        st.warning("Fix the highlighted settings to see what this run means and to launch it.")
    elif pv is not None:
        not_dp_notice(config.mechanism)
        if said := preview_epsilon_sentence(pv, resolved):
            st.markdown(f"**ε** — {said}")
        cols = st.columns(3)
        mechanism = mechanism_of(config.mechanism)
        symbol = mechanism.noise_symbol or "σ"
        cols[0].metric(f"Noise {symbol}" + (f" ({mechanism.short_label} scale)" if symbol != "σ" else ""),
                       (("≤ " if pv.noise_bound else "") + f"{pv.noise_multiplier:.3g}") if pv.noise_multiplier
                       else "…" if pv.pending else "—",
                       help=(mechanism.noise_name or "The noise multiplier")
                            + ". Calibrated so the run spends at most the target ε."
                            + (f" For now the {pv.noise_bound.upper()} accountant's value, an upper bound: the "
                               f"{config.accountant.upper()} accountant computes the exact, lower σ."
                               if pv.noise_bound else ""))
        per_user = pv.unit == "user"
        cols[1].metric("Expected batch" + (" (users)" if per_user else ""), f"{pv.expected_batch_size:,}",
                       help=f"Expected batch size. Sampling rate q = {pv.sample_rate:.3g}: each "
                            f"{'user' if per_user else 'sequence'} joins each batch with this probability"
                            + (f", bringing at most {config.user_cap} of their sequences." if per_user else "."))
        cols[2].metric("Steps", f"{pv.steps:,}", help=f"≈ {pv.epochs:.2g} epochs over {pv.num_train:,} "
                                                     f"{'users' if per_user else 'sequences'}.")
        st.caption(f"{pv.data['num_train_examples']:,} training sequences from {pv.data['num_train_users']:,} users; "
                   f"{pv.data['num_val_users']:,} other users are held out for validation. Vocabulary: "
                   f"{pv.data['vocab_size']:,} tokens"
                   + (f", {pv.data['vocabulary']}: it does not depend on the text, so it costs no ε."
                      if pv.data.get("vocabulary") else "."))
        if pv.curve:
            st.plotly_chart(predicted_epsilon_figure(pv.curve, target=config.epsilon), key="nr_predicted_eps",
                            config=CHART_CONFIG)
        elif pv.pending:  # PRV / PLD: the exact σ and curve take seconds; the page reruns when they are ready
            st.caption(f"Computing the exact {symbol} and the predicted ε curve with the "
                       f"{config.accountant.upper()} accountant (a few seconds)… Launching now is fine: the run is "
                       "calibrated with that accountant either way.")
            _await_exact(resolved)
        if pv.curve or pv.pending:
            st.markdown(f"**δ** — {preview_delta_sentence(pv, resolved)}")
            st.caption(CENSUS_SENTENCE)
    st.caption("Training runs in a background process on the server: you can leave this page or close the tab.")
    sweep_form.sweep_controls(owner, resolved, disabled=bool(errors) or pv is None, allowed=room is None)
    if launch:
        prepare_launch(resolved, store.data_dir)  # the σ calibrated here, for the worker (checked there)
        try:
            run_id = room_ui.submit(owner, resolved)  # a room's rules are checked again on the server
        except DPCoreError as err:
            st.error(f"The run could not be started: {err}.", icon=":material/error:")
        else:
            st.switch_page(MONITOR_PAGE, query_params={"run": run_id})

"""Mechanisms: why Laplace DP-SGD trains so much worse than Gaussian at the same ε, and what ε protects.

The noise-to-signal ratio of both mechanisms, calibrated to the same (ε, δ) over the built-in
corpus's sampling rate and steps, against model size; the risk dial (what an attacker can achieve at
that ε, from each mechanism's own trade-off curve, and the noise a target attack success needs); group
privacy (a per-sequence ε for someone with k sequences, next to a per-person ε); then the visitor's
own finished runs' curves grouped by mechanism.
"""

import streamlit as st

from dpcore.config.presets import get_preset
from dpcore.errors import DPCoreError
from dpcore.privacy.mechanisms import comparison_sentences, noise_to_signal
from dpcore.views import charts
from dpcore.views.groupprivacy import group_rows, group_summary, group_table
from dpcore.views.meaning import NAIVE_WHY
from dpcore.views.riskview import risk_sentence_for, target_row
from dpcore.views.runview import curves_by_mechanism, mechanism_inputs
from pages.ui import session
from pages.ui.widgets import CHART_CONFIG, NEW_RUN_PAGE

PRESET = "workshop-eps3-person"
store = session.store()

st.title("Gaussian vs Laplace noise")
st.caption("Both mechanisms can promise the same ε. How much noise each must add to keep that promise is "
           "another matter, and it grows with the number of parameters.")


@st.cache_data(show_spinner="Calibrating both mechanisms…", max_entries=32)
def _rows(epsilon: float) -> tuple[dict, list]:
    inputs = mechanism_inputs(get_preset(PRESET).config)
    rows = noise_to_signal(epsilon, inputs["delta"], inputs["sample_rate"], inputs["steps"], inputs["sizes"])
    return inputs, rows


epsilon = st.select_slider("ε", options=[0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 10.0, 20.0], value=3.0, key="mech_eps")
try:
    inputs, rows = _rows(float(epsilon))
except DPCoreError as err:
    st.error(f"The comparison could not be computed: {err}")
    st.stop()
st.caption(f"Built-in corpus, workshop setup: sampling rate q = {inputs['sample_rate']:.3g}, {inputs['steps']} steps, "
           f"δ = {inputs['delta']:.1e}; the workshop model has {inputs['num_parameters']:,} parameters.")
st.plotly_chart(charts.noise_signal_figure(rows, highlight=inputs["num_parameters"]), key="mech_ratio",
                config=CHART_CONFIG)
st.markdown("\n".join(f"- {s}" for s in comparison_sentences(rows, float(epsilon))))

st.subheader("What can an attacker achieve at this ε?")
st.caption("Each mechanism's own trade-off curve, for these very q, steps and noise: the most members any "
           "membership attack can catch while wrongly accusing few non-members. Computed from the privacy-loss "
           "distribution each time (Dong, Roth & Su 2019), never looked up.")


@st.cache_data(show_spinner="Computing both trade-off curves…", max_entries=64)
def _risk(epsilon: float, sigma: float, lam: float, fpr: float) -> dict[str, str | None]:
    q, steps, delta = inputs["sample_rate"], inputs["steps"], inputs["delta"]
    return {"gaussian": risk_sentence_for("gaussian", sigma, q, steps, delta, epsilon, fpr),
            "laplace": risk_sentence_for("laplace", lam, q, steps, delta, epsilon, fpr)}


@st.cache_data(show_spinner="Finding the noise for that attack success…", max_entries=64)
def _reverse(target: float, fpr: float) -> list[dict]:
    q, steps, delta = inputs["sample_rate"], inputs["steps"], inputs["delta"]
    return [target_row(m, q, steps, delta, target, fpr) for m in ("gaussian", "laplace")]


fpr = st.select_slider("Non-members wrongly accused", options=[0.001, 0.01, 0.05, 0.1], value=0.01,
                       format_func=lambda a: f"{a * 100:g} in 100", key="mech_fpr")
if rows:
    sentences = _risk(float(epsilon), rows[0].gaussian_sigma, rows[0].laplace_lambda, float(fpr))
    st.markdown("\n".join(f"- **{m.title()}** (noise {n:.3g}): {sentences[m]}" for m, n in
                          (("gaussian", rows[0].gaussian_sigma), ("laplace", rows[0].laplace_lambda))
                          if sentences[m]))
target = st.select_slider("Or set the attack success to stay under (members caught)",
                          options=[0.02, 0.05, 0.1, 0.2, 0.5], value=0.05,
                          format_func=lambda t: f"{t * 100:g} in 100", key="mech_target")
if target > fpr:
    try:
        st.dataframe(_reverse(float(target), float(fpr)), hide_index=True, key="mech_reverse")
    except DPCoreError as err:
        st.warning(f"No noise found for that target: {err}")
else:
    st.caption("An attack success at or below the false accusations is random guessing: any noise gives it.")

st.subheader("Per sequence or per person?")
st.caption("A run's ε protects its privacy unit. Per sequence, someone who wrote many messages is protected only as "
           "a group (the standard group-privacy bound below); per person, everything one person wrote counts as one.")
group_eps = float(epsilon)
st.markdown(group_summary(group_eps, inputs["delta"]))
st.dataframe(group_table(group_rows(group_eps, inputs["delta"])), hide_index=True, key="mech_groups")

st.subheader("Your runs by mechanism")
groups = curves_by_mechanism(store, session.my_runs())
if groups:
    st.plotly_chart(charts.mechanism_curves_figure(groups), key="mech_curves", config=CHART_CONFIG)
    if "naive" in groups:
        st.error(f"**Naive runs: no privacy guarantee.** {NAIVE_WHY}", icon=":material/warning:")
    if not {"gaussian", "laplace"} <= set(groups):
        st.info("To see the gap in training, launch a Gaussian and a Laplace run at the same ε "
                "(the **Laplace, ε = 8** preset beside **ε = 8**).")
else:
    st.info("No finished runs yet. Launch a Gaussian and a Laplace run at the same ε (the **ε = 8** and "
            "**Laplace, ε = 8** presets) to see their curves here.")
st.page_link(NEW_RUN_PAGE, label="Configure a run", icon=":material/tune:")

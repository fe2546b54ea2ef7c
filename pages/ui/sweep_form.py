"""New run's "sweep ε" control: the form's settings at several ε (plus a baseline), launched in one click.

Every other setting is the form's, so the runs differ in ε alone; Compare then opens on them and draws
the privacy–utility frontier as they finish (:mod:`dpcore.runs.sweeps` does the work).
"""

from __future__ import annotations

import streamlit as st

from dpcore.config import PRIVATE_MECHANISMS, TrainConfig
from dpcore.errors import DPCoreError
from dpcore.runs.sweeps import MAX_SWEEP_VALUES, parse_epsilons, submit_sweep
from pages.ui import session
from pages.ui.widgets import COMPARE_PAGE

#: Three ε values and the baseline: four runs, within the default per-visitor limit of five.
DEFAULT_EPSILONS = "1, 3, 8"


def sweep_controls(owner: str, config: TrainConfig, *, disabled: bool, allowed: bool = True) -> None:
    """An expander under the Launch button; launching switches to Compare on the sweep's runs."""
    with st.expander("Sweep ε: the whole frontier in one go", icon=":material/stacked_line_chart:"):
        if not allowed:
            st.caption("Sweeps are not available inside a workshop room: launch the room's runs one by one.")
            return
        if config.mechanism not in PRIVATE_MECHANISMS:
            st.caption("Choose a private mechanism (Gaussian or Laplace) above to sweep ε.")
            return
        text = st.text_input("ε values", value=DEFAULT_EPSILONS, key="nr_sweep_eps",
                             help=f"Up to {MAX_SWEEP_VALUES} target ε values, separated by commas. Each becomes one "
                                  "run with every other setting as above.")
        baseline = st.checkbox("Add the same run without privacy (the baseline)", value=True, key="nr_sweep_base",
                               help="Trained without any privacy: the frontier's reference line.")
        try:
            values, problem = parse_epsilons(text), None
        except DPCoreError as err:
            values, problem = [], str(err)
        if problem:
            st.error(problem, icon=":material/error:")
        count = len(values) + int(baseline)
        st.caption(f"{count} runs sharing every other setting. Compare opens on them and draws the frontier as "
                   "each one finishes.")
        if st.button(f"Launch sweep ({count} runs)", key="nr_sweep_launch", icon=":material/rocket_launch:",
                     disabled=disabled or problem is not None, width="stretch"):
            try:
                sweep = submit_sweep(session.executor(), owner, config, values, with_baseline=baseline)
            except DPCoreError as err:
                st.error(f"The sweep could not be started: {err}.", icon=":material/error:")
            else:
                st.switch_page(COMPARE_PAGE, query_params={"runs": ",".join(sweep.run_ids), "sweep": sweep.id})

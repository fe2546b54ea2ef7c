"""The New run form: widgets ⇄ TrainConfig ⇄ URL query string.

The form's state lives in ``st.session_state`` under ``nr_*`` keys (widgets persist for the whole
session, so a visit to the monitor and back keeps the form). The URL is kept in step after every
change (:func:`write_url`), so the address bar always reproduces the form; an address that differs
from what the form last wrote (a shared link, a preset link, an edited URL) is loaded into the form
(:func:`sync_from_url`), with one message per value that could not be used. An address that names
no setting (the menu's bare /new_run, or the ``?run=<id>`` that Launch's ``st.switch_page`` leaves
in the history, where Back from the monitor lands) keeps the form and gets its address back.

Widgets are created without ``value=`` arguments: their state is set here before they are drawn,
which is the only way Streamlit lets code (presets, links) change a widget.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import streamlit as st

from dpcore.config import DEFAULT_DELTA_RULE, TrainConfig, allowed_choices, field_problem, field_spec, form_range
from dpcore.config.presets import INIT_LABELS, MODEL_SIZES, epsilon_choices, get_preset, model_size_name
from dpcore.errors import ConfigError
from dpcore.privacy.registry import mechanism_of
from dpcore.runs.store import RunStore, UploadNotFound
from dpcore.views.meaning import UNIT_SENTENCES, USER_CAP_HELP, accountant_choice_label, mechanism_label, unit_label
from dpcore.views.urlstate import (
    PRESET_PARAM,
    RESERVED,
    config_to_params,
    params_to_config,
    upload_id_of,
    upload_ref,
)

DEFAULT_PRESET = "workshop-eps3-person"
_QS_KEY = "_nr_written_qs"  # the query string this form last wrote
_BASE_KEY = "_nr_base"  # the config the form started from (fields without a widget come from it)
_PRESET_KEY = "_nr_preset"
_MSGS_KEY = "_nr_url_messages"
_LOCKED_KEY = "_nr_locked"  # widgets a workshop room keeps at the preset (see lock)
_OTHER_PAGES_PARAMS = RESERVED - {PRESET_PARAM}  # run, runs: addresses of the monitor, compare...
NO_USER_COLUMN = "(no user column)"
PERSIST = "session"

ACCOUNTANT_HELP = (
    "How ε is added up over the steps. RDP: a valid upper bound, fast. PRV and PLD: tighter (smaller ε for "
    "the same noise), slower to compute. Laplace can only be accounted with PLD."
)


# ---------------------------------------------------------------------------- state <-> config
def _state_from_config(config: TrainConfig) -> dict[str, Any]:
    upload_id = upload_id_of(config.corpus)
    return {
        "nr_source": "upload" if upload_id else "builtin",
        "nr_upload": upload_id,
        "nr_text_col": config.text_column,
        "nr_user_col": config.user_column or NO_USER_COLUMN,
        "nr_no_privacy": config.mechanism == "none",
        "nr_mechanism": config.mechanism if config.mechanism != "none" else "gaussian",
        "nr_epsilon": float(config.epsilon if config.epsilon is not None else 8.0),
        "nr_delta_custom": config.delta is not None,
        "nr_delta": f"{config.delta:g}" if config.delta is not None else "",
        "nr_clip": float(config.clip),
        "nr_people": int(config.builtin_users),
        "nr_init": config.init,
        "nr_unit": config.unit,
        "nr_user_cap": int(config.user_cap),
        "nr_accountant": config.accountant,
        "nr_length": "epochs" if config.epochs is not None else "steps",
        "nr_steps": int(config.max_steps if config.max_steps is not None else 300),
        "nr_epochs": float(config.epochs if config.epochs is not None else 1.0),
        "nr_batch": int(config.batch_size),
        "nr_lr": float(config.lr),
        "nr_model": (config.embed_dim, config.hidden_size),
        "nr_seed": int(config.seed),
        "nr_device": config.device,
        "nr_engine": config.engine,
        "nr_secure_noise": bool(config.secure_noise),
        "nr_tokenizer": config.tokenizer,
        "nr_seq_len": int(config.seq_len),
        "nr_layers": int(config.num_layers),
        "nr_eval_every": int(config.eval_every),
        "nr_num_samples": int(config.num_samples),
        "nr_prompt": config.sample_prompt,
        "nr_audit": bool(config.audit),
    }


def load_config(config: TrainConfig, preset: str | None) -> None:
    """Put ``config`` into the form (before any widget is drawn)."""
    st.session_state[_BASE_KEY] = config
    st.session_state[_PRESET_KEY] = preset
    for key, value in _state_from_config(config).items():
        st.session_state[key] = value


def apply_preset(name: str) -> None:
    """Button callback: fill the form with a preset."""
    load_config(get_preset(name).config, name)
    st.session_state[_MSGS_KEY] = []


def lock(keys: Iterable[str]) -> None:
    """Keep the widgets ``keys`` at the preset's values and draw them disabled (a workshop room's locks).

    Call before the widgets are drawn, on every run; the server checks the launched config again.
    """
    keys = frozenset(keys)
    state = _state_from_config(st.session_state.get(_BASE_KEY, TrainConfig()))
    for key in keys & state.keys():
        st.session_state[key] = state[key]
    st.session_state[_LOCKED_KEY] = keys


def unlock() -> None:
    st.session_state.pop(_LOCKED_KEY, None)


def form_keys() -> frozenset[str]:
    """The session-state keys of every form setting (``nr_*``)."""
    return frozenset(_state_from_config(TrainConfig()))


def current_preset() -> str | None:
    """The preset the form started from (None: a link without one)."""
    return st.session_state.get(_PRESET_KEY)


def locked(key: str) -> bool:
    """Whether a workshop room keeps the widget ``key`` at its preset (draw it disabled)."""
    return key in st.session_state.get(_LOCKED_KEY, ())


def current_config(values: dict[str, Any] | None = None) -> TrainConfig:
    """The config the widgets describe (``values``: :func:`current_values`); the corpus is ``builtin`` or
    ``upload:<id>``.

    Always a valid config: a field whose value is refused keeps the form's base value, and values that do
    not fit together give the base (:func:`dpcore.runs.preview.check` of :func:`current_values` says why).
    """
    base: TrainConfig = st.session_state.get(_BASE_KEY, TrainConfig())
    values = current_values() if values is None else values
    kept = {k: (getattr(base, k) if field_problem(k, v, type(base)) else v) for k, v in values.items()}
    try:
        return type(base)(**kept)
    except ConfigError:
        return base


def current_values() -> dict[str, Any]:
    """The field values the widgets describe, the config's cross-field rules applied (Laplace: PLD and Opacus);
    not yet checked, so a refused value can be reported at its control."""
    s = st.session_state
    base: TrainConfig = s.get(_BASE_KEY, TrainConfig())
    upload = s.get("nr_upload") if s.get("nr_source") == "upload" else None
    mechanism = "none" if s["nr_no_privacy"] else s["nr_mechanism"]
    delta = _parse_delta(s["nr_delta"]) if s["nr_delta_custom"] and mechanism != "none" else None
    embed, hidden = s["nr_model"]
    user_col = s.get("nr_user_col")
    return type(base).repair_values(base.changed(
        corpus=upload_ref(upload) if upload else "builtin",
        text_column=s.get("nr_text_col") if upload else None,
        user_column=user_col if upload and user_col and user_col != NO_USER_COLUMN else None,
        mechanism=mechanism,
        epsilon=float(s["nr_epsilon"]),
        delta=None if isinstance(delta, str) else delta,  # unparsable text: see delta_text_problem
        clip=float(s["nr_clip"]),
        builtin_users=int(s.get("nr_people", base.builtin_users)),
        init=s.get("nr_init", base.init),
        unit=s.get("nr_unit", base.unit),
        user_cap=int(s.get("nr_user_cap", base.user_cap)),
        accountant=s["nr_accountant"],
        engine=s["nr_engine"],
        secure_noise=bool(s.get("nr_secure_noise", base.secure_noise)),
        max_steps=int(s["nr_steps"]) if s["nr_length"] == "steps" else None,
        epochs=float(s["nr_epochs"]) if s["nr_length"] == "epochs" else None,
        batch_size=int(s["nr_batch"]),
        lr=float(s["nr_lr"]),
        embed_dim=int(embed),
        hidden_size=int(hidden),
        seed=int(s["nr_seed"]),
        device=s["nr_device"],
        tokenizer=s["nr_tokenizer"],
        seq_len=int(s["nr_seq_len"]),
        num_layers=int(s["nr_layers"]),
        eval_every=int(s["nr_eval_every"]),
        num_samples=int(s["nr_num_samples"]),
        sample_prompt=s["nr_prompt"],
        audit=bool(s.get("nr_audit", False)),
    ))[0]


def _parse_delta(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def delta_text_problem() -> str | None:
    """A message when the custom δ box holds something that is not a number."""
    s = st.session_state
    if s.get("nr_delta_custom") and not s.get("nr_no_privacy"):
        if isinstance(_parse_delta(s.get("nr_delta", "")), str):
            return "Write δ as a number, for example 1e-6."
    return None


# ---------------------------------------------------------------------------- URL
def sync_from_url(store: RunStore, owner: str) -> list[str]:
    """Load the URL into the form when it is not the one the form wrote; returns messages to show."""
    params = st.query_params.to_dict()
    written = st.session_state.get(_QS_KEY)
    have_form = "nr_source" in st.session_state
    if params == written and have_form:
        return st.session_state.get(_MSGS_KEY, [])
    if not _names_a_setting(params):
        if have_form:  # arrived through the menu, or Back from the monitor: keep the form, write it back
            return []
        params = {"preset": DEFAULT_PRESET}
    parsed = params_to_config(params)
    messages = list(parsed.messages)
    config = parsed.config
    upload_id = upload_id_of(config.corpus)
    if upload_id is not None:
        try:
            store.get_upload(owner, upload_id)
        except UploadNotFound:
            messages.append("The link names an uploaded file that belongs to another browser, so the built-in "
                            "corpus is used instead.")
            config = config.replace(corpus="builtin", text_column=None, user_column=None)
    load_config(config, parsed.preset)
    st.session_state[_MSGS_KEY] = messages
    st.session_state[_QS_KEY] = params
    return messages


def _names_a_setting(params: dict[str, Any]) -> bool:
    """Whether the query string says anything about the form (other pages' ``run``/``runs`` do not).

    ``st.switch_page(MONITOR_PAGE, query_params={"run": ...})`` sets the monitor's query string while
    the browser is still on /new_run, so the browser's history holds ``/new_run?run=<id>`` between the
    launched form and the monitor: Back from the monitor lands there. That address describes no
    form, so it must not reset the one the visitor launched (write_url then restores its address).
    """
    return any(key not in _OTHER_PAGES_PARAMS for key in params)


def write_url(config: TrainConfig) -> None:
    """Make the address bar reproduce the form (only the fields that differ from the preset)."""
    params = config_to_params(config, st.session_state.get(_PRESET_KEY))
    if params != st.query_params.to_dict():
        st.query_params.from_dict(params)
    st.session_state[_QS_KEY] = params


# ---------------------------------------------------------------------------- widgets
def _on_mechanism_change() -> None:
    """Show what the config's rules make of the new mechanism (Laplace: the PLD accountant, Opacus)."""
    s = st.session_state
    config = TrainConfig().replace_consistent(mechanism=s["nr_mechanism"], accountant=s["nr_accountant"],
                                              engine=s["nr_engine"])
    s["nr_accountant"], s["nr_engine"] = config.accountant, config.engine


def _number_range(name: str) -> dict[str, Any]:
    """``min_value``/``max_value`` of a number input: the config field's own range."""
    lo, hi = form_range(name)
    return {"min_value": lo, "max_value": hi}


def _on_delta_custom_change() -> None:
    if st.session_state.get("nr_delta_custom") and not st.session_state.get("nr_delta"):
        st.session_state["nr_delta"] = "1e-06"  # a starting point well below 1/N for any usable corpus


def privacy_widgets() -> dict[str, Any]:
    """The privacy controls; returns placeholders for messages at each control."""
    slots: dict[str, Any] = {}
    s = st.session_state
    st.toggle("No privacy (baseline)", key="nr_no_privacy", disabled=locked("nr_no_privacy"), persist_state=PERSIST,
              help="Train the same model without any privacy, as the reference the private runs are compared with.")
    if s["nr_no_privacy"]:
        return slots
    st.selectbox(
        "Mechanism", [m for m in allowed_choices("mechanism") if m != "none"], key="nr_mechanism",
        disabled=locked("nr_mechanism"),
        format_func=mechanism_label, on_change=_on_mechanism_change, persist_state=PERSIST,
        help="Gaussian: DP-SGD as in Opacus (L2 clipping). Laplace: L1 clipping and Laplace noise, a pure-ε "
             "mechanism that needs far more noise. Naive: the blog-post recipe, kept as a counterexample.",
    )
    naive = s["nr_mechanism"] == "naive"
    st.select_slider(
        "Noise scale ε the naive recipe claims (no guarantee)" if naive else "Target ε (privacy budget)",
        options=epsilon_choices(s.get("nr_epsilon")), key="nr_epsilon",
        disabled=locked("nr_epsilon"), persist_state=PERSIST,
        format_func=lambda v: f"{v:g}",
        help="Smaller ε = stronger privacy = more noise. The noise is calibrated so that the whole run spends "
             "at most this ε. Log scale from 0.1 to 50.",
    )
    slots["epsilon"] = st.empty()
    if naive:
        return slots
    st.segmented_control("Who is protected (privacy unit)", list(allowed_choices("unit")), key="nr_unit",
                         required=True, persist_state=PERSIST, format_func=unit_label, disabled=locked("nr_unit"),
                         help=" ".join(UNIT_SENTENCES.values()))
    st.caption(UNIT_SENTENCES[s["nr_unit"]])
    if s["nr_unit"] == "user":
        st.number_input("Sequences per user per step (k)", **_number_range("user_cap"), step=1, key="nr_user_cap",
                        disabled=locked("nr_user_cap"), persist_state=PERSIST, help=USER_CAP_HELP)
        slots["user_cap"] = st.empty()
    st.toggle("Choose δ myself", key="nr_delta_custom",
              disabled=locked("nr_delta_custom"), persist_state=PERSIST, on_change=_on_delta_custom_change,
              help=f"δ is the small chance that the promise fails. The default, {DEFAULT_DELTA_RULE}, is at most a "
                   "tenth of 1/N, far below it as it must be.")
    if s["nr_delta_custom"]:
        st.text_input("δ", key="nr_delta", disabled=locked("nr_delta"), persist_state=PERSIST, placeholder="1e-6")
    slots["delta"] = st.empty()
    st.number_input(
        "Clipping norm C", **_number_range("clip"), step=0.1, key="nr_clip",
        disabled=locked("nr_clip"), persist_state=PERSIST,
        help="Each example's gradient is scaled down to at most this norm, which bounds how much one example can "
             "move the model; the noise is proportional to C. Watch the clipping chart: if almost every example is "
             "clipped, C may be too small.",
    )
    slots["clip"] = st.empty()
    mechanism = mechanism_of(s["nr_mechanism"])
    accountants = list(allowed_choices("accountant", mechanism.name))
    st.selectbox("Accountant", accountants, key="nr_accountant",
                 disabled=len(accountants) == 1 or locked("nr_accountant"), persist_state=PERSIST,
                 help=ACCOUNTANT_HELP, format_func=accountant_choice_label)
    if mechanism.accountants:  # the mechanism's own rule (dpcore.privacy.registry), e.g. Laplace: PLD only
        st.caption(f"{mechanism.short_label} is accounted with {mechanism.accountants_in_words()}: "
                   f"{mechanism.accountant_why}.")
    return slots


def training_widgets() -> dict[str, Any]:
    slots: dict[str, Any] = {}
    s = st.session_state
    st.segmented_control("Training length", ["steps", "epochs"], key="nr_length",
                         disabled=locked("nr_length"), required=True,
                         persist_state=PERSIST, help="One epoch = each sequence is seen once on average.")
    if s["nr_length"] == "steps":
        st.number_input("Steps", **_number_range("max_steps"), step=10, key="nr_steps",
                        disabled=locked("nr_steps"), persist_state=PERSIST)
        slots["max_steps"] = st.empty()
    else:
        st.number_input("Epochs", **_number_range("epochs"), step=0.5, key="nr_epochs",
                        disabled=locked("nr_epochs"), persist_state=PERSIST)
        slots["epochs"] = st.empty()
    st.number_input(
        "Expected batch size", **_number_range("batch_size"), step=32, key="nr_batch",
        disabled=locked("nr_batch"), persist_state=PERSIST,
        help="Batches are Poisson-sampled: each sequence joins each batch with probability q = 1/ceil(N/B), so the "
             "real batch size varies around this. Larger batches average out more of the noise.",
    )
    slots["batch_size"] = st.empty()
    st.number_input("Learning rate", **_number_range("lr"), step=0.005, format="%.4f", key="nr_lr",
                    disabled=locked("nr_lr"),
                    persist_state=PERSIST, help="Adam's step size.")
    slots["lr"] = st.empty()
    sizes = [tuple(v) for v in MODEL_SIZES.values()]
    if tuple(s["nr_model"]) not in sizes:
        sizes.append(tuple(s["nr_model"]))
    s["nr_model"] = tuple(s["nr_model"])
    st.selectbox("Model size (embedding / GRU hidden units)", sizes, key="nr_model",
                 disabled=locked("nr_model"), persist_state=PERSIST,
                 format_func=lambda d: model_size_name(*d),
                 help="Bigger models learn more but take longer per step.")
    cols = st.columns(2)
    with cols[0]:
        st.number_input("Seed", **_number_range("seed"), step=1, key="nr_seed",
                        disabled=locked("nr_seed"), persist_state=PERSIST,
                        help="Fixes the initial weights, the train/validation split and dropout: a run without "
                             "privacy is reproducible exactly (on CPU). A private run's noise and batch sampling "
                             "are secret (drawn from the operating system's random source, never stored), so its "
                             "curve is reproducible only up to its noise.")
    with cols[1]:
        st.selectbox("Device", list(allowed_choices("device")), key="nr_device",
                     disabled=locked("nr_device"), persist_state=PERSIST,
                     help="auto: a GPU if the server has one, else the CPU. The workshop presets use the CPU so "
                          "every laptop gets the same numbers.")
        slots["device"] = st.empty()
    st.radio("Start from", list(allowed_choices("init")), key="nr_init", horizontal=True, persist_state=PERSIST,
             format_func=lambda v: INIT_LABELS.get(v, v), disabled=locked("nr_init"),
             help="The public model is trained once, without privacy, on public text only (for the built-in corpus: "
                  "other synthetic people, no canaries; for your own text: the Python documentation's prose). It "
                  "never sees the training text, so it costs no ε, and far fewer private steps are needed from it. "
                  "Built on first use (a few minutes) and reused.")
    if s["nr_init"] == "public":
        scale = s.get(_BASE_KEY, TrainConfig()).public_lr_scale
        st.caption(f"From the public model the optimizer steps at the learning rate × {scale:g} = "
                   f"{float(s['nr_lr']) * scale:.4g}: fine-tuning with large noisy steps would undo the public start.")
    st.checkbox("Audit privacy (one-run ε lower bound, canary exposure, membership inference; ~1 min extra)",
                key="nr_audit", disabled=locked("nr_audit"), persist_state=PERSIST,
                help="Measures what an attacker could actually learn from the trained model. 1,000 synthetic canary "
                     "sequences are each added to training by a secret coin flip; afterwards the audit guesses which "
                     "were in and turns its hits into a lower bound on ε (Steinke, Nasr and Jagielski 2023). It also "
                     "ranks the built-in corpus's planted secrets (exposure) and tries to tell training users from "
                     "held-out ones. Shown on the Run report.")
    return slots


def advanced_widgets() -> dict[str, Any]:
    slots: dict[str, Any] = {}
    s = st.session_state
    engines = list(allowed_choices("engine", "none" if s["nr_no_privacy"] else s["nr_mechanism"]))
    st.selectbox("Engine", engines, key="nr_engine", persist_state=PERSIST,
                 disabled=len(engines) == 1 or locked("nr_engine"),
                 format_func=lambda e: {"fast": "fast (ghost clipping, Gaussian only)", "opacus": "Opacus"}[e],
                 help="Both compute the same DP-SGD steps; the fast engine avoids materialising per-example "
                      "gradients.")
    st.checkbox("Secure noise (operating system's CSPRNG)", key="nr_secure_noise", persist_state=PERSIST,
                disabled=s["nr_no_privacy"] or locked("nr_secure_noise"),
                help=f"On: {field_spec('secure_noise').help}. Off: a torch generator seeded with 63 secret bits, "
                     "safe against replay but not a cryptographic generator. Either way the ε is proved for "
                     "ideal real-valued noise.")
    cols = st.columns(2)
    with cols[0]:
        st.selectbox("Tokens", list(allowed_choices("tokenizer")), key="nr_tokenizer",
                     disabled=locked("nr_tokenizer"), persist_state=PERSIST,
                     format_func=lambda t: {"char": "characters", "word": "words"}[t])
        st.number_input("Sequence length", **_number_range("seq_len"), step=8, key="nr_seq_len",
                        disabled=locked("nr_seq_len"),
                        persist_state=PERSIST, help="Tokens per training sequence: the unit of privacy.")
        slots["seq_len"] = st.empty()
        st.number_input("GRU layers", **_number_range("num_layers"), step=1, key="nr_layers",
                        disabled=locked("nr_layers"), persist_state=PERSIST)
    with cols[1]:
        st.number_input("Evaluate every … steps", **_number_range("eval_every"), step=10, key="nr_eval_every",
                        disabled=locked("nr_eval_every"),
                        persist_state=PERSIST)
        slots["eval_every"] = st.empty()
        st.number_input("Samples per evaluation", **_number_range("num_samples"), step=1, key="nr_num_samples",
                        disabled=locked("nr_num_samples"),
                        persist_state=PERSIST)
        st.text_input("Sample prompt", key="nr_prompt", disabled=locked("nr_prompt"), persist_state=PERSIST,
                      help="Text the samples start from (empty: a new message).")
    return slots

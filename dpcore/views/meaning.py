"""What a run means, in words: one place for every label and sentence the pages and reports use.

Labels of mechanisms and accountants, whether a run carries a guarantee, its ε spent, its short
name, and the odds wording for ε and δ ("can change the odds of any outcome by at most e^ε ≈ 20×"),
which research on explaining DP found people understand better than formulas. Pure functions of
stored runs and numbers: no streamlit, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dpcore.config import DEFAULT_DELTA_RULE, LEGACY_DEFAULTS, PRIVATE_MECHANISMS
from dpcore.data.public import BUILTIN_DESCRIPTION, TEXT_DESCRIPTION
from dpcore.privacy.registry import Guarantee, accountant_of, accountants, mechanism_of, mechanisms
from dpcore.runs.store import Run
from dpcore.training.result import RunResult

#: Each mechanism's and accountant's name in words, from the registry (dpcore.privacy.registry), where a
#: new one brings its own labels.
MECHANISM_LABELS = {m.name: m.label for m in mechanisms()}
#: Short names for chart legends.
MECHANISM_SHORT_LABELS = {m.name: m.short_label for m in mechanisms()}
ACCOUNTANT_LABELS = {a.name: a.label for a in accountants()}


def mechanism_label(mechanism: str) -> str:
    """The mechanism in words ("Gaussian DP-SGD"); an unknown one raises (ConfigError)."""
    return mechanism_of(mechanism).label


def accountant_choice_label(accountant: str) -> str:
    """An accountant as a form offers it: "RDP (fast, looser)", "PLD (tight; the only one for Laplace)"."""
    acct = accountant_of(accountant)
    only = [m.short_label for m in mechanisms() if m.accountants == (acct.name,)]
    hint = acct.hint + (f"; the only one for {', '.join(only)}" if only else "")
    return f"{acct.short_label} ({hint})"


def noise_symbol(mechanism: str) -> str:
    """The letter of a mechanism's noise multiplier: σ (Gaussian), λ (Laplace)."""
    return mechanism_of(mechanism).noise_symbol or "σ"


#: The privacy unit in a few words, and what each protects in one plain sentence (the form, reports).
UNIT_LABELS = {"user": "a person (user-level)", "sequence": "a training sequence (example-level)"}
UNIT_SENTENCES = {
    "user": "Per person: any one person, with all of their messages, can change the odds of any outcome by at "
            "most e^ε. Users are sampled, and each user's whole contribution is clipped as one.",
    "sequence": "Per sequence: any one training sequence (a window of one message) can change the odds by at most "
                "e^ε; someone who wrote k sequences is protected only at about k·ε (group privacy).",
}
USER_CAP_HELP = ("At most k of a sampled user's sequences (chosen at random each time) count in one step; their "
                 "gradients are averaged and the average is clipped to C. A larger k uses more of each person's "
                 "text per step and costs more compute; it does not change ε.")


def unit_label(unit: str) -> str:
    return UNIT_LABELS.get(unit, unit)


def unit_of(config: Mapping[str, Any]) -> str | None:
    """"user" or "sequence" for a private run's config (configs from before units: "sequence"); else None."""
    if config.get("mechanism") not in PRIVATE_MECHANISMS:
        return None
    return str(config.get("unit", "sequence"))


def guarantee_of(run: Run) -> str:
    """The run's :class:`~dpcore.privacy.registry.Guarantee` (a ``str`` enum): :attr:`Run.guarantee`."""
    return run.guarantee


def corpus_label(config: Mapping[str, Any]) -> str:
    """The corpus in words; an upload is named by its file name, never its server path."""
    corpus = str(config.get("corpus", "builtin"))
    if corpus == "builtin":
        people = int(config.get("builtin_users", LEGACY_DEFAULTS["builtin_users"]))  # older runs: 400
        return f"the built-in corpus ({people:,} people's synthetic chat messages)"
    return f"an uploaded file ({Path(corpus).name})"


def public_start_sentence(config: Mapping[str, Any], result: RunResult | None = None) -> str:
    """What a run that started from the public model took from public text ("" for a random start).

    The public model is trained without privacy on public text only (dpcore.training.pretrain), so it costs
    no ε; the sentence says which text, from the run's result when it has one.
    """
    if config.get("init") != "public":
        return ""
    public = (result.public_model if result is not None else None) or {}
    what = public.get("corpus") or (BUILTIN_DESCRIPTION if str(config.get("corpus", "builtin")) == "builtin"
                                    else TEXT_DESCRIPTION)
    return (f"Training started from a public model, pre-trained without privacy on public text only: {what}. "
            "It never saw this run's data, so it costs no ε; ε covers the private training that followed.")


def run_epsilon(run: Run, latest_epsilon: float | None = None) -> float | None:
    """ε the run has spent: the result's for a finished run, else the latest metric's; None if not DP."""
    if guarantee_of(run) != "dp":
        return None
    if run.result is not None and run.result.epsilon is not None:
        return float(run.result.epsilon)
    return latest_epsilon


def corpus_name(config: Mapping[str, Any]) -> str:
    """The corpus in a word or two: "built-in", or the upload's file name (never its server path)."""
    corpus = str(config.get("corpus", "builtin"))
    return "built-in" if corpus == "builtin" else Path(corpus).name


def expected_batch(run: Run) -> int | None:
    """The expected batch size q·N the run trained with (one name, one value everywhere).

    The form asks for B; Poisson sampling at q = 1/ceil(N/B) then expects q·N sequences per batch,
    slightly fewer than B: that number is what the run used, so it is what every page shows.
    """
    if run.result is not None and run.result.expected_batch_size is not None:  # the trainer's RunInfo has none
        return int(run.result.expected_batch_size)
    value = run.config.get("batch_size")
    return int(value) if value is not None else None


def run_label(run: Run) -> str:
    """A short name for legends and pickers: "ε=3 Gaussian · built-in · 1a2b3c", "no privacy · notes.txt · 1a2b3c"."""
    cfg = run.config
    mech = cfg.get("mechanism")
    if mech in PRIVATE_MECHANISMS:
        eps = (run.result.target_epsilon if run.result is not None else None) or cfg.get("epsilon")
        head = f"ε={eps:g} {mech.capitalize()}" if eps is not None else f"σ={cfg.get('noise_multiplier')} {mech}"
        head += " per person" if unit_of(cfg) == "user" else " per sequence"
    elif mechanism_of(str(mech)).guarantee is Guarantee.NO_GUARANTEE:
        head = f"{mech} (no guarantee)"
    else:
        head = "no privacy"
    return f"{head} · {corpus_name(cfg)} · {run.id[:6]}"


#: Real-world reference points for ε (from users.md).
#: The 2020 US Census redistricting data (P.L. 94-171): zCDP budgets converted at δ = 10⁻¹⁰ give ε = 17.14
#: for the person-level tables and 2.47 for housing units, 19.61 in total. Source: U.S. Census Bureau,
#: "Disclosure Avoidance for the 2020 Census: An Introduction" (2021) and its privacy-loss budget allocation
#: (June 2021); users.md quotes the same figures.
CENSUS_SENTENCE = (
    "For reference: the 2020 US Census redistricting data used ε = 17.14 for its person-level tables (2.47 for "
    "housing units, 19.61 in total; U.S. Census Bureau, 2021), and many deployed systems use ε between 1 and 10."
)
NAIVE_WHY = (
    "The naive recipe adds noise to the batch's average gradient with an assumed sensitivity and no "
    "per-example clipping: one example can move that gradient arbitrarily far, so no ε holds."
)
NONE_WHY = "Nothing limits what the model memorises: it can reproduce rare training text word for word."
#: The sentence every run without a guarantee carries, by what it (does not) promise.
GUARANTEE_WHY = {Guarantee.NONE: NONE_WHY, Guarantee.NO_GUARANTEE: NAIVE_WHY}


# ------------------------------------------------------------------------------- wording
def odds_multiplier(epsilon: float) -> str:
    """e^ε written for people: 2.7, 20, 2,981, or 5.2 × 10^21 for huge values."""
    value = math.exp(min(epsilon, 700.0))
    if value < 10:
        return f"{value:.1f}"
    if value < 1e6:
        return f"{value:,.0f}"
    exponent = int(math.floor(math.log10(value)))
    return f"{value / 10**exponent:.1f} × 10^{exponent}"


def unit_phrase(seq_len: int | None = None, tokenizer: str = "char", privacy_unit: str | None = None) -> str:
    """Who the promise is about, in words: one training sequence (example-level) unless told otherwise.

    Only a user-level run's promise is about a person; an example-level run's is about one snippet of
    text, and saying "one person" there would overclaim. ``privacy_unit`` is "user", "sequence", or
    the phrase a run reported (``RunResult.privacy_unit``).
    """
    if privacy_unit and "user" in privacy_unit and "example" not in privacy_unit:
        return "any one person, with all of their messages,"
    if seq_len:
        what = "character" if tokenizer == "char" else "word"
        return f"any one training sequence (a {seq_len}-{what} snippet of someone's text)"
    return "any one training sequence (a short snippet of someone's text)"


def epsilon_sentence(epsilon: float, *, seq_len: int | None = None, tokenizer: str = "char",
                     privacy_unit: str | None = None) -> str:
    """The odds wording for ε, e.g. "... can change the odds of any outcome by at most e^3 ≈ 20×"."""
    return (
        f"With ε = {epsilon:.3g}, {unit_phrase(seq_len, tokenizer, privacy_unit)} can change the odds of any outcome "
        f"by at most e^{epsilon:.3g} ≈ {odds_multiplier(epsilon)}×."
    )


def preview_epsilon_sentence(preview: Any, config: Any) -> str:
    """The New run form's ε sentence for a :class:`~dpcore.runs.preview.Preview` of ``config`` ("" if none)."""
    if preview.said_epsilon is None:
        return ""
    return epsilon_sentence(preview.said_epsilon, seq_len=config.seq_len, tokenizer=config.tokenizer,
                            privacy_unit=config.unit)


def preview_delta_sentence(preview: Any, config: Any) -> str:
    """The form's δ sentence for that preview ("" for a run without δ)."""
    if preview.delta is None:
        return ""
    return delta_sentence(preview.delta, preview.num_train, is_default=config.delta is None,
                          units="users" if preview.unit == "user" else "training sequences")


def delta_sentence(delta: float, num_train: int | None = None, *, is_default: bool = False,
                   units: str = "training sequences") -> str:
    """δ as the small chance that the promise fails, set against 1/N (N counted in ``units``)."""
    text = f"δ = {delta:.2g} is the small chance that this promise fails"
    if num_train:
        ratio = delta * num_train
        text += f"; it must stay far below 1/N = 1 in {num_train:,} {units}"
        if ratio >= 1:
            text += " (it is not: choose a smaller δ)"
        elif ratio > 0.1:
            text += f" (here it is {ratio:.2g} of 1/N: not far below; the default is at most a tenth)"
        else:
            text += f" (here it is {ratio:.2g} of 1/N)"
    if is_default:
        text += f". This is the default, {DEFAULT_DELTA_RULE}"
    return text + "."


def group_sentence(epsilon: float, k: int = 10) -> str:
    """What ε means for someone who contributed many sequences (group privacy, roughly k·ε)."""
    return (
        f"Someone who contributed {k} sequences is protected as a group of {k}: roughly ε × {k} = "
        f"{epsilon * k:.3g}, i.e. odds up to e^{epsilon * k:.3g} ≈ {odds_multiplier(epsilon * k)}×."
    )


def format_duration(seconds: float | None) -> str:
    """Seconds in words people read at a glance: "5 s", "1 min 15 s", "1 h 06 min"."""
    if seconds is None:
        return "—"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def total_seconds(run: Run, now: float | None = None) -> float | None:
    """From the worker's start to the run's end (or now): training plus start-up (data, calibration)."""
    start = run.started_at or run.created_at
    end = run.finished_at or now
    return None if start is None or end is None else max(0.0, end - start)

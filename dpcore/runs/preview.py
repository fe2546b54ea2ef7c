"""What a configuration means before anything is trained ("predict, then reveal").

Given a config and its corpus, :func:`preview` reports the number of training sequences N, the
sampling rate, the calibrated noise multiplier, the expected batch size, the predicted ε curve
over the planned steps and plain sentences for ε and δ. It runs in the dashboard process on
every form change, so the expensive parts are cached here (not in the page): the corpus build per
corpus spec and file version, and the whole preview per config. Nothing here trains.

A preview imports no torch either (``tests/test_guard.py`` pins it): the corpus is sized with
:func:`~dpcore.data.summarize_lm_data` (no tensors) and ε comes from the torch-free RDP and PLD
accountants. Choosing the PRV accountant loads Opacus, hence torch, in the dashboard process.

Wording follows what research on explaining DP found to work: odds, not formulas
("can change the odds of any outcome by at most e^ε ≈ 20×"), with δ as "the small chance that
this promise fails" and a real-world reference point (the 2020 US Census).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, fields
from typing import Any

from dpcore.config import TrainConfig, field_default, field_problem, field_specs
from dpcore.data import load_corpus, summarize_lm_data
from dpcore.errors import ConfigError, DPCoreError
from dpcore.paths import file_version
from dpcore.privacy.accounting import EpsilonCurve
from dpcore.privacy.background import QUICK, SLOW, start_once
from dpcore.privacy.calcache import calibrated_noise, folder_in, hand_over
from dpcore.privacy.delta import check_delta, default_delta
from dpcore.privacy.plan import Plan, accounted_units, calibration_key, plan
from dpcore.privacy.registry import Guarantee, accountant_of, accountants, looser_instant_accountant, mechanism_of
from dpcore.runs.limits import check_launch
from dpcore.runs.uploads import accept_upload as accept_upload  # re-exported: checks live in uploads
from dpcore.runs.uploads import upload_columns as upload_columns

#: Points on the predicted-ε chart per accountant (``Accountant.curve_points``): a full computation per
#: point for PRV and PLD, almost nothing for RDP.
CURVE_POINTS = {a.name: a.curve_points for a in accountants()}


@dataclass(frozen=True)
class Preview:
    """Everything the form shows under "what this choice means"."""

    num_train: int  # N for the accountant: training users (user-level) or training sequences
    data: dict[str, Any]  # LMData.summary() (via summarize_lm_data): sizes only, never text
    sample_rate: float
    steps: int
    epochs: float  # steps × q: how many times each sequence is seen on average
    expected_batch_size: int
    delta: float | None
    default_delta: float
    noise_multiplier: float | None
    curve: list[tuple[int, float]] = field(default_factory=list)  # predicted (step, ε); empty if not DP
    guarantee: Guarantee = Guarantee.DP
    #: The ε the form's sentence states (the predicted final ε, or the target while σ is computed); None: no
    #: sentence (:func:`dpcore.views.meaning.preview_epsilon_sentence` words it).
    said_epsilon: float | None = None
    unit: str = "sequence"  # the privacy unit N counts: "user" or "sequence"
    #: True while the exact σ and ε curve of a PRV or PLD run are computed in the background (seconds):
    #: the curve is empty and ``noise_multiplier`` is ``noise_bound``'s bound, or None.
    pending: bool = False
    #: "" when ``noise_multiplier`` is the run's σ; "rdp" when it is RDP's σ, at least the exact one.
    noise_bound: str = ""

    @property
    def final_epsilon(self) -> float | None:
        return self.curve[-1][1] if self.curve else None


# ------------------------------------------------------------------------------- corpus size


@functools.lru_cache(maxsize=32)
def _summary_cached(spec: str, version: tuple[int, int], text_column: str | None, user_column: str | None,
                    tokenizer: str, seq_len: int, val_fraction: float, max_vocab: int,
                    builtin_users: int) -> dict[str, Any]:
    del version  # part of the cache key only: a replaced file is read again
    corpus = load_corpus(spec, text_column=text_column, user_column=user_column, builtin_users=builtin_users)
    # build_lm_data(...).summary() without the tensors: no torch in the dashboard process
    return summarize_lm_data(corpus, tokenizer=tokenizer, seq_len=seq_len, val_fraction=val_fraction,
                             max_vocab=max_vocab)


def data_summary(config: TrainConfig) -> dict[str, Any]:
    """Sizes of the training data the config describes (cached per corpus and data settings).

    Raises :class:`~dpcore.errors.CorpusError` for a corpus that cannot be used.
    """
    version = (0, 0) if config.corpus == "builtin" else file_version(config.corpus)
    return dict(_summary_cached(config.corpus, version, config.text_column, config.user_column,
                                config.tokenizer, config.seq_len, config.val_fraction, config.max_vocab,
                                config.builtin_users))


# ------------------------------------------------------------------------------- preview
@functools.lru_cache(maxsize=128)
def _preview_cached(config: TrainConfig, summary_items: tuple[tuple[str, Any], ...]) -> Preview:
    summary = dict(summary_items)
    n = accounted_units(config, summary)  # users (user-level) or sequences
    p = plan(config, n)
    common = _common(config, n, p, summary)
    if not config.is_private:
        return Preview(**common, guarantee=mechanism_of(config.mechanism).guarantee)
    # the monitor draws the same prediction for the launched run (same σ: dpcore.privacy.calcache), so
    # computing it through the shared cache here spares the monitor seconds with PRV and PLD
    curve = predicted_curve(config.mechanism, p.noise_multiplier, p.sample_rate, p.delta, config.accountant,
                            p.steps)
    return Preview(**common, curve=curve, guarantee=Guarantee.DP, said_epsilon=curve[-1][1])


def _common(config: TrainConfig, n: int, p: Plan, summary: dict[str, Any]) -> dict[str, Any]:
    """The fields every preview of ``config`` on N = ``n`` units has, from its plan."""
    return dict(num_train=n, unit="user" if config.user_level else "sequence", data=summary,
                sample_rate=p.sample_rate, steps=p.steps, epochs=p.epochs,
                expected_batch_size=p.expected_batch_size, default_delta=default_delta(n),
                delta=p.delta, noise_multiplier=p.noise_multiplier)


def _provisional(config: TrainConfig, summary_items: tuple[tuple[str, Any], ...]) -> Preview:
    """What can be said at once about a PRV or PLD run whose exact preview is still being computed.

    q, steps and δ are exact. σ (Gaussian, calibrated to ε) is an instant, looser accountant's σ (RDP's),
    computed in milliseconds: it bounds ε more loosely than PRV and PLD, so the exact σ found at launch is
    at most this one (4–10 % lower, up to ~27 % for a small ε over few steps); ``noise_bound`` says so.
    A mechanism that no instant accountant bounds (Laplace: PLD only) gets no bound. There is no curve:
    every point on it would be a bound, not the run's prediction. σ comes from the process's one store
    (:mod:`dpcore.privacy.calcache`), so a rerun costs nothing.
    """
    summary = dict(summary_items)
    n = accounted_units(config, summary)
    p = plan(config, n, calibrate=False)
    noise, bound = p.noise_multiplier, ""
    quick = looser_instant_accountant(config.mechanism, config.accountant)
    if noise is None and quick is not None:
        key = calibration_key(config, p.sample_rate, p.steps, p.delta).with_accountant(quick)
        try:
            noise, bound = calibrated_noise(key, read_files=False, write_files=False), quick
        except ConfigError:  # out of the quick accountant's reach; the tight one may still reach it
            noise = None
    calibrated = config.noise_multiplier is None
    return Preview(**{**_common(config, n, p, summary), "noise_multiplier": noise}, guarantee=Guarantee.DP,
                   pending=True, noise_bound=bound, said_epsilon=config.epsilon if calibrated else None)


def _in_background(config: TrainConfig) -> bool:
    """Previews with an accountant that is not instant (PRV, PLD) cost seconds: computed aside."""
    return config.is_private and not accountant_of(config.accountant).instant


#: Exact PRV/PLD previews computing or computed (dpcore.privacy.background.SLOW's table and its lock).
_exact_jobs, _pending_lock = SLOW.jobs, SLOW.lock


def _exact_job(config: TrainConfig, summary_items: tuple[tuple[str, Any], ...]) -> Future:
    """The background computation of ``config``'s exact preview, started if it is not running or done."""
    # _preview_cached is looked up now, not bound at import: a test can slow it down
    return SLOW.job((config, summary_items), _preview_cached, config, summary_items)


def exact_ready(config: TrainConfig) -> bool:
    """Whether the exact preview of ``config`` (a PRV or PLD run) is computed (the page then reruns).

    Restarts a computation that was dropped, so a page waiting on it always gets an answer.
    """
    try:
        items = tuple(sorted(data_summary(config).items()))
    except DPCoreError:
        return True  # nothing to wait for: the next rerun shows the problem
    job = _exact_job(config, items)
    return job.done() and not job.cancelled()  # a dropped one is started again on the next call


def prepare_launch(config: TrainConfig, data_dir: str | os.PathLike[str]) -> None:
    """Hand the σ this process calibrated for ``config`` to the worker that will train it.

    Writes it to the server's calibration folder (:func:`dpcore.privacy.calcache.folder_in`) now,
    or as soon as the background computation of a PRV/PLD preview finishes. The worker checks it
    with one exact evaluation before use, and calibrates itself when it finds nothing.
    """
    if not config.is_private or config.noise_multiplier is not None:
        return
    try:
        summary = data_summary(config)
        p = plan(config, accounted_units(config, summary), calibrate=False)
    except DPCoreError:
        return
    key = calibration_key(config, p.sample_rate, p.steps, p.delta)
    job = SLOW.get((config, tuple(sorted(summary.items())))) if _in_background(config) else None
    hand_over(key, folder_in(data_dir), when=job)


#: The longest the New run page waits for a preview; past it the page says so instead of hanging.
PREVIEW_TIMEOUT_S = 8.0


class PreviewTooSlow(DPCoreError):
    """Predicting this configuration's ε takes longer than the page may wait."""


def timed_preview(config: TrainConfig, summary_items: tuple[tuple[str, Any], ...],
                  timeout: float | None = None) -> Preview:
    """:func:`_preview_cached` with a time limit, so a costly accountant never stalls a page.

    RDP previews (and runs without a guarantee) are exact and take milliseconds. PRV and PLD
    previews take seconds, so they are computed in the background and the caller gets the exact one
    if it is ready, else at once a provisional one (``pending``, see :func:`_provisional`).

    The step cap (:mod:`dpcore.runs.limits`) already bounds the work; what is left runs on a small
    shared pool. On timeout the computation goes on in the background (one per configuration) and its
    result is cached for the next rerun; the caller gets :class:`PreviewTooSlow` at once.
    """
    if _in_background(config):  # answer at once; the exact preview follows (see exact_ready)
        job = _exact_job(config, summary_items)
        if job.done() and not job.cancelled():  # (cancelled: dropped for a newer one; asked again later)
            return job.result()  # raises what the computation raised (ConfigError: check() reports it)
        return _provisional(config, summary_items)
    future = QUICK.job((config, summary_items), _preview_cached, config, summary_items)
    try:
        return future.result(timeout=PREVIEW_TIMEOUT_S if timeout is None else timeout)
    except FutureTimeout:
        raise PreviewTooSlow(
            f"this would take too long to predict (over {PREVIEW_TIMEOUT_S if timeout is None else timeout:g} s "
            f"with the {config.accountant.upper()} accountant); try the RDP accountant or fewer steps — "
            "the prediction goes on in the background, so it may be ready in a moment"
        ) from None


def preview(config: TrainConfig) -> Preview:
    """What ``config`` means on its corpus; raises ConfigError / CorpusError with a clear sentence.

    ``config.corpus`` must be ``"builtin"`` or a readable file path (the dashboard resolves the
    visitor's upload id to its path first).
    """
    summary = data_summary(config)
    return _preview_cached(config, tuple(sorted(summary.items())))


def clear_caches() -> None:
    """Forget cached corpora and previews (tests; a data folder that was wiped)."""
    _summary_cached.cache_clear()
    _preview_cached.cache_clear()
    SLOW.clear()


# ------------------------------------------------------------------------------- checking a form
def _form_fields() -> tuple[str, ...]:
    return tuple(name for name, spec in field_specs(TrainConfig).items() if spec.kind != "str")


#: Fields checked on their own first, so each message can sit at its control: every field with a
#: range or a list of choices, from the config's metadata (free text has nothing to check alone).
FORM_FIELDS = _form_fields()


@dataclass(frozen=True)
class Checked:
    """A form's config checked: the preview if everything is valid, else messages by field.

    Keys of ``errors`` are config field names, ``"corpus"`` or ``"config"`` (a combination).
    """

    preview: Preview | None
    errors: dict[str, str]


def check(config: TrainConfig | Mapping[str, Any]) -> Checked:
    """Check every field, then the combination, the corpus and δ against N, then calibrate.

    ``config`` is a config or, from a form, its field values (missing ones at their defaults) that
    may not make a valid config yet: each field's problem is then reported at that field.
    """
    cls = type(config) if isinstance(config, TrainConfig) else TrainConfig
    values = (config.to_dict() if isinstance(config, TrainConfig)
              else {**{f.name: field_default(f) for f in fields(cls)}, **config})
    errors: dict[str, str] = {}
    for name in FORM_FIELDS:
        problem = field_problem(name, values[name], cls)
        if problem:
            errors[name] = _sentence(problem)
    if errors:
        return Checked(None, errors)
    try:
        config = config if isinstance(config, TrainConfig) else cls(**values)  # validated as it is built
    except ConfigError as err:
        return Checked(None, {"config": _sentence(str(err))})
    if config.device not in ("auto", "cpu"):  # a GPU asked for: check it is there (loads torch, rarely)
        from dpcore.training.device import resolve_device

        try:
            resolve_device(config.device)
        except ConfigError as err:
            return Checked(None, {"device": _sentence(str(err).replace("--device ", ""))})
    try:
        summary = data_summary(config)
    except DPCoreError as err:
        return Checked(None, {"corpus": _sentence(str(err))})
    try:  # the server's budget for steps and memory, before anything costly is computed
        check_launch(config, num_examples=accounted_units(config, summary))
    except DPCoreError as err:
        return Checked(None, {"config": _sentence(str(err))})
    if config.is_private and config.delta is not None:
        try:
            check_delta(config.delta, accounted_units(config, summary),
                        "users" if config.user_level else "training examples")
        except ConfigError as err:
            return Checked(None, {"delta": _sentence(str(err))})
    try:
        return Checked(timed_preview(config, tuple(sorted(summary.items()))), {})
    except PreviewTooSlow as err:
        return Checked(None, {"config": _sentence(str(err))})
    except ConfigError as err:
        field_name = "epsilon" if config.is_private and config.noise_multiplier is None else "config"
        return Checked(None, {field_name: _sentence(str(err))})


def _sentence(text: str) -> str:
    """dpcore messages are lower-case clauses (for the CLI's "dpcore: error: ..."); make a sentence."""
    text = text.strip()
    if not text:
        return text
    if "a" <= text[0] <= "z":  # never "Ε" for a leading ε
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def warm(configs: list[TrainConfig]) -> None:
    """Once per process, compute previews in a daemon thread so a preset's first visitor does not wait.

    Accounting (calibration) is pure arithmetic, not training; it is safe off the main thread.
    """
    def work() -> None:
        for config in configs:
            try:
                preview(config)
            except Exception:  # noqa: BLE001 - a failed warm-up only means a cold first preview
                pass

    start_once("dpcore-preview-warmup", work)


@functools.lru_cache(maxsize=64)
def predicted_curve(mechanism: str, noise: float, sample_rate: float, delta: float, accountant: str,
                    steps: int) -> list[tuple[int, float]]:
    """The ε a run with these settings spends after each step (cached: runs share settings)."""
    curve = EpsilonCurve(mechanism, noise, sample_rate, delta, accountant, steps)
    return curve.predicted(accountant_of(accountant).curve_points)

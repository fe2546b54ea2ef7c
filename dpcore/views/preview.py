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
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from dpcore.config import TrainConfig, check_delta, default_delta, field_problem, field_specs
from dpcore.data import load_corpus, summarize_lm_data
from dpcore.errors import ConfigError, DPCoreError
from dpcore.privacy.accounting import EpsilonCurve
from dpcore.privacy.plan import plan
from dpcore.runs.limits import check_launch
from dpcore.views.meaning import delta_sentence, epsilon_sentence
from dpcore.views.uploads import accept_upload as accept_upload  # re-exported: checks live in uploads
from dpcore.views.uploads import upload_columns as upload_columns

#: Points on the predicted-ε chart; PRV and PLD cost a full computation per point, RDP almost nothing.
CURVE_POINTS = {"rdp": 40, "prv": 12, "pld": 10}

@dataclass(frozen=True)
class Preview:
    """Everything the form shows under "what this choice means"."""

    num_train: int
    data: dict[str, Any]  # LMData.summary() (via summarize_lm_data): sizes only, never text
    sample_rate: float
    steps: int
    epochs: float  # steps × q: how many times each sequence is seen on average
    expected_batch_size: int
    delta: float | None
    default_delta: float
    noise_multiplier: float | None
    curve: list[tuple[int, float]] = field(default_factory=list)  # predicted (step, ε); empty if not DP
    guarantee: str = "dp"  # "dp" | "none" | "no-guarantee"
    epsilon_sentence: str = ""
    delta_sentence: str = ""

    @property
    def final_epsilon(self) -> float | None:
        return self.curve[-1][1] if self.curve else None


# ------------------------------------------------------------------------------- corpus size
def _file_version(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (0, 0)
    return (st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=32)
def _summary_cached(spec: str, version: tuple[int, int], text_column: str | None, user_column: str | None,
                    tokenizer: str, seq_len: int, val_fraction: float, max_vocab: int) -> dict[str, Any]:
    del version  # part of the cache key only: a replaced file is read again
    corpus = load_corpus(spec, text_column=text_column, user_column=user_column)
    # build_lm_data(...).summary() without the tensors: no torch in the dashboard process
    return summarize_lm_data(corpus, tokenizer=tokenizer, seq_len=seq_len, val_fraction=val_fraction,
                             max_vocab=max_vocab)


def data_summary(config: TrainConfig) -> dict[str, Any]:
    """Sizes of the training data the config describes (cached per corpus and data settings).

    Raises :class:`~dpcore.errors.CorpusError` for a corpus that cannot be used.
    """
    version = (0, 0) if config.corpus == "builtin" else _file_version(config.corpus)
    return dict(_summary_cached(config.corpus, version, config.text_column, config.user_column,
                                config.tokenizer, config.seq_len, config.val_fraction, config.max_vocab))


# ------------------------------------------------------------------------------- preview
@functools.lru_cache(maxsize=128)
def _preview_cached(config: TrainConfig, summary_items: tuple[tuple[str, Any], ...]) -> Preview:
    summary = dict(summary_items)
    n = int(summary["num_train_examples"])
    p = plan(config, n)
    q, steps = p["sample_rate"], int(p["steps"])
    common = dict(num_train=n, data=summary, sample_rate=q, steps=steps, epochs=steps * q,
                  expected_batch_size=int(p["expected_batch_size"]), default_delta=default_delta(n),
                  delta=p["delta"], noise_multiplier=p["noise_multiplier"])
    if not config.is_private:
        guarantee = "none" if config.mechanism == "none" else "no-guarantee"
        return Preview(**common, guarantee=guarantee)
    curve_obj = EpsilonCurve(config.mechanism, p["noise_multiplier"], q, p["delta"], config.accountant, steps)
    curve = curve_obj.predicted(CURVE_POINTS.get(config.accountant, 12))
    final = curve[-1][1]
    return Preview(
        **common, curve=curve, guarantee="dp",
        epsilon_sentence=epsilon_sentence(final, seq_len=config.seq_len, tokenizer=config.tokenizer),
        delta_sentence=delta_sentence(p["delta"], n, is_default=config.delta is None),
    )


#: The longest the New run page waits for a preview; past it the page says so instead of hanging.
PREVIEW_TIMEOUT_S = 8.0
#: Threads computing previews for every session of this server (more requests wait their turn).
_PREVIEW_THREADS = 2
_pool = ThreadPoolExecutor(max_workers=_PREVIEW_THREADS, thread_name_prefix="dpcore-preview")
_pending: dict[tuple[TrainConfig, tuple[tuple[str, Any], ...]], Future] = {}
_pending_lock = threading.Lock()


class PreviewTooSlow(DPCoreError):
    """Predicting this configuration's ε takes longer than the page may wait."""


def timed_preview(config: TrainConfig, summary_items: tuple[tuple[str, Any], ...],
                  timeout: float | None = None) -> Preview:
    """:func:`_preview_cached` with a time limit, so a costly accountant never stalls a page.

    The step cap (:mod:`dpcore.runs.limits`) already bounds the work; what is left runs on a small
    shared pool. On timeout the computation goes on in the background (one per configuration) and its
    result is cached for the next rerun; the caller gets :class:`PreviewTooSlow` at once.
    """
    key = (config, summary_items)
    with _pending_lock:
        future = _pending.get(key)
        fresh = future is None
        if fresh:
            future = _pool.submit(_preview_cached, config, summary_items)
            _pending[key] = future
    if fresh:  # outside the lock: a future that is already done runs its callback right here
        future.add_done_callback(lambda _f: _forget(key))
    try:
        return future.result(timeout=PREVIEW_TIMEOUT_S if timeout is None else timeout)
    except FutureTimeout:
        raise PreviewTooSlow(
            f"this would take too long to predict (over {PREVIEW_TIMEOUT_S if timeout is None else timeout:g} s "
            f"with the {config.accountant.upper()} accountant); try the RDP accountant or fewer steps — "
            "the prediction goes on in the background, so it may be ready in a moment"
        ) from None


def _forget(key: tuple[TrainConfig, tuple[tuple[str, Any], ...]]) -> None:
    with _pending_lock:
        _pending.pop(key, None)


def preview(config: TrainConfig) -> Preview:
    """What ``config`` means on its corpus; raises ConfigError / CorpusError with a clear sentence.

    ``config.corpus`` must be ``"builtin"`` or a readable file path (the dashboard resolves the
    visitor's upload id to its path first).
    """
    config = config.validate()
    summary = data_summary(config)
    return _preview_cached(config, tuple(sorted(summary.items())))


def clear_caches() -> None:
    """Forget cached corpora and previews (tests; a data folder that was wiped)."""
    _summary_cached.cache_clear()
    _preview_cached.cache_clear()


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


def check(config: TrainConfig) -> Checked:
    """Check every field, then the combination, the corpus and δ against N, then calibrate."""

    errors: dict[str, str] = {}
    for name in FORM_FIELDS:
        problem = field_problem(name, getattr(config, name), type(config))
        if problem:
            errors[name] = _sentence(problem)
    if errors:
        return Checked(None, errors)
    try:
        config.validate()
    except ConfigError as err:
        return Checked(None, {"config": _sentence(str(err))})
    if config.device not in ("auto", "cpu"):  # a GPU asked for: check it is there (loads torch, rarely)
        from dpcore.device import resolve_device

        try:
            resolve_device(config.device)
        except ConfigError as err:
            return Checked(None, {"device": _sentence(str(err).replace("--device ", ""))})
    try:
        summary = data_summary(config)
    except DPCoreError as err:
        return Checked(None, {"corpus": _sentence(str(err))})
    n = int(summary["num_train_examples"])
    try:  # the server's budget for steps and memory, before anything costly is computed
        check_launch(config, num_examples=n)
    except DPCoreError as err:
        return Checked(None, {"config": _sentence(str(err))})
    if config.is_private and config.delta is not None:
        try:
            check_delta(config.delta, n)
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


_warm_lock = threading.Lock()
_warmed = False


def warm(configs: list[TrainConfig]) -> None:
    """Once per process, compute previews in a daemon thread so a preset's first visitor does not wait.

    Accounting (calibration) is pure arithmetic, not training; it is safe off the main thread.
    """
    global _warmed
    with _warm_lock:
        if _warmed:
            return
        _warmed = True

    def work() -> None:
        for config in configs:
            try:
                preview(config)
            except Exception:  # noqa: BLE001 - a failed warm-up only means a cold first preview
                pass

    threading.Thread(target=work, name="dpcore-preview-warmup", daemon=True).start()


@functools.lru_cache(maxsize=64)
def predicted_curve(mechanism: str, noise: float, sample_rate: float, delta: float, accountant: str,
                    steps: int) -> list[tuple[int, float]]:
    """The ε a run with these settings spends after each step (cached: runs share settings)."""
    curve = EpsilonCurve(mechanism, noise, sample_rate, delta, accountant, steps)
    return curve.predicted(CURVE_POINTS.get(accountant, 12))

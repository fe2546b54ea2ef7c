"""Views of stored runs for the dashboard: progress, tables, exports and side-by-side samples.

Everything a page would otherwise compute lives here, so pages stay thin (read widgets, call this,
draw) and the logic is unit-tested without a browser. Functions take a :class:`RunStore` and
:class:`Run` rows; nothing writes to the store.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dpcore.privacy.registry import Guarantee, mechanism_names, mechanism_of
from dpcore.runs.preview import preview
from dpcore.runs.store import Run, RunStore
from dpcore.training.result import RunResult
from dpcore.views.disclosure import UNCOVERED_METRICS, may_show_uncovered
from dpcore.views.meaning import (
    corpus_name,
    expected_batch,
    format_duration,
    guarantee_of,
    mechanism_label,
    run_epsilon,
    run_label,
    total_seconds,
    unit_of,
)

STATUS_LABELS = {
    "queued": "Queued",
    "running": "Running",
    "finished": "Finished",
    "failed": "Failed",
    "cancelled": "Cancelled",
}


# ---------------------------------------------------------------------------------- progress
@dataclass(frozen=True)
class Progress:
    """Where a run stands, in numbers a progress bar and one status line need."""

    fraction: float  # 0..1
    step: int
    total: int | None
    seconds_left: float | None
    text: str


def progress(run: Run, recent: Sequence[Mapping[str, Any]], queue_position: int | None = None,
             now: float | None = None) -> Progress:
    """Progress and time left from the recent step times (median, robust to the eval pauses)."""
    now = time.time() if now is None else now
    total, step = run.total_steps, run.last_step or 0
    frac = run.progress or 0.0
    if run.status == "finished":
        frac = 1.0
    if run.status == "queued":
        where = f" (number {queue_position} in the queue)" if queue_position else ""
        return Progress(0.0, 0, total, None, f"Waiting for a free slot{where}.")
    if run.is_terminal:
        loop = run.result.wall_time_s if run.result is not None else None
        text = f"{step} steps in {format_duration(total_seconds(run, now))} with start-up"
        text += f" (training itself {format_duration(loop)})" if loop is not None else ""
        return Progress(frac, step, total, 0.0, text)
    if step == 0:
        status = run.info.status_text if run.info is not None else None  # e.g. building the public model
        return Progress(0.0, 0, total, None, status or "Starting: loading the corpus and calibrating the noise…")
    times = [r["step_time_s"] for r in recent[-50:] if r.get("step_time_s")]
    left = None
    if times and total:
        # steps plus an allowance for the evaluations and sampling still to come
        per_step = statistics.median(times) * 1.15
        left = per_step * max(0, total - step)
    shown_total = f" of {total}" if total else ""
    return Progress(frac, step, total, left, f"Step {step}{shown_total} · about {format_duration(left)} left")


# ---------------------------------------------------------------------------------- tables
def results_table(runs: Sequence[Run], *, viewer: str | None = None) -> pd.DataFrame:
    """One row per run: its configuration and results, ready for st.dataframe or CSV.

    ``viewer`` is who looks (an owner key; None: an export): numbers ε does not cover are left
    empty where :func:`dpcore.views.disclosure.may_show_uncovered` says so.
    """
    rows = []
    for run in runs:
        cfg, res = run.config, run.result or RunResult.empty()
        private = guarantee_of(run) == "dp"
        show = may_show_uncovered(run, viewer=viewer)
        rows.append({  # what people compare first: privacy spent and quality, then how
            "label": run_label(run),
            "ε spent": run_epsilon(run),
            "protects": {"user": "a person", "sequence": "a sequence"}.get(unit_of(cfg) or "", "—"),
            "val perplexity": res.val_perplexity if show else None,
            "k = 30 canary exposure (bits)": canary_exposure(res, 30) if show else None,
            "privacy": mechanism_label(str(cfg.get("mechanism"))),
            "corpus": corpus_name(cfg),
            "status": run.status,
            "target ε": cfg.get("epsilon") if private and cfg.get("noise_multiplier") is None else None,
            "δ": res.delta if private else None,
            "accountant": res.accountant if private else None,
            "noise multiplier": res.noise_multiplier if private else None,
            "C": cfg.get("clip") if private else None,
            "steps": res.steps if res.has("steps") else run.last_step,
            "expected batch": expected_batch(run),
            "lr": cfg.get("lr"),
            "hidden": cfg.get("hidden_size"),
            "seed": cfg.get("seed"),
            "training time (s)": round(res.wall_time_s, 1) if res.wall_time_s is not None else None,
            "run": run.id,
        })
    return pd.DataFrame(rows)


def canary_exposure(result: RunResult, insertions: int) -> float | None:
    """Mean exposure of the canaries planted ``insertions`` times, from an audited run's result (else None)."""
    for group in ((result.audit or {}).get("exposure_by_insertions") or []):
        if group.get("insertions") == insertions:
            return round(float(group["mean_exposure"]), 2)
    return None


def unit_comparison(run: Run, others: Sequence[Run], *, viewer: str | None = None) -> list[dict[str, Any]]:
    """``run`` beside the finished runs of ``others`` at the same ε and mechanism but the other privacy unit.

    One row per run (``run`` first): what it protects, validation perplexity and the planted canaries'
    exposure (k = 1, 10, 30) when audited. Empty when ``run`` has no guarantee or no counterpart exists.
    Numbers ε does not cover follow :func:`dpcore.views.disclosure.may_show_uncovered` for each run.
    """
    unit = unit_of(run.config)
    if unit is None or guarantee_of(run) != "dp":
        return []
    target = run.config.get("epsilon")
    peers = [o for o in others if o.id != run.id and o.status == "finished" and guarantee_of(o) == "dp"
             and o.config.get("mechanism") == run.config.get("mechanism") and o.config.get("epsilon") == target
             and unit_of(o.config) not in (None, unit)]
    if not peers:
        return []
    rows = []
    for r in [run, *peers]:
        res, show = r.result or RunResult.empty(), may_show_uncovered(r, viewer=viewer)
        row: dict[str, Any] = {"run": run_label(r), "protects": "a person" if unit_of(r.config) == "user" else
                               "a sequence", "ε spent": run_epsilon(r),
                               "val perplexity": res.val_perplexity if show else None}
        for k in (1, 10, 30):
            row[f"k = {k} canary exposure (bits)"] = canary_exposure(res, k) if show else None
        rows.append(row)
    return rows


def metrics_frame(store: RunStore, runs: Sequence[Run], *, viewer: str | None = None) -> pd.DataFrame:
    """Every step of every run (with its validation pass where there was one), long format.

    Columns ε does not cover are dropped for runs whose viewer may not see them (None: an export).
    """
    frames = []
    for run in runs:
        metrics = pd.DataFrame(store.metrics(run.id))
        if metrics.empty:
            continue
        show = may_show_uncovered(run, viewer=viewer)
        evals = pd.DataFrame(store.evals(run.id)) if show else pd.DataFrame()
        metrics = metrics.drop(columns=["ts"] + ([] if show else list(UNCOVERED_METRICS)), errors="ignore")
        if not evals.empty:
            metrics = metrics.merge(evals.drop(columns=["ts"], errors="ignore"), on="step", how="left")
        metrics.insert(0, "label", run_label(run))
        metrics.insert(0, "run", run.id)
        frames.append(metrics)
    if not frames:
        return pd.DataFrame(columns=["run", "label", "step"])
    return pd.concat(frames, ignore_index=True)


def metrics_csv(store: RunStore, runs: Sequence[Run], *, viewer: str | None = None) -> bytes:
    """Every step as CSV (a file leaves the page: pass viewer=None unless it is the owner's own download)."""
    buf = io.StringIO()
    metrics_frame(store, runs, viewer=viewer).to_csv(buf, index=False)
    return buf.getvalue().encode("utf-8")


def frontier(runs: Sequence[Run], *, viewer: str | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(private points with ε and final perplexity, non-private baselines) of finished runs.

    Validation perplexity is not covered by ε: runs whose viewer may not see it are left out.
    """
    points, baselines = [], []
    for run in runs:
        ppl = run.result.val_perplexity if run.result is not None else None
        if run.status != "finished" or ppl is None or not may_show_uncovered(run, viewer=viewer):
            continue
        g = guarantee_of(run)
        if g == Guarantee.DP:
            points.append({"label": run_label(run), "epsilon": run_epsilon(run), "val_perplexity": ppl})
        elif g == Guarantee.NONE:
            baselines.append({"label": run_label(run), "val_perplexity": ppl})
    return points, baselines


def baseline_perplexity(runs: Sequence[Run], config: Mapping[str, Any]) -> float | None:
    """Final perplexity of a finished non-private run with the same data and model, if any."""
    keys = ("corpus", "tokenizer", "seq_len", "hidden_size", "embed_dim", "num_layers", "seed")
    for run in runs:
        if (run.status == "finished"
                and mechanism_of(str(run.config.get("mechanism"))).guarantee is Guarantee.NONE
                and all(run.config.get(k) == config.get(k) for k in keys)):
            return run.result.val_perplexity if run.result is not None else None
    return None


# ---------------------------------------------------------------------------------- mechanisms
#: Model sizes of the mechanism comparison (the preset's own size is added).
MECHANISM_SIZES = (1_000, 10_000, 100_000, 1_000_000)


def model_parameters(config: Any, vocab_size: int) -> int:
    """Number of parameters of the GRU language model ``config`` describes (arithmetic: no torch).

    Embedding V·D; each GRU layer 3H·(D_in + H) weights and 2·3H biases (nn.GRU's layout); head H·V + V.
    """
    d, h, layers = int(config.embed_dim), int(config.hidden_size), int(config.num_layers)
    gru = sum(3 * h * ((d if layer == 0 else h) + h) + 6 * h for layer in range(layers))
    return vocab_size * d + gru + h * vocab_size + vocab_size


def mechanism_inputs(config: Any) -> dict[str, Any]:
    """q, steps, δ and the model sizes to compare, for a (preset) config on its own corpus."""
    pv = preview(config)
    params = model_parameters(config, int(pv.data.get("vocab_size") or 100))
    delta = pv.delta if pv.delta is not None else pv.default_delta
    return {"sample_rate": pv.sample_rate, "steps": pv.steps, "delta": delta, "num_parameters": params,
            "sizes": sorted({*MECHANISM_SIZES, params})}


def curves_by_mechanism(store: RunStore, runs: Sequence[Run]) -> dict[str, list[tuple[str, list[dict[str, Any]]]]]:
    """Finished runs' validation curves grouped by mechanism, in the registry's order."""
    groups: dict[str, list[tuple[str, list[dict[str, Any]]]]] = {}
    for run in runs:
        if run.status != "finished":
            continue
        evals = store.evals(run.id)
        if evals:
            groups.setdefault(str(run.config.get("mechanism")), []).append((run_label(run), evals))
    order = mechanism_names()
    return {m: groups[m] for m in sorted(groups, key=lambda m: (order + (m,)).index(m))}

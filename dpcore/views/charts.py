"""Plotly figures of runs, shared by the dashboard pages and the downloadable report.

Pure functions from plain rows (the store's metric/eval dicts) to ``plotly.graph_objects.Figure``:
no Streamlit, no store access, so the report draws exactly what the pages draw. All traces are
SVG (``go.Scatter``): browsers cap WebGL contexts per page, and the compare page has several
charts. Long runs are thinned to at most :data:`MAX_POINTS` points per trace for drawing only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from dpcore.privacy.registry import Guarantee, mechanism_of, mechanisms
from dpcore.views.meaning import MECHANISM_SHORT_LABELS

MAX_POINTS = 1500
#: A palette readable on a projector and by most colour-blind viewers (Okabe-Ito).
COLORS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
BASELINE_COLOR = "#555555"


def thin(rows: Sequence[Mapping[str, Any]], max_points: int = MAX_POINTS) -> list[Mapping[str, Any]]:
    """Every k-th row (and always the last) so a trace has at most ``max_points`` points."""
    rows = list(rows)
    if len(rows) <= max_points:
        return rows
    k = -(-len(rows) // max_points)
    out = rows[::k]
    if out[-1] is not rows[-1]:
        out.append(rows[-1])
    return out


def _xy(rows: Sequence[Mapping[str, Any]], key: str) -> tuple[list[Any], list[Any]]:
    pts = [(r["step"], r[key]) for r in thin(rows) if r.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def _layout(fig: go.Figure, title: str, ytitle: str, *, xmax: int | None = None, height: int = 300) -> go.Figure:
    # Axes reserve their own room (automargin): the same figure is drawn by Streamlit and exported
    # into the HTML report, where fixed 10-pixel margins cut tick labels and put titles over them.
    # The legend sits above the plot, right of the title, never over the x-axis title.
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left", "y": 0.98, "yanchor": "top"}, height=height,
        margin={"l": 10, "r": 10, "t": 64, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1.0},
        hovermode="x unified",
    )
    fig.update_xaxes(title_text="step", range=[0, xmax] if xmax else None, rangemode="tozero", automargin=True,
                     title_standoff=8)
    fig.update_yaxes(title_text=ytitle, automargin=True, title_standoff=8)
    return fig


def loss_figure(metrics: Sequence[Mapping[str, Any]], *, total_steps: int | None = None) -> go.Figure:
    """Training loss per step (empty Poisson batches have no loss and are skipped)."""
    x, y = _xy(metrics, "train_loss")
    fig = go.Figure(go.Scatter(x=x, y=y, mode="lines", name="training loss", line={"color": COLORS[0]}))
    return _layout(fig, "Training loss", "loss (nats per token)", xmax=total_steps)


def perplexity_figure(evals: Sequence[Mapping[str, Any]], *, total_steps: int | None = None,
                      baseline: float | None = None) -> go.Figure:
    """Validation perplexity on held-out users; lower is better. ``baseline``: a reference line."""
    x, y = _xy(evals, "val_perplexity")
    fig = go.Figure(go.Scatter(x=x, y=y, mode="lines+markers", name="validation perplexity",
                               line={"color": COLORS[2]}))
    if baseline is not None:
        fig.add_hline(y=baseline, line={"dash": "dot", "color": BASELINE_COLOR},
                      annotation_text="no-privacy baseline", annotation_position="top left")
    return _layout(fig, "Validation perplexity (held-out users)", "perplexity", xmax=total_steps)


def epsilon_figure(metrics: Sequence[Mapping[str, Any]], *, predicted: Sequence[tuple[int, float]] | None = None,
                   target: float | None = None, total_steps: int | None = None) -> go.Figure:
    """ε spent so far against steps, over the predicted curve and the target."""
    fig = go.Figure()
    if predicted:
        fig.add_trace(go.Scatter(x=[p[0] for p in predicted], y=[p[1] for p in predicted], mode="lines",
                                 name="predicted", line={"dash": "dash", "color": "#999999"}))
    x, y = _xy(metrics, "epsilon")
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="ε spent", line={"color": COLORS[3], "width": 3}))
    if target is not None:
        fig.add_hline(y=target, line={"dash": "dot", "color": COLORS[3]}, annotation_text=f"target ε = {target:g}",
                      annotation_position="top left")
    return _layout(fig, "Privacy spent (ε)", "ε", xmax=total_steps)


def predicted_epsilon_figure(curve: Sequence[tuple[int, float]], *, target: float | None = None) -> go.Figure:
    """The ε a planned run will have spent after each step (shown before launch)."""
    return epsilon_figure([], predicted=curve, target=target, total_steps=curve[-1][0] if curve else None)


def clipping_figure(metrics: Sequence[Mapping[str, Any]], *, clip: float | None,
                    total_steps: int | None = None) -> go.Figure:
    """Fraction of examples clipped and the median per-example gradient norm against C.

    The private fraction (noised, covered by ε) is drawn when the run released one; the exact
    fraction and the median norm are computed without noise and drawn only when the rows carry them
    (:func:`dpcore.views.disclosure.visible_metrics` strips them where they may not be shown).
    """
    fig = go.Figure()
    x, y = _xy(metrics, "median_grad_norm")
    if x:
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="median per-example norm (without noise)",
                                 line={"color": COLORS[0]}))
        if clip is not None:
            fig.add_hline(y=clip, line={"dash": "dot", "color": COLORS[3]},
                          annotation_text=f"clipping norm C = {clip:g}", annotation_position="top left")
    x, y = _xy(metrics, "noisy_frac_clipped")
    if x:
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="fraction clipped (private: noised, covered by ε)",
                                 yaxis="y2", line={"color": COLORS[2]}))
    x, y = _xy(metrics, "frac_clipped")
    if x:
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="fraction clipped (without noise)", yaxis="y2",
                                 line={"color": COLORS[1]}))
    _layout(fig, "Clipping diagnostics", "gradient norm", xmax=total_steps)
    fig.update_layout(yaxis2={"title": {"text": "fraction clipped"}, "overlaying": "y", "side": "right",
                              "range": [0, 1.05], "showgrid": False, "tickformat": ".0%",
                              "tickmode": "array", "tickvals": [0, 0.25, 0.5, 0.75, 1.0]})
    return fig


def overlay_figure(series: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], key: str, *, title: str,
                   ytitle: str, log_y: bool = False) -> go.Figure:
    """One line per run (label, rows) of ``key`` against steps, for the compare page."""
    fig = go.Figure()
    for i, (label, rows) in enumerate(series):
        x, y = _xy(rows, key)
        if x:
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=label, line={"color": COLORS[i % len(COLORS)]}))
    _layout(fig, title, ytitle, height=340)
    if log_y:
        fig.update_yaxes(type="log")
    return fig


#: Tick marks of the frontier's log ε axis (plain numbers people quote).
EPSILON_TICKS = (0.1, 0.2, 0.5, 1, 2, 3, 5, 8, 10, 20, 50, 100, 200, 500, 1000)


def frontier_figure(points: Sequence[Mapping[str, Any]], baselines: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Final validation perplexity against ε spent: the privacy-utility frontier.

    ``points``: dicts with label, epsilon, val_perplexity (private runs); ``baselines``: label and
    val_perplexity of non-private runs, drawn as horizontal reference lines (they have no ε).
    Points are labelled with their ε (the full run label is in the hover).
    """
    fig = go.Figure()
    pts = sorted((p for p in points if p.get("epsilon") is not None and p.get("val_perplexity") is not None),
                 key=lambda p: p["epsilon"])
    if pts:
        fig.add_trace(go.Scatter(
            x=[p["epsilon"] for p in pts], y=[p["val_perplexity"] for p in pts], mode="lines+markers+text",
            text=[f"ε={p['epsilon']:.2g}" for p in pts], textposition="top right", name="private runs",
            hovertext=[p["label"] for p in pts], hoverinfo="text+x+y",
            marker={"size": 11, "color": COLORS[0]}, line={"color": COLORS[0], "dash": "dot"},
        ))
    for b in baselines:
        if b.get("val_perplexity") is not None:
            fig.add_hline(y=b["val_perplexity"], line={"dash": "dash", "color": BASELINE_COLOR},
                          annotation_text=f"no privacy (baseline) · {b['label'].rsplit(' · ', 1)[-1]}",
                          annotation_position="bottom right")
    fig.update_layout(
        title={"text": "Privacy–utility frontier (lower and further left is better)", "x": 0.0},
        height=380, margin={"l": 10, "r": 10, "t": 40, "b": 10}, showlegend=False,
    )
    eps = [p["epsilon"] for p in pts] or [1.0]
    ticks = [t for t in EPSILON_TICKS if min(eps) / 2 <= t <= max(eps) * 2] or list(EPSILON_TICKS[:4])
    fig.update_xaxes(title_text="ε spent (log scale)", type="log", tickmode="array", tickvals=ticks,
                     ticktext=[f"{t:g}" for t in ticks])
    fig.update_yaxes(title_text="final validation perplexity")
    return fig


# ------------------------------------------------------------------------------ decoding
def decoding_epsilon_figure(basic: Sequence[float], advanced: Sequence[float], *,
                            delta_prime: float | None = None, height: int = 220) -> go.Figure:
    """The ε a generated text has spent after each token: basic vs advanced composition."""
    x = list(range(1, len(basic) + 1))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=list(basic), mode="lines", name="basic (n·ε)", line={"color": COLORS[3]}))
    adv_name = f"advanced (δ′ = {delta_prime:g})" if delta_prime is not None else "advanced"
    fig.add_trace(go.Scatter(x=list(range(1, len(advanced) + 1)), y=list(advanced), mode="lines", name=adv_name,
                             line={"color": COLORS[0], "dash": "dash"}))
    _layout(fig, "ε spent by this text", "ε", height=height)
    fig.update_xaxes(title_text="token")
    return fig


# ------------------------------------------------------------------------------ mechanisms
def noise_signal_figure(rows: Sequence[Any], *, highlight: int | None = None) -> go.Figure:
    """Noise-to-signal ratio against model size (log-log): Gaussian, Laplace dense and sparse.

    ``rows``: :class:`dpcore.privacy.mechanisms.NoiseSignalRow` (or dicts with the same keys).
    ``highlight``: a parameter count to mark (the preset model's).
    """
    def get(r: Any, k: str) -> Any:
        return r[k] if isinstance(r, Mapping) else getattr(r, k)

    rows = sorted(rows, key=lambda r: get(r, "num_parameters"))
    x = [get(r, "num_parameters") for r in rows]
    fig = go.Figure()
    for key, name, color, dash in (("gaussian_ratio", "Gaussian (L2 clipping)", COLORS[0], None),
                                   ("laplace_ratio_dense", "Laplace, signal spread out (typical)", COLORS[3], None),
                                   ("laplace_ratio_sparse", "Laplace, signal on one coordinate (best case)",
                                    COLORS[1], "dash")):
        fig.add_trace(go.Scatter(x=x, y=[get(r, key) for r in rows], mode="lines+markers", name=name,
                                 line={"color": color, "dash": dash}))
    if highlight is not None:
        fig.add_vline(x=highlight, line={"dash": "dot", "color": BASELINE_COLOR},
                      annotation_text=f"this model ({highlight:,} parameters)", annotation_position="top left")
    _layout(fig, "Noise against signal at the same ε (lower trains better)", "noise-to-signal ratio", height=380)
    fig.update_xaxes(title_text="number of parameters (log scale)", type="log", range=None, rangemode="normal")
    fig.update_yaxes(type="log")
    fig.update_layout(hovermode="closest")
    return fig


def _mechanism_colors() -> dict[str, str]:
    """Private mechanisms take the palette in registry order (skipping the warning red), naive red, none grey."""
    private = iter(c for i, c in enumerate(COLORS) if i != 3)
    fixed = {Guarantee.NO_GUARANTEE: COLORS[3], Guarantee.NONE: BASELINE_COLOR}
    return {m.name: fixed.get(m.guarantee) or next(private, COLORS[4]) for m in mechanisms()}


#: A colour per mechanism for the grouped training curves.
MECHANISM_COLORS = _mechanism_colors()


def mechanism_curves_figure(groups: Mapping[str, Sequence[tuple[str, Sequence[Mapping[str, Any]]]]],
                            key: str = "val_perplexity", *, ytitle: str = "validation perplexity") -> go.Figure:
    """Runs' curves coloured by mechanism (one legend group per mechanism)."""
    fig = go.Figure()
    dashes = ("solid", "dash", "dot", "dashdot")
    for mech, series in groups.items():
        for i, (label, rows) in enumerate(series):
            x, y = _xy(rows, key)
            if x:
                fig.add_trace(go.Scatter(
                    x=x, y=y, mode="lines+markers", name=f"{MECHANISM_SHORT_LABELS.get(mech, mech)} · {label}",
                    legendgroup=mech, line={"color": MECHANISM_COLORS.get(mech, COLORS[4]),
                                            "dash": dashes[i % len(dashes)]}))
    return _layout(fig, "Validation perplexity by mechanism", ytitle, height=360)


# ------------------------------------------------------------------------------ audits
def exposure_figure(groups: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Canary exposure by how often the canary was planted, against the most it could be."""
    x = [str(g["insertions"]) for g in groups]
    mean = [g.get("mean_exposure") for g in groups]
    err_hi = [(g.get("max_exposure") or m) - m if m is not None else 0 for g, m in zip(groups, mean)]
    err_lo = [m - (g.get("min_exposure") or m) if m is not None else 0 for g, m in zip(groups, mean)]
    fig = go.Figure(go.Bar(x=x, y=mean, name="mean exposure", marker={"color": COLORS[0]},
                           error_y={"type": "data", "symmetric": False, "array": err_hi, "arrayminus": err_lo}))
    top = [g.get("max_possible") for g in groups]
    if any(t is not None for t in top):
        fig.add_trace(go.Scatter(x=x, y=top, mode="lines+markers", name="max possible (fully memorised)",
                                 line={"color": COLORS[3], "dash": "dash"}))
    _layout(fig, "Canary exposure by number of insertions", "exposure (bits)", height=320)
    fig.update_xaxes(title_text="times the canary was planted", type="category", range=None)
    return fig


def roc_figure(curves: Sequence[Mapping[str, Any]]) -> go.Figure:
    """User-level membership-inference ROC curves, FPR on a log scale (where the attacks that matter live)."""
    fig = go.Figure()
    floor = 1e-4
    for i, c in enumerate(curves):
        pts = [(f, t) for f, t in zip(c["fpr"], c["tpr"]) if f > 0]
        auc = f" (AUC {c['auc']:.3f})" if c.get("auc") is not None else ""
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines",
                                 name=f"{c['name']} attack{auc}", line={"color": COLORS[i % len(COLORS)]}))
        if pts:
            floor = min(floor, pts[0][0])
    fig.add_trace(go.Scatter(x=[floor, 1.0], y=[floor, 1.0], mode="lines", name="random guessing",
                             line={"color": BASELINE_COLOR, "dash": "dot"}))
    _layout(fig, "User-level membership inference ROC", "true positive rate", height=320)
    fig.update_xaxes(title_text="false positive rate (log scale)", type="log", range=None, rangemode="normal")
    fig.update_yaxes(type="log")
    fig.update_layout(hovermode="closest")
    return fig


def epsilon_bounds_figure(claimed: float | None, empirical: Mapping[str, Any] | None) -> go.Figure:
    """The claimed ε (an upper bound) beside the one-run audit's empirical lower bound, with its confidence."""
    fig = go.Figure()
    if claimed is not None:
        fig.add_trace(go.Bar(y=["claimed ε (upper bound)"], x=[claimed], orientation="h", name="claimed ε",
                             marker={"color": COLORS[0]}, text=[f"{claimed:.3g}"], textposition="auto"))
    if empirical is not None and empirical.get("value") is not None:
        conf = empirical.get("confidence")
        label = f"one-run audit lower bound ({conf:.0%} conf.)" if conf is not None else "one-run audit lower bound"
        fig.add_trace(go.Bar(y=[label], x=[empirical["value"]], orientation="h", name="empirical ε (lower bound)",
                             marker={"color": COLORS[2]}, text=[f"{empirical['value']:.3g}"], textposition="auto",
                             hovertext=[empirical.get("attack") or ""]))
        cap = empirical.get("max_certifiable")
        if cap is not None:
            fig.add_vline(x=cap, line={"dash": "dot", "color": BASELINE_COLOR},
                          annotation_text=f"largest this audit could certify: {cap:.3g}",
                          annotation_position="bottom right")
    _layout(fig, "Claimed ε vs what the one-run audit could show", "", height=260)
    fig.update_xaxes(title_text="ε", range=None, rangemode="tozero")
    fig.update_layout(hovermode="closest", showlegend=False)
    return fig


def _claims_falsely(mechanism: Any) -> bool:
    """Whether a point's mechanism is a recipe without a guarantee (naive), not the honest baseline."""
    return mechanism is not None and mechanism_of(str(mechanism)).guarantee is Guarantee.NO_GUARANTEE


def audit_scatter_figure(points: Sequence[Mapping[str, Any]], key: str, *, title: str, ytitle: str) -> go.Figure:
    """``key`` (mean exposure or AUC) against ε across audited runs; runs without ε as a separate "∞ / none"
    marker at the right of the axis."""
    fig = go.Figure()
    priv = sorted((p for p in points if p.get("epsilon") is not None and p.get(key) is not None),
                  key=lambda p: p["epsilon"])
    rest = [p for p in points if p.get("epsilon") is None and p.get(key) is not None]
    right = max([p["epsilon"] for p in priv] or [10.0]) * 3
    if priv:
        fig.add_trace(go.Scatter(x=[p["epsilon"] for p in priv], y=[p[key] for p in priv], mode="markers+text",
                                 text=[f"ε={p['epsilon']:.2g}" for p in priv], textposition="top right",
                                 hovertext=[p["label"] for p in priv], hoverinfo="text+y", name="private runs",
                                 marker={"size": 11, "color": COLORS[0]}))
    if rest:
        fig.add_trace(go.Scatter(
            x=[right] * len(rest), y=[p[key] for p in rest], mode="markers+text", name="∞ / none (no guarantee)",
            text=["no privacy guarantee" if _claims_falsely(p.get("mechanism")) else "∞ / none" for p in rest],
            textposition="middle left", hovertext=[p["label"] for p in rest], hoverinfo="text+y",
            marker={"size": 12, "color": COLORS[3], "symbol": "x"}))
    fig.update_layout(title={"text": title, "x": 0.0}, height=340, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      showlegend=False)
    eps = [p["epsilon"] for p in priv] or [1.0]
    ticks = [t for t in EPSILON_TICKS if min(eps) / 2 <= t <= max(eps) * 2] or list(EPSILON_TICKS[:4])
    fig.update_xaxes(title_text="ε spent (log scale; no-guarantee runs at the right)", type="log", tickmode="array",
                     tickvals=[*ticks, right] if rest else ticks,
                     ticktext=[*(f"{t:g}" for t in ticks), "∞ / none"] if rest else [f"{t:g}" for t in ticks])
    fig.update_yaxes(title_text=ytitle)
    return fig


LAB_KIND_COLORS = {"game": COLORS[3], "ceiling": BASELINE_COLOR, "audit": COLORS[2], "claim": COLORS[0]}


def lab_bounds_figure(points: Sequence[Mapping[str, Any]]) -> go.Figure:
    """The attack lab's scoreboard: the players' ε lower bounds beside the audit's, the most their guesses
    could show and the accountant's ε (:func:`dpcore.views.labview.bound_points`)."""
    fig = go.Figure(go.Bar(
        y=[p["what"] for p in points], x=[p["epsilon"] for p in points], orientation="h",
        marker={"color": [LAB_KIND_COLORS.get(p["kind"], COLORS[1]) for p in points]},
        text=[f"{p['epsilon']:.2f}" for p in points], textposition="auto"))
    _layout(fig, "What the guesses prove (ε lower bounds, 95 %) against what is promised", "", height=300)
    fig.update_xaxes(title_text="ε", range=None, rangemode="tozero")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(hovermode="closest", showlegend=False)
    return fig

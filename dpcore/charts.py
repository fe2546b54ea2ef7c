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
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left"}, height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "yanchor": "top", "y": -0.25, "xanchor": "left", "x": 0.0},
        hovermode="x unified",
    )
    fig.update_xaxes(title_text="step", range=[0, xmax] if xmax else None, rangemode="tozero")
    fig.update_yaxes(title_text=ytitle)
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
    """Fraction of examples clipped and the median per-example gradient norm against C."""
    fig = go.Figure()
    x, y = _xy(metrics, "median_grad_norm")
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="median per-example norm", line={"color": COLORS[0]}))
    if clip is not None:
        fig.add_hline(y=clip, line={"dash": "dot", "color": COLORS[3]}, annotation_text=f"clipping norm C = {clip:g}",
                      annotation_position="top left")
    x, y = _xy(metrics, "frac_clipped")
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="fraction clipped", yaxis="y2",
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

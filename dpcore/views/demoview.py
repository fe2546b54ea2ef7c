"""The instant demo's pictures: the gallery's frontier, its samples side by side, its canary exposures.

Takes the gallery as (title, run) pairs (:func:`dpcore.runs.gallery.gallery_state`) and plain audit dicts;
returns points, rows and Plotly figures. The gallery trains on the built-in corpus (synthetic and
public), so everything may be shown; runs without privacy or without a guarantee are labelled as such.
No streamlit, no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from dpcore.runs.store import Run
from dpcore.views.auditview import exposure_groups
from dpcore.views.charts import BASELINE_COLOR, COLORS
from dpcore.views.disclosure import may_show_samples
from dpcore.views.meaning import MECHANISM_SHORT_LABELS, guarantee_of, run_epsilon
from dpcore.views.roomview import frontier_scatter_figure

Entry = tuple[str, Run]


def frontier_figure(entries: Sequence[Entry], *, big: bool = False) -> go.Figure:
    """Final validation perplexity against ε of the finished gallery runs, one colour per mechanism."""
    points, baselines, others = [], [], []
    for title, run in entries:
        ppl = run.result.val_perplexity if run.result is not None else None
        if run.status != "finished" or ppl is None:
            continue
        item = {"name": MECHANISM_SHORT_LABELS.get(str(run.config.get("mechanism")), ""), "label": title,
                "val_perplexity": float(ppl), "epsilon": run_epsilon(run)}
        g = guarantee_of(run)
        if g == "dp" and item["epsilon"] is not None:
            points.append(item)
        elif g == "none":
            baselines.append({**item, "name": ""})
        else:
            others.append(item)
    return frontier_scatter_figure(points, baselines, others, group="name", big=big,
                                   title="What privacy costs: model quality at each ε (lower is better)")


def final_samples(entries: Sequence[Entry], samples: Mapping[str, Sequence[Mapping[str, Any]]],
                  per_run: int = 1) -> list[tuple[str, str, list[str]]]:
    """(title, prompt, texts) for each run with final samples, in gallery order."""
    out = []
    for title, run in entries:
        final = [s for s in samples.get(run.id, ()) if s.get("kind") == "final"]
        if final and may_show_samples(run, viewer=None):  # every visitor reads the gallery: the one rule decides
            out.append((title, str(final[0].get("prompt") or ""), [str(s["text"]) for s in final[:per_run]]))
    return out


def exposure_figure(entries: Sequence[Entry], audits: Mapping[str, Mapping[str, Any] | None], *,
                    insertions: Sequence[int] = (10, 30), big: bool = False) -> go.Figure:
    """Mean canary exposure of each audited run, one bar group per run, one bar per insertion count."""
    fig = go.Figure()
    titles = [title for title, run in entries if audits.get(run.id)]
    top = None
    for i, k in enumerate(insertions):
        ys = []
        for _title, run in entries:
            audit = audits.get(run.id)
            if not audit:
                continue
            group = next((g for g in exposure_groups(audit) if g["insertions"] == k), None)
            ys.append(group.get("mean_exposure") if group else None)
            if group and group.get("max_possible") is not None:
                top = group["max_possible"]
        fig.add_trace(go.Bar(x=titles, y=ys, name=f"canary planted {k}×", marker={"color": COLORS[(i + 1) % 8]}))
    if top is not None:
        fig.add_hline(y=top, line={"dash": "dash", "color": BASELINE_COLOR},
                      annotation_text=f"fully memorised ({top:.1f} bits)", annotation_position="top left")
    fig.update_layout(title={"text": "How much each model gives away about planted secrets (exposure, bits)", "x": 0},
                      barmode="group", height=560 if big else 360, font={"size": 20 if big else 13},
                      margin={"l": 10, "r": 10, "t": 64, "b": 10},
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1.0})
    fig.update_yaxes(title_text="exposure (bits; 0 = no better than guessing)", rangemode="tozero")
    return fig

"""What a workshop room shows: everyone's runs as rows, the frontier, the challenge and the class report.

A room lists runs of many owners to everyone in it, so this module is where the room applies the
privacy rules of :mod:`dpcore.views.disclosure` to other people's runs:

* a run on the built-in corpus (synthetic, public) shows its numbers and its run id (a link);
* a run on uploaded text shows its numbers (ε, validation perplexity) to the room only when its
  owner opted in for this room (``RoomRun.share_numbers``), and never its run id to anyone else:
  the id is a capability link whose monitor would show samples of a DP model, and the room promises
  never to show samples of uploads. Its label never names the file;
* no room view carries samples at all.

Pure data and Plotly figures: no streamlit, no torch.
"""

from __future__ import annotations

import datetime as _dt
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from dpcore.runs.rooms import Challenge, Room, RoomRun
from dpcore.runs.store import Run
from dpcore.views.charts import BASELINE_COLOR, COLORS, EPSILON_TICKS
from dpcore.views.disclosure import is_builtin
from dpcore.views.meaning import guarantee_of, run_epsilon

#: A planted canary counts as extracted when an attacker guessing in the model's order of likelihood
#: finds the secret within this many tries (out of 10,000 candidates for the built-in PINs: an
#: exposure of at least log2(10,000 / 10) ≈ 10 of 13.3 bits).
EXTRACTION_GUESSES = 10
HIDDEN_LABEL = "a run on uploaded text (its owner did not share its numbers)"
SORT_KEYS = {"epsilon": "ε spent", "val_perplexity": "val perplexity"}


@dataclass(frozen=True)
class RoomRow:
    """One run as the room shows it to one viewer (numbers None where they may not be shown)."""

    name: str  # the participant's display name
    label: str
    status: str
    mechanism: str
    guarantee: str
    epsilon: float | None
    val_perplexity: float | None
    hidden: bool  # a run on uploaded text whose numbers this viewer may not see
    on_upload: bool
    mine: bool
    run_id: str | None  # only where the viewer may open it: built-in corpus, or the viewer's own
    canaries: Mapping[int, bool] | None  # insertions -> extracted, from the run's audit (built-in only)
    finished: bool


def numbers_visible(entry: RoomRun, run: Run, *, viewer: str | None) -> bool:
    """May ``viewer`` (None: an exported report) see the run's numbers on the room page?"""
    return is_builtin(run.config) or entry.share_numbers or (viewer is not None and viewer == run.owner)


def short_label(run: Run) -> str:
    """"ε=3 Gaussian", "no privacy", "naive (no guarantee)" (+ "· uploaded text"): never a file name."""
    cfg = run.config
    mech = str(cfg.get("mechanism"))
    if guarantee_of(run) == "dp":
        eps = (run.result.target_epsilon if run.result is not None else None) or cfg.get("epsilon")
        head = f"ε={eps:g} {mech.capitalize()}" if eps is not None else f"{mech.capitalize()} (fixed noise)"
    elif mech == "naive":
        head = "naive (no guarantee)"
    else:
        head = "no privacy"
    return head if is_builtin(cfg) else f"{head} · uploaded text"


def canary_extraction(audit: Mapping[str, Any] | None) -> dict[int, bool] | None:
    """Insertions -> whether any canary planted that many times was extracted (:data:`EXTRACTION_GUESSES`)."""
    if not audit:
        return None
    found: dict[int, bool] = {}
    for item in audit.get("exposure") or []:
        k, rank = item.get("insertions"), item.get("rank")
        if k is None or rank is None:
            continue
        found[int(k)] = found.get(int(k), False) or float(rank) <= EXTRACTION_GUESSES
    return found or None


def room_rows(entries: Sequence[RoomRun], runs: Mapping[str, Run], *, viewer: str | None,
              audits: Mapping[str, Mapping[str, Any]] | None = None) -> list[RoomRow]:
    """The room's runs as ``viewer`` may see them (entries whose run was deleted are skipped)."""
    audits = audits or {}
    rows = []
    for entry in entries:
        run = runs.get(entry.run_id)
        if run is None:
            continue
        builtin = is_builtin(run.config)
        mine = viewer is not None and viewer == run.owner
        visible = numbers_visible(entry, run, viewer=viewer)
        finished = run.status == "finished"
        ppl = run.result.val_perplexity if finished and run.result is not None else None
        rows.append(RoomRow(
            name=entry.display_name,
            label=short_label(run) if visible else HIDDEN_LABEL,
            status=run.status,
            mechanism=str(run.config.get("mechanism")),
            guarantee=guarantee_of(run),
            epsilon=run_epsilon(run) if visible else None,
            val_perplexity=float(ppl) if visible and ppl is not None else None,
            hidden=not visible,
            on_upload=not builtin,
            mine=mine,
            run_id=run.id if builtin or mine else None,
            canaries=canary_extraction(audits.get(run.id)) if builtin and finished else None,
            finished=finished,
        ))
    return rows


def sort_rows(rows: Sequence[RoomRow], by: str = "epsilon", *, descending: bool = False) -> list[RoomRow]:
    """Rows sorted by ε spent or validation perplexity; rows without that number last (runs without ε too)."""
    if by not in SORT_KEYS:
        raise ValueError(f"sort by one of {', '.join(SORT_KEYS)}")
    known = [r for r in rows if getattr(r, by) is not None]
    missing = [r for r in rows if getattr(r, by) is None]
    return sorted(known, key=lambda r: getattr(r, by), reverse=descending) + missing


def rows_table(rows: Sequence[RoomRow], insertions: int = 10) -> pd.DataFrame:
    """The room table: participant, run, status, ε, perplexity, the k-times canary."""
    def canary(r: RoomRow) -> str:
        if r.canaries is None or insertions not in r.canaries:
            return "—"
        return "extracted" if r.canaries[insertions] else "safe"

    return pd.DataFrame([{
        "participant": r.name, "run": r.label, "status": r.status,
        "ε spent": r.epsilon if r.guarantee == "dp" else None,
        "val perplexity": r.val_perplexity, f"k = {insertions} canary": canary(r),
    } for r in rows], columns=["participant", "run", "status", "ε spent", "val perplexity",
                               f"k = {insertions} canary"])


# ------------------------------------------------------------------------------ frontier
def pareto(points: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The points no other point beats on both ε and perplexity, by ε (the frontier line)."""
    best, out = math.inf, []
    for p in sorted(points, key=lambda p: (p["epsilon"], p["val_perplexity"])):
        if p["val_perplexity"] < best:
            out.append(p)
            best = p["val_perplexity"]
    return out


def frontier_points(rows: Sequence[RoomRow]) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                         list[dict[str, Any]]]:
    """(DP points, no-privacy baselines, no-guarantee runs) of finished rows with a perplexity."""
    points, baselines, others = [], [], []
    for r in rows:
        if not r.finished or r.val_perplexity is None:
            continue
        item = {"name": r.name, "label": r.label, "val_perplexity": r.val_perplexity, "mechanism": r.mechanism,
                "epsilon": r.epsilon}
        if r.guarantee == "dp" and r.epsilon is not None:
            points.append(item)
        elif r.guarantee == "none":
            baselines.append(item)
        else:
            others.append(item)
    return points, baselines, others


def frontier_scatter_figure(points: Sequence[Mapping[str, Any]], baselines: Sequence[Mapping[str, Any]] = (),
                            others: Sequence[Mapping[str, Any]] = (), *, group: str = "name",
                            title: str = "Privacy–utility frontier (lower and further left is better)",
                            big: bool = False) -> go.Figure:
    """Every DP run as a point (ε, final perplexity), one colour per ``group`` value, the frontier as a line.

    Runs without privacy are dashed reference lines; runs without a guarantee (naive) sit at the
    right, marked "no guarantee". ``big``: larger type and markers for a projector.
    """
    fig = go.Figure()
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for p in points:
        groups.setdefault(str(p.get(group) or ""), []).append(p)
    size = 18 if big else 11
    for i, (name, pts) in enumerate(groups.items()):
        fig.add_trace(go.Scatter(
            x=[p["epsilon"] for p in pts], y=[p["val_perplexity"] for p in pts], mode="markers+text", name=name,
            text=[f"ε={p['epsilon']:.2g}" for p in pts], textposition="top right",
            hovertext=[f"{p.get('name', '')} · {p['label']}" for p in pts], hoverinfo="text+x+y",
            marker={"size": size, "color": COLORS[i % len(COLORS)]},
        ))
    line = pareto(points)
    if len(line) > 1:
        fig.add_trace(go.Scatter(x=[p["epsilon"] for p in line], y=[p["val_perplexity"] for p in line],
                                 mode="lines", name="frontier", line={"color": "#333333", "dash": "dot"},
                                 hoverinfo="skip"))
    eps = [p["epsilon"] for p in points] or [1.0]
    right = max(eps) * 3
    if others:
        fig.add_trace(go.Scatter(
            x=[right] * len(others), y=[p["val_perplexity"] for p in others], mode="markers+text",
            name="no privacy guarantee", text=["no guarantee"] * len(others), textposition="middle left",
            hovertext=[f"{p.get('name', '')} · {p['label']}" for p in others], hoverinfo="text+y",
            marker={"size": size + 1, "color": COLORS[3], "symbol": "x"}))
    for b in baselines:
        fig.add_hline(y=b["val_perplexity"], line={"dash": "dash", "color": BASELINE_COLOR},
                      annotation_text=f"no privacy · {b.get('name', '')}".rstrip(" ·"),
                      annotation_position="bottom right")
    ticks = [t for t in EPSILON_TICKS if min(eps) / 2 <= t <= max(eps) * 2] or list(EPSILON_TICKS[:4])
    fig.update_xaxes(title_text="ε spent (log scale)", type="log", tickmode="array",
                     tickvals=[*ticks, right] if others else ticks,
                     ticktext=[*(f"{t:g}" for t in ticks), "none"] if others else [f"{t:g}" for t in ticks])
    fig.update_yaxes(title_text="final validation perplexity")
    fig.update_layout(title={"text": title, "x": 0.0}, height=620 if big else 400, hovermode="closest",
                      margin={"l": 10, "r": 10, "t": 64, "b": 10}, font={"size": 22 if big else 13},
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1.0})
    return fig


# ------------------------------------------------------------------------------ the challenge
@dataclass(frozen=True)
class ChallengeResult:
    title: str
    rule: str  # how the leader is chosen, one sentence
    leader: RoomRow | None
    standings: tuple[RoomRow, ...]  # eligible rows, best first


def evaluate_challenge(challenge: Challenge | None, rows: Sequence[RoomRow]) -> ChallengeResult | None:
    """Who leads the instructor's challenge now (None without a challenge).

    * lowest_perplexity: finished DP runs with ε ≤ the limit, lowest validation perplexity first;
    * canary_safe: finished, audited DP runs whose canaries planted k times were all not extracted,
      smallest ε first.
    Runs whose numbers the viewer may not see never take part.
    """
    if challenge is None:
        return None
    dp = [r for r in rows if r.finished and r.guarantee == "dp" and r.epsilon is not None and not r.hidden]
    if challenge.kind == "lowest_perplexity":
        eligible = sorted((r for r in dp if r.epsilon <= challenge.value + 1e-9 and r.val_perplexity is not None),
                          key=lambda r: (r.val_perplexity, r.epsilon))
        rule = (f"Finished private runs that spent at most ε = {challenge.value:g}; the lowest validation "
                "perplexity leads.")
    else:
        k = int(challenge.value)
        eligible = sorted((r for r in dp if r.canaries and k in r.canaries and not r.canaries[k]),
                          key=lambda r: (r.epsilon, r.val_perplexity or math.inf))
        rule = (f"Finished private runs with the privacy audit ticked whose canaries planted {k} times were not "
                f"extracted (not found within {EXTRACTION_GUESSES} guesses); the smallest ε leads.")
    return ChallengeResult(challenge.title, rule, eligible[0] if eligible else None, tuple(eligible))


# ------------------------------------------------------------------------------ the class report
def class_report_html(room: Room, rows: Sequence[RoomRow],
                      statements: Mapping[str, Sequence[str]] | None = None) -> str:
    """A self-contained HTML report of every run of the room (plotly.js inline, works offline).

    ``rows`` must be built with ``viewer=None`` (an export): runs on uploaded text appear with their
    numbers only where their owner opted in, and never with a run id, file name or sample.
    ``statements``: run id -> privacy statement sentences, for built-in-corpus runs only.
    """
    esc = html.escape
    statements = statements or {}
    result = evaluate_challenge(room.challenge, rows)
    points, baselines, others = frontier_points(rows)
    created = _dt.datetime.fromtimestamp(room.created_at).strftime("%Y-%m-%d %H:%M")
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>DP-RNN Lab class report: {esc(room.name)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;"
        "color:#1f2937;line-height:1.5}table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid "
        "#e5e7eb;padding:4px 10px 4px 0;text-align:left;vertical-align:top}th{color:#6b7280}"
        "details{margin:.4em 0}</style></head><body>",
        f"<h1>Class report: {esc(room.name)}</h1>",
        f"<p>Room opened {esc(created)}; {len({r.name for r in rows})} participants, {len(rows)} runs. "
        "Every ε below is the accountant's upper bound for the steps each run took; runs without privacy or "
        "without a guarantee are labelled. Runs on uploaded text show numbers only where their owner chose to "
        "share them, and no samples.</p>",
    ]
    if result is not None:
        leader = (f"{esc(result.leader.name)} — {esc(result.leader.label)}: ε = {result.leader.epsilon:.3g}"
                  + (f", validation perplexity {result.leader.val_perplexity:.3g}"
                     if result.leader.val_perplexity is not None else "")) if result.leader else "nobody yet"
        parts.append(f"<h2>Challenge: {esc(result.title)}</h2><p>{esc(result.rule)}</p><p><strong>Winner:</strong> "
                     f"{leader}</p>")
    parts.append("<h2>Privacy–utility frontier</h2>")
    if points or baselines or others:
        fig = frontier_scatter_figure(points, baselines, others)
        parts.append(fig.to_html(full_html=False, include_plotlyjs="inline", config={"displaylogo": False}))
    else:
        parts.append("<p>No finished run with a shared perplexity.</p>")
    parts.append("<h2>All runs</h2><table><tr><th>participant</th><th>run</th><th>status</th><th>ε spent</th>"
                 "<th>validation perplexity</th><th>k = 10 canary</th></tr>")
    for r in sort_rows(rows, "epsilon"):
        eps = f"{r.epsilon:.3g}" if r.epsilon is not None else ("none" if r.guarantee != "dp" and not r.hidden
                                                                else "—")
        ppl = f"{r.val_perplexity:.3g}" if r.val_perplexity is not None else "—"
        canary = "—" if not r.canaries or 10 not in r.canaries else ("extracted" if r.canaries[10] else "safe")
        parts.append(f"<tr><td>{esc(r.name)}</td><td>{esc(r.label)}</td><td>{esc(r.status)}</td><td>{eps}</td>"
                     f"<td>{ppl}</td><td>{canary}</td></tr>")
    parts.append("</table>")
    detailed = [r for r in rows if r.run_id and not r.on_upload and r.run_id in statements]
    if detailed:
        parts.append("<h2>What each run protects</h2>")
        for r in detailed:
            items = "".join(f"<li>{esc(s)}</li>" for s in statements[r.run_id])
            parts.append(f"<details><summary>{esc(r.name)} — {esc(r.label)} ({esc(r.run_id)})</summary>"
                         f"<ul>{items}</ul></details>")
    parts.append("<p><em>Generated by DP-RNN Lab.</em></p></body></html>")
    return "".join(parts)

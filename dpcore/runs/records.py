"""What a run records as it trains: step metrics, evaluations, text samples and its artifact files.

One job: the rows a worker appends (``metrics``, ``evals``, ``samples``, ``artifacts``) and the reads
every page polls them with. :class:`RunRecords` is the part of :class:`~dpcore.runs.store.RunStore`
that does it; the run row itself is :mod:`dpcore.runs.store`'s.
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dpcore.events import EVAL_COLUMNS, METRIC_COLUMNS


class RunRecords:
    """A run's metrics, evals, samples and artifacts (a part of :class:`~dpcore.runs.store.RunStore`).

    Uses the store's ``transaction`` and ``_reader``.
    """

    def add_metrics(self, run_id: str, rows: Iterable[Mapping[str, Any]]) -> int:
        """Append step metrics (StepMetrics dicts) in one transaction; returns rows written."""
        now = time.time()
        values = [tuple(_num(r.get(c)) for c in METRIC_COLUMNS) + (now,) for r in rows]
        if not values:
            return 0
        cols = ", ".join(METRIC_COLUMNS)
        with self.transaction() as conn:
            conn.executemany(
                f"INSERT OR REPLACE INTO metrics (run_id, {cols}, ts) "
                f"VALUES (?, {', '.join('?' * (len(METRIC_COLUMNS) + 1))})",
                [(run_id, *v) for v in values],
            )
            conn.execute(
                "UPDATE runs SET last_step = MAX(COALESCE(last_step, -1), ?), heartbeat_at = ? "
                "WHERE id = ?",
                (max(v[0] for v in values), now, run_id),
            )
        return len(values)

    def add_eval(self, run_id: str, row: Mapping[str, Any]) -> None:
        """Append one validation pass (EvalMetrics dict)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO evals (run_id, step, val_loss, val_perplexity, ts) "
                "VALUES (?, ?, ?, ?, ?)",
                (run_id, *(_num(row.get(c)) for c in EVAL_COLUMNS), time.time()),
            )

    def add_samples(self, run_id: str, step: int, kind: str, prompt: str, texts: Sequence[str]) -> None:
        """Append generated texts (one row each)."""
        now = time.time()
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO samples (run_id, step, kind, prompt, text, ts) VALUES (?, ?, ?, ?, ?, ?)",
                [(run_id, step, kind, prompt, text, now) for text in texts],
            )

    def add_artifact(self, run_id: str, name: str, path: str | os.PathLike[str]) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO artifacts (run_id, name, path, ts) VALUES (?, ?, ?, ?)",
                (run_id, name, str(path), time.time()),
            )

    def metrics(
        self, run_id: str, since_step: int = -1, *, conn: sqlite3.Connection | None = None
    ) -> list[dict[str, Any]]:
        """Step metrics with ``step > since_step``, by step: poll with the last step you have."""
        with self._reader(conn) as c:
            rows = c.execute(
                f"SELECT {', '.join(METRIC_COLUMNS)}, ts FROM metrics "
                "WHERE run_id = ? AND step > ? ORDER BY step",
                (run_id, since_step),
            ).fetchall()
        return [dict(r) for r in rows]

    def metric_count(self, run_id: str, *, conn: sqlite3.Connection | None = None) -> int:
        with self._reader(conn) as c:
            return int(c.execute("SELECT COUNT(*) FROM metrics WHERE run_id = ?", (run_id,)).fetchone()[0])

    def latest_metrics(
        self, run_id: str, *, conn: sqlite3.Connection | None = None
    ) -> dict[str, Any] | None:
        with self._reader(conn) as c:
            row = c.execute(
                f"SELECT {', '.join(METRIC_COLUMNS)}, ts FROM metrics WHERE run_id = ? "
                "ORDER BY step DESC LIMIT 1",
                (run_id,),
            ).fetchone()
        return None if row is None else dict(row)

    def evals(
        self, run_id: str, since_step: int = -1, *, conn: sqlite3.Connection | None = None
    ) -> list[dict[str, Any]]:
        with self._reader(conn) as c:
            rows = c.execute(
                "SELECT step, val_loss, val_perplexity, ts FROM evals "
                "WHERE run_id = ? AND step > ? ORDER BY step",
                (run_id, since_step),
            ).fetchall()
        return [dict(r) for r in rows]

    def samples(self, run_id: str, since_id: int = 0) -> list[dict[str, Any]]:
        """Generated texts (id, step, kind, prompt, text, ts), oldest first."""
        with self._reader(None) as c:
            rows = c.execute(
                "SELECT id, step, kind, prompt, text, ts FROM samples "
                "WHERE run_id = ? AND id > ? ORDER BY id",
                (run_id, since_id),
            ).fetchall()
        return [dict(r) for r in rows]

    def artifacts(self, run_id: str) -> dict[str, str]:
        """Artifact name -> path (``checkpoint``, ``result``, ``metrics_csv``, ``log``)."""
        with self._reader(None) as c:
            rows = c.execute("SELECT name, path FROM artifacts WHERE run_id = ?", (run_id,)).fetchall()
        return {r["name"]: r["path"] for r in rows}


def _num(value: Any) -> Any:
    """NaN is stored as NULL by SQLite anyway; say so explicitly and keep ints as ints."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value

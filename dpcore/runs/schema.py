"""The tables of ``runs.sqlite3`` and how a file of every older release is brought up to date.

One job: the run store's schema, as data. :data:`MIGRATIONS` are :class:`~dpcore.runs.db.Migration`
steps that :class:`~dpcore.runs.db.Database` applies in order when a file is opened (``PRAGMA
user_version`` records the last one applied). Append a step for a change, never edit one.

* ``runs`` - id, owner key, config (JSON), status, timestamps, pid/host/heartbeat of the worker,
  device, error message, the trainer's RunInfo and result (JSON);
* ``metrics`` (one row per optimizer step), ``evals``, ``samples`` and ``artifacts`` of each run;
* ``uploads`` - corpora uploaded by an owner, stored under ``uploads/<hash of owner>/``;
* ``inference_ledger`` (v2) - every text privately decoded from a run's model, with
  ``runs.inference_budget`` and ``runs.share_uncovered``; ``runs.stop_reason`` (v3);
  ``runs.stranger_budget`` (v4);
* ``lab_games``, ``lab_guesses`` and ``lab_tries`` (v5) - the attack lab's games, guesses and extraction
  tries (:mod:`dpcore.runs.lab_games`).
"""

from __future__ import annotations

from dpcore.runs.db import Migration

_SCHEMA_V1 = [
    """CREATE TABLE IF NOT EXISTS runs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        owner TEXT NOT NULL,
        config TEXT NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('queued', 'running', 'finished', 'failed', 'cancelled')),
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        heartbeat_at REAL,
        cancel_requested_at REAL,
        host TEXT,
        pid INTEGER,
        pid_ident TEXT,
        gpu TEXT,
        device TEXT,
        error TEXT,
        last_step INTEGER,
        info TEXT,
        result TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS runs_owner ON runs (owner, seq)",
    "CREATE INDEX IF NOT EXISTS runs_status ON runs (status, seq)",
    """CREATE TABLE IF NOT EXISTS metrics (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step INTEGER NOT NULL,
        train_loss REAL, epsilon REAL, batch_size INTEGER, frac_clipped REAL,
        median_grad_norm REAL, step_time_s REAL, elapsed_s REAL,
        ts REAL NOT NULL,
        PRIMARY KEY (run_id, step)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS evals (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step INTEGER NOT NULL,
        val_loss REAL, val_perplexity REAL,
        ts REAL NOT NULL,
        PRIMARY KEY (run_id, step)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS samples (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step INTEGER NOT NULL,
        kind TEXT NOT NULL,
        prompt TEXT NOT NULL,
        text TEXT NOT NULL,
        ts REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS samples_run ON samples (run_id, id)",
    """CREATE TABLE IF NOT EXISTS artifacts (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        path TEXT NOT NULL,
        ts REAL NOT NULL,
        PRIMARY KEY (run_id, name)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS uploads (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        filename TEXT NOT NULL,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        created_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS uploads_owner ON uploads (owner, created_at)",
]

_SCHEMA_V2 = [
    # the private (noised, accounted) fraction of clipped examples; frac_clipped is the exact one
    "ALTER TABLE metrics ADD COLUMN noisy_frac_clipped REAL",
    "ALTER TABLE runs ADD COLUMN inference_budget REAL",
    "ALTER TABLE runs ADD COLUMN share_uncovered INTEGER NOT NULL DEFAULT 0",
    """CREATE TABLE IF NOT EXISTS inference_ledger (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        ts REAL NOT NULL,
        viewer TEXT NOT NULL,
        decoder TEXT NOT NULL,
        tokens INTEGER NOT NULL CHECK (tokens >= 0),
        epsilon_per_token REAL NOT NULL CHECK (epsilon_per_token > 0),
        epsilon REAL NOT NULL CHECK (epsilon >= 0)
    )""",
    "CREATE INDEX IF NOT EXISTS inference_ledger_run ON inference_ledger (run_id, id)",
]

_SCHEMA_V3 = [
    # why the server stopped a run (wall-time cap): the worker then ends it "failed" with this sentence
    "ALTER TABLE runs ADD COLUMN stop_reason TEXT",
]

_SCHEMA_V4 = [
    # the owner's raise (or cut) of what everyone else may spend on private decoding (None: the default)
    "ALTER TABLE runs ADD COLUMN stranger_budget REAL",
]

_SCHEMA_V5 = [
    # the attack lab (dpcore.runs.lab_games): games dealt from a run's audit canaries, and their guesses
    """CREATE TABLE IF NOT EXISTS lab_games (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        pool TEXT NOT NULL,
        player TEXT NOT NULL,
        canaries TEXT NOT NULL,
        prediction REAL,
        created_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS lab_games_pool ON lab_games (run_id, pool, id)",
    "CREATE INDEX IF NOT EXISTS lab_games_player ON lab_games (run_id, player, id)",
    """CREATE TABLE IF NOT EXISTS lab_guesses (
        game_id INTEGER NOT NULL REFERENCES lab_games (id) ON DELETE CASCADE,
        canary INTEGER NOT NULL,
        guess INTEGER CHECK (guess IN (0, 1)),
        correct INTEGER NOT NULL CHECK (correct IN (0, 1)),
        ts REAL NOT NULL,
        PRIMARY KEY (game_id, canary)
    ) WITHOUT ROWID""",
    # the extraction game: a visitor's tries at one planted secret (attempt NULL: they gave up)
    """CREATE TABLE IF NOT EXISTS lab_tries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        player TEXT NOT NULL,
        target TEXT NOT NULL,
        attempt TEXT,
        correct INTEGER NOT NULL CHECK (correct IN (0, 1)),
        ts REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS lab_tries_player ON lab_tries (run_id, player, target, id)",
]

#: The run store's schema steps, version 1 first. Append, never edit.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, tuple(_SCHEMA_V1)),
    Migration(2, tuple(_SCHEMA_V2)),
    Migration(3, tuple(_SCHEMA_V3)),
    Migration(4, tuple(_SCHEMA_V4)),
    Migration(5, tuple(_SCHEMA_V5)),
)
SCHEMA_VERSION = MIGRATIONS[-1].version

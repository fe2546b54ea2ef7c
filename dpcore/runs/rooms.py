"""Workshop rooms: an instructor's room that participants join by link, and the runs they launch in it.

Why a room: a class explores ε together. Every participant keeps their own runs (their browser's
owner key, as everywhere), and each run launched in a room is also listed under the participant's
display name, so the room page can draw everyone's runs on one frontier.

Where it lives: its own SQLite file, ``<data folder>/rooms.sqlite3`` (WAL, 0600, its own
``PRAGMA user_version`` and :data:`MIGRATIONS`), beside the run store and opened the same way
(:class:`dpcore.runs.db.Database`). A separate file keeps the run store's schema untouched; the two
are joined by run id (a room row whose run was deleted is skipped).

Secrets and rights:

* the room id is public (it is in the join link: ``/room?room=<id>``); knowing it lets anyone join
  under a display name, never steer the room;
* the instructor's rights come from an instructor token (:func:`secrets.token_urlsafe`, 192 bits)
  returned once by :meth:`RoomStore.create_room`; the file keeps only its SHA-256, and every
  instructor action (nudge, lock or unlock controls, set the challenge, close) takes the token and
  checks it in constant time (:class:`RoomAccessDenied` otherwise).

What the server enforces at launch (:meth:`RoomStore.launch`), whatever a form shows: the room is
open, the launcher has joined it, their runs in the room stay within the per-participant quota
(count and insert in one write transaction), the corpus is the room's, and every setting the room
does not let participants change equals the one of an allowed preset (:func:`locked_problems`).

No torch, no streamlit.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from dpcore.config import TrainConfig
from dpcore.errors import DPCoreError
from dpcore.runs.db import Database, Migration
from dpcore.runs.store import RunStore

ROOMS_FILENAME = "rooms.sqlite3"
MAX_NAME = 60
MAX_DISPLAY_NAME = 40
MAX_NUDGE = 300
MAX_QUOTA = 50
DEFAULT_QUOTA = 5
_ROOM_ID_RE = re.compile(r"^[0-9a-f]{16}$")

_SCHEMA_V1 = [
    """CREATE TABLE IF NOT EXISTS rooms (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        token_sha256 TEXT NOT NULL,
        settings TEXT NOT NULL,
        challenge TEXT,
        nudge TEXT,
        nudge_seq INTEGER NOT NULL DEFAULT 0,
        nudge_at REAL,
        created_at REAL NOT NULL,
        closed_at REAL
    )""",
    """CREATE TABLE IF NOT EXISTS participants (
        room_id TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
        owner TEXT NOT NULL,
        display_name TEXT NOT NULL,
        name_key TEXT NOT NULL,
        joined_at REAL NOT NULL,
        PRIMARY KEY (room_id, owner),
        UNIQUE (room_id, name_key)
    )""",
    """CREATE TABLE IF NOT EXISTS room_runs (
        room_id TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
        run_id TEXT NOT NULL,
        owner TEXT NOT NULL,
        share_numbers INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        PRIMARY KEY (room_id, run_id)
    )""",
    "CREATE INDEX IF NOT EXISTS room_runs_owner ON room_runs (room_id, owner)",
    "CREATE INDEX IF NOT EXISTS participants_owner ON participants (owner, joined_at)",
]
#: The rooms file's schema steps (:class:`~dpcore.runs.db.Migration`), version 1 first. Append, never edit.
MIGRATIONS: tuple[Migration, ...] = (Migration(1, tuple(_SCHEMA_V1)),)
SCHEMA_VERSION = MIGRATIONS[-1].version


# ------------------------------------------------------------------------------ controls
@dataclass(frozen=True)
class Control:
    """A setting an instructor may hand to participants: the config fields it sets and its form keys."""

    name: str
    label: str
    fields: tuple[str, ...]
    form_keys: tuple[str, ...]


#: Controls in form order. Every other TrainConfig field (device, tokens, sequence length, samples...)
#: stays the preset's in a room, except the corpus, which follows the room's corpus rule.
CONTROLS: tuple[Control, ...] = (
    Control("mechanism", "Mechanism (and “no privacy”)", ("mechanism", "accountant", "engine"),
            ("nr_no_privacy", "nr_mechanism", "nr_accountant", "nr_engine")),
    Control("epsilon", "Target ε and δ", ("epsilon", "delta"), ("nr_epsilon", "nr_delta_custom", "nr_delta")),
    Control("unit", "Privacy unit (per person or per sequence)", ("unit", "user_cap"), ("nr_unit", "nr_user_cap")),
    Control("clip", "Clipping norm C", ("clip",), ("nr_clip",)),
    Control("length", "Training length", ("max_steps", "epochs"), ("nr_length", "nr_steps", "nr_epochs")),
    Control("batch_size", "Batch size", ("batch_size",), ("nr_batch",)),
    Control("lr", "Learning rate", ("lr",), ("nr_lr",)),
    Control("model", "Model size", ("embed_dim", "hidden_size", "num_layers"), ("nr_model", "nr_layers")),
    Control("seed", "Seed", ("seed",), ("nr_seed",)),
    Control("audit", "Privacy audit", ("audit",), ("nr_audit",)),
)
CONTROLS_BY_NAME = {c.name: c for c in CONTROLS}
#: Form widgets always locked in a room (their fields always come from the preset).
ALWAYS_LOCKED_KEYS = ("nr_device", "nr_tokenizer", "nr_seq_len", "nr_eval_every", "nr_num_samples", "nr_prompt")
CORPUS_FIELDS = ("corpus", "text_column", "user_column")
#: Corpus rules: everyone on the built-in corpus, or each participant's choice (built-in or own upload).
CORPUS_MODES = {"builtin": "the built-in corpus for everyone", "own": "each participant's choice (built-in or "
                                                                      "their own upload)"}
#: Challenge kinds (the instructor sets one): kind -> (title template, parameter name, default).
CHALLENGES = {
    "lowest_perplexity": ("Lowest validation perplexity at ε ≤ {value:g}", "max_epsilon", 3.0),
    "canary_safe": ("Smallest ε at which the k = {value:g} canary is not extracted", "insertions", 10),
}


class RoomError(DPCoreError):
    """A room request that cannot be done (one sentence saying why)."""


class RoomNotFound(RoomError):
    """No room with that id."""


class RoomAccessDenied(RoomError):
    """An instructor action without the room's instructor token."""


@dataclass(frozen=True)
class RoomSettings:
    """What participants may do: presets, unlocked controls, runs each, corpus rule."""

    presets: tuple[str, ...] = ("workshop-eps1-person", "workshop-eps3-person", "workshop-eps8-person",
                                "workshop-none")
    unlocked: tuple[str, ...] = ("epsilon",)
    quota: int = DEFAULT_QUOTA
    corpus: str = "builtin"

    def validate(self, known: Sequence[str]) -> RoomSettings:
        """Check the settings against the server's preset names ``known``."""
        if not self.presets:
            raise RoomError("a room needs at least one preset its participants may start from")
        unknown = [p for p in self.presets if p not in known]
        if unknown:
            raise RoomError(f"there is no preset named {unknown[0]!r}; the presets are {', '.join(sorted(known))}")
        bad = [c for c in self.unlocked if c not in CONTROLS_BY_NAME]
        if bad:
            raise RoomError(f"{bad[0]!r} is not a control; the controls are {', '.join(CONTROLS_BY_NAME)}")
        if type(self.quota) is not int or not 1 <= self.quota <= MAX_QUOTA:
            raise RoomError(f"the runs per participant must be a whole number from 1 to {MAX_QUOTA}")
        if self.corpus not in CORPUS_MODES:
            raise RoomError(f"the corpus rule must be one of {', '.join(CORPUS_MODES)}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"presets": list(self.presets), "unlocked": list(self.unlocked), "quota": self.quota,
                "corpus": self.corpus}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoomSettings:
        return cls(presets=tuple(data.get("presets") or ()), unlocked=tuple(data.get("unlocked") or ()),
                   quota=int(data.get("quota", DEFAULT_QUOTA)), corpus=str(data.get("corpus", "builtin")))

    def locked_form_keys(self) -> tuple[str, ...]:
        """Form widget keys participants may not change."""
        keys = [k for c in CONTROLS if c.name not in self.unlocked for k in c.form_keys]
        return (*keys, *ALWAYS_LOCKED_KEYS)


@dataclass(frozen=True)
class Challenge:
    """The instructor's challenge: ``kind`` (see :data:`CHALLENGES`) and its one number."""

    kind: str
    value: float

    def validate(self) -> Challenge:
        if self.kind not in CHALLENGES:
            raise RoomError(f"the challenge must be one of {', '.join(CHALLENGES)}")
        if self.kind == "lowest_perplexity" and not (0 < self.value <= 1000):
            raise RoomError("the challenge's ε limit must be a number above 0 (at most 1000)")
        if self.kind == "canary_safe" and self.value not in (1, 3, 10, 30):
            raise RoomError("the built-in corpus plants canaries 1, 3, 10 or 30 times: pick one of those")
        return self

    @property
    def title(self) -> str:
        return CHALLENGES[self.kind][0].format(value=self.value)


@dataclass(frozen=True)
class Room:
    id: str
    name: str
    settings: RoomSettings
    created_at: float
    challenge: Challenge | None = None
    nudge: str | None = None
    nudge_seq: int = 0
    nudge_at: float | None = None
    closed_at: float | None = None

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


@dataclass(frozen=True)
class Participant:
    room_id: str
    owner: str  # the browser's owner key (never shown)
    display_name: str
    joined_at: float


@dataclass(frozen=True)
class RoomRun:
    """A run launched in a room, under the display name of whoever launched it."""

    room_id: str
    run_id: str
    owner: str
    display_name: str
    share_numbers: bool  # the owner's opt-in to show a run on uploaded text's numbers to the room
    created_at: float


@dataclass(frozen=True)
class CreatedRoom:
    room: Room
    token: str  # the instructor token: shown once, never stored in clear


# ------------------------------------------------------------------------------ checks
def locked_problems(settings: RoomSettings, config: TrainConfig, presets: Mapping[str, TrainConfig]) -> list[str]:
    """Labels of the settings ``config`` changed that the room keeps locked; [] if it fits a preset.

    A config fits when some allowed preset agrees with it on every field that no unlocked control
    covers (the corpus excepted: :func:`corpus_problem`). Both sides are normalized first (Laplace's
    accountant and engine follow from the mechanism). The answer names the closest preset's differences.
    """
    free = {f for c in CONTROLS if c.name in settings.unlocked for f in c.fields} | set(CORPUS_FIELDS)
    names = [f.name for f in fields(TrainConfig) if f.name not in free]
    mine = config.normalized().to_dict()
    best: list[str] | None = None
    for preset_name in settings.presets:
        if preset_name not in presets:
            continue
        base = presets[preset_name].normalized().to_dict()
        differ = [n for n in names if mine.get(n) != base.get(n)]
        if not differ:
            return []
        if best is None or len(differ) < len(best):
            best = differ
    labels: list[str] = []
    for name in best or []:
        control = next((c for c in CONTROLS if name in c.fields), None)
        label = control.label if control else f"{name.replace('_', ' ')} (fixed in this room)"
        if label not in labels:
            labels.append(label)
    return labels


def corpus_problem(settings: RoomSettings, config: TrainConfig) -> str | None:
    """Why the config's corpus is not allowed in the room (None: it is)."""
    if settings.corpus == "builtin" and config.corpus != "builtin":
        return "this room trains on the built-in corpus only"
    return None


def clean_display_name(name: str) -> str:
    """A display name: printable, single-spaced, 1 to :data:`MAX_DISPLAY_NAME` characters."""
    text = "".join(ch for ch in unicodedata.normalize("NFC", str(name)) if unicodedata.category(ch)[0] != "C")
    text = " ".join(text.split())
    if not text:
        raise RoomError("choose a display name (any name the room will see next to your runs)")
    if len(text) > MAX_DISPLAY_NAME:
        raise RoomError(f"a display name has at most {MAX_DISPLAY_NAME} characters")
    return text


def _token_hash(token: str) -> str:
    return hashlib.sha256(str(token).encode()).hexdigest()


# ------------------------------------------------------------------------------ the store
class RoomStore:
    """Rooms, participants and room runs in ``<data folder>/rooms.sqlite3``, beside ``runs``'s store.

    ``presets`` (name -> config) are the configurations a room may allow; the dashboard passes
    :data:`dpcore.config.presets.PRESETS` (the runs layer does not import the views).
    """

    def __init__(self, runs: RunStore, presets: Mapping[str, TrainConfig]) -> None:
        self.runs = runs
        self.presets = dict(presets)
        self.db_path: Path = runs.data_dir / ROOMS_FILENAME
        self._db = Database(self.db_path, label="the rooms file", migrations=MIGRATIONS)

    # ------------------------------------------------------------------ connections
    def _conn(self, write: bool = True) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """A write (``BEGIN IMMEDIATE``) or read transaction of the rooms file (:mod:`dpcore.runs.db`)."""
        return self._db.transaction(write=write)

    # ------------------------------------------------------------------ rooms
    def create_room(self, name: str, settings: RoomSettings | None = None,
                    challenge: Challenge | None = None) -> CreatedRoom:
        """A new open room; returns it with its instructor token (shown once: keep it)."""
        name = " ".join(str(name).split())
        if not name or len(name) > MAX_NAME:
            raise RoomError(f"a room needs a name of 1 to {MAX_NAME} characters")
        settings = (settings or RoomSettings()).validate(self.presets)
        if challenge is not None:
            challenge.validate()
        token = secrets.token_urlsafe(24)
        room_id = secrets.token_hex(8)
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO rooms (id, name, token_sha256, settings, challenge, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (room_id, name, _token_hash(token), json.dumps(settings.to_dict()), _challenge_json(challenge),
                 time.time()),
            )
        return CreatedRoom(self.get_room(room_id), token)

    def get_room(self, room_id: str) -> Room:
        if not isinstance(room_id, str) or not _ROOM_ID_RE.match(room_id):
            raise RoomNotFound("there is no room with that id: check the join link")
        with self._conn(write=False) as conn:
            row = conn.execute("SELECT * FROM rooms WHERE id = ?", (room_id,)).fetchone()
        if row is None:
            raise RoomNotFound("there is no room with that id: check the join link")
        return _room_from_row(row)

    def is_instructor(self, room_id: str, token: str | None) -> bool:
        """Does ``token`` give instructor rights in the room? (Constant-time comparison.)"""
        if not token:
            return False
        with self._conn(write=False) as conn:
            row = conn.execute("SELECT token_sha256 FROM rooms WHERE id = ?", (room_id,)).fetchone()
        return row is not None and hmac.compare_digest(row[0], _token_hash(token))

    def _authorize(self, conn: sqlite3.Connection, room_id: str, token: str | None) -> Room:
        row = conn.execute("SELECT * FROM rooms WHERE id = ?", (room_id,)).fetchone()
        if row is None:
            raise RoomNotFound("there is no room with that id: check the join link")
        if not token or not hmac.compare_digest(row["token_sha256"], _token_hash(token)):
            raise RoomAccessDenied("only the room's instructor can do that (their instructor link holds the key)")
        return _room_from_row(row)

    def nudge(self, room_id: str, token: str | None, text: str) -> Room:
        """Show ``text`` as a banner in every participant's browser (an empty text clears it)."""
        text = " ".join(str(text).split())
        if len(text) > MAX_NUDGE:
            raise RoomError(f"a nudge has at most {MAX_NUDGE} characters")
        with self._conn() as conn:
            self._authorize(conn, room_id, token)
            conn.execute("UPDATE rooms SET nudge = ?, nudge_seq = nudge_seq + 1, nudge_at = ? WHERE id = ?",
                         (text or None, time.time(), room_id))
        return self.get_room(room_id)

    def set_unlocked(self, room_id: str, token: str | None, unlocked: Sequence[str]) -> Room:
        """Lock or unlock controls: ``unlocked`` lists the controls participants may change from now on."""
        with self._conn() as conn:
            room = self._authorize(conn, room_id, token)
            settings = RoomSettings(room.settings.presets, tuple(unlocked), room.settings.quota,
                                    room.settings.corpus).validate(self.presets)
            conn.execute("UPDATE rooms SET settings = ? WHERE id = ?", (json.dumps(settings.to_dict()), room_id))
        return self.get_room(room_id)

    def set_challenge(self, room_id: str, token: str | None, challenge: Challenge | None) -> Room:
        if challenge is not None:
            challenge.validate()
        with self._conn() as conn:
            self._authorize(conn, room_id, token)
            conn.execute("UPDATE rooms SET challenge = ? WHERE id = ?", (_challenge_json(challenge), room_id))
        return self.get_room(room_id)

    def close_room(self, room_id: str, token: str | None) -> Room:
        """Close the room: no more joins or launches; its runs and its list stay (for the class report)."""
        with self._conn() as conn:
            self._authorize(conn, room_id, token)
            conn.execute("UPDATE rooms SET closed_at = COALESCE(closed_at, ?) WHERE id = ?", (time.time(), room_id))
        return self.get_room(room_id)

    # ------------------------------------------------------------------ participants
    def join(self, room_id: str, owner: str, display_name: str) -> Participant:
        """Join (or rename oneself in) an open room; display names are unique per room."""
        name = clean_display_name(display_name)
        key = name.casefold()
        with self._conn() as conn:
            row = conn.execute("SELECT closed_at FROM rooms WHERE id = ?", (room_id,)).fetchone()
            if row is None:
                raise RoomNotFound("there is no room with that id: check the join link")
            if row[0] is not None:
                raise RoomError("this room is closed: it takes no new participants")
            taken = conn.execute("SELECT owner FROM participants WHERE room_id = ? AND name_key = ?",
                                 (room_id, key)).fetchone()
            if taken is not None and taken[0] != owner:
                raise RoomError(f"someone in this room is already called {name!r}: choose another name")
            conn.execute(
                "INSERT INTO participants (room_id, owner, display_name, name_key, joined_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (room_id, owner) DO UPDATE SET display_name = excluded.display_name, "
                "name_key = excluded.name_key",
                (room_id, owner, name, key, time.time()),
            )
        return self.participant(room_id, owner)  # type: ignore[return-value]

    def participant(self, room_id: str, owner: str) -> Participant | None:
        with self._conn(write=False) as conn:
            row = conn.execute("SELECT room_id, owner, display_name, joined_at FROM participants "
                               "WHERE room_id = ? AND owner = ?", (room_id, owner)).fetchone()
        return None if row is None else Participant(**dict(row))

    def participants(self, room_id: str) -> list[Participant]:
        with self._conn(write=False) as conn:
            rows = conn.execute("SELECT room_id, owner, display_name, joined_at FROM participants "
                                "WHERE room_id = ? ORDER BY joined_at", (room_id,)).fetchall()
        return [Participant(**dict(r)) for r in rows]

    def rooms_of(self, owner: str) -> list[Room]:
        """Open rooms ``owner`` has joined, most recently joined first."""
        with self._conn(write=False) as conn:
            rows = conn.execute(
                "SELECT rooms.* FROM rooms JOIN participants ON participants.room_id = rooms.id "
                "WHERE participants.owner = ? AND rooms.closed_at IS NULL ORDER BY participants.joined_at DESC",
                (owner,),
            ).fetchall()
        return [_room_from_row(r) for r in rows]

    def leave(self, room_id: str, owner: str) -> None:
        """Stop launching in the room (the runs already launched stay on its page)."""
        with self._conn() as conn:
            conn.execute("DELETE FROM participants WHERE room_id = ? AND owner = ?", (room_id, owner))

    # ------------------------------------------------------------------ runs
    def check_launch(self, room_id: str, owner: str, config: TrainConfig) -> Room:
        """Raise :class:`RoomError` (one sentence) unless ``owner`` may launch ``config`` in the room now."""
        with self._conn(write=False) as conn:
            return self._check(conn, room_id, owner, config)

    def _check(self, conn: sqlite3.Connection, room_id: str, owner: str, config: TrainConfig) -> Room:
        row = conn.execute("SELECT * FROM rooms WHERE id = ?", (room_id,)).fetchone()
        if row is None:
            raise RoomNotFound("there is no room with that id: check the join link")
        room = _room_from_row(row)
        if not room.is_open:
            raise RoomError("this room is closed: launch from New run outside the room instead")
        if conn.execute("SELECT 1 FROM participants WHERE room_id = ? AND owner = ?",
                        (room_id, owner)).fetchone() is None:
            raise RoomError("join the room (choose a display name on its page) before launching in it")
        used = conn.execute("SELECT COUNT(*) FROM room_runs WHERE room_id = ? AND owner = ?",
                            (room_id, owner)).fetchone()[0]
        if used >= room.settings.quota:
            raise RoomError(f"you have launched {used} runs in this room, its limit per participant: "
                            "compare them on the room page, or ask the instructor")
        problem = corpus_problem(room.settings, config)
        if problem:
            raise RoomError(problem)
        locked = locked_problems(room.settings, config, self.presets)
        if locked:
            raise RoomError(f"this room keeps these settings as its presets have them: {', '.join(locked)}")
        return room

    def launch(self, room_id: str, owner: str, config: TrainConfig, executor: Any) -> str:
        """Check the room's rules, submit the run for ``owner`` (``executor.submit``) and list it in the room.

        The quota count, the submit and the room row are one write transaction of the rooms file, so two
        launches racing from one participant cannot both pass the last free slot.
        """
        with self._conn() as conn:
            self._check(conn, room_id, owner, config)
            run_id = executor.submit(owner, config)
            conn.execute("INSERT INTO room_runs (room_id, run_id, owner, share_numbers, created_at) "
                         "VALUES (?, ?, ?, 0, ?)", (room_id, run_id, owner, time.time()))
        return str(run_id)

    def set_share_numbers(self, room_id: str, run_id: str, owner: str, value: bool) -> None:
        """The run's owner opts in (or out) to show a run on uploaded text's numbers on the room page."""
        with self._conn() as conn:
            cur = conn.execute("UPDATE room_runs SET share_numbers = ? WHERE room_id = ? AND run_id = ? AND owner = ?",
                               (1 if value else 0, room_id, run_id, owner))
            if cur.rowcount != 1:
                raise RoomError("that run is not one of yours in this room")

    def room_runs(self, room_id: str) -> list[RoomRun]:
        """The room's runs, oldest first, with the display name each was launched under."""
        with self._conn(write=False) as conn:
            rows = conn.execute(
                "SELECT r.room_id, r.run_id, r.owner, COALESCE(p.display_name, '(left the room)') AS display_name, "
                "r.share_numbers, r.created_at FROM room_runs r LEFT JOIN participants p "
                "ON p.room_id = r.room_id AND p.owner = r.owner WHERE r.room_id = ? ORDER BY r.created_at",
                (room_id,),
            ).fetchall()
        return [RoomRun(**{**dict(r), "share_numbers": bool(r["share_numbers"])}) for r in rows]

    def runs_used(self, room_id: str, owner: str) -> int:
        with self._conn(write=False) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM room_runs WHERE room_id = ? AND owner = ?",
                                    (room_id, owner)).fetchone()[0])


def _challenge_json(challenge: Challenge | None) -> str | None:
    return None if challenge is None else json.dumps({"kind": challenge.kind, "value": challenge.value})


def _room_from_row(row: sqlite3.Row) -> Room:
    data = dict(row)
    challenge = json.loads(data["challenge"]) if data.get("challenge") else None
    return Room(
        id=data["id"], name=data["name"], settings=RoomSettings.from_dict(json.loads(data["settings"])),
        created_at=data["created_at"], challenge=Challenge(challenge["kind"], float(challenge["value"]))
        if challenge else None, nudge=data.get("nudge"), nudge_seq=int(data.get("nudge_seq") or 0),
        nudge_at=data.get("nudge_at"), closed_at=data.get("closed_at"),
    )

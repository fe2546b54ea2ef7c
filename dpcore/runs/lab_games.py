"""The attack lab's games in the run store: canaries dealt to a visitor, their guesses, the coins after.

A pool is one visitor's games outside a room (``solo:<visitor>``) or one room's games
(``room:<room id>``). Dealing and guessing each happen in one ``BEGIN IMMEDIATE`` transaction, so two
tabs or two room members at once never get the same canary from a pool, and a coin leaves this module
only as the answer to a guess already recorded (see :mod:`dpcore.audit.lab` for why that keeps the
one-run bound sound).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

from dpcore.audit.lab import LAB_FILE, MAX_TRIES, ROUNDS, ExtractionTarget, LabCanaries, canary_order, load_lab_canaries
from dpcore.errors import DPCoreError
from dpcore.runs import access
from dpcore.runs.store import Run, RunStore

_CACHE: dict[str, tuple[float, LabCanaries]] = {}
_CACHE_LOCK = threading.Lock()


class LabExhausted(DPCoreError):
    """Every canary of this model has been dealt in this pool or seen by this visitor."""


class NotYourGame(DPCoreError):
    """A guess for a game that is not the caller's, a canary not in it, or one already guessed."""


@dataclass(frozen=True)
class GuessRecord:
    canary: int
    guess: bool | None  # True: "trained on"; None: skipped
    correct: bool


@dataclass(frozen=True)
class Reveal:
    """A recorded guess and the coin it asked about, shown to the one who guessed."""

    record: GuessRecord
    truth: bool


@dataclass(frozen=True)
class Game:
    """A game as stored: the canaries dealt (in play order) and the guesses made so far."""

    id: int
    run_id: str
    pool: str
    player: str
    canaries: tuple[int, ...]
    prediction: float | None
    guesses: dict[int, GuessRecord] = field(default_factory=dict)

    @property
    def next_canary(self) -> int | None:
        return next((c for c in self.canaries if c not in self.guesses), None)

    @property
    def finished(self) -> bool:
        return self.next_canary is None

    @property
    def made(self) -> int:
        return sum(g.guess is not None for g in self.guesses.values())

    @property
    def correct(self) -> int:
        return sum(g.correct for g in self.guesses.values())


def lab_of(store: RunStore, run: Run) -> LabCanaries | None:
    """The run's lab canaries (read once per file version and kept in this process), or None."""
    if not run.is_terminal or str(run.status) != "finished":
        return None
    path = store.run_dir(run.id) / LAB_FILE
    try:
        version = path.stat().st_mtime
    except OSError:
        return None
    with _CACHE_LOCK:
        hit = _CACHE.get(str(path))
    if hit is not None and hit[0] == version:
        return hit[1]
    lab = load_lab_canaries(path.parent)
    if lab is not None:
        with _CACHE_LOCK:
            if len(_CACHE) > 64:
                _CACHE.clear()
            _CACHE[str(path)] = (version, lab)
    return lab


@dataclass(frozen=True)
class Extraction:
    """One visitor's tries at one planted secret; ``secret`` is filled in only once it is theirs to see."""

    target: str
    attempts: tuple[str, ...]
    found: bool
    gave_up: bool
    secret: str | None

    @property
    def tries(self) -> int:
        return len(self.attempts)

    @property
    def over(self) -> bool:
        return self.found or self.gave_up or self.tries >= MAX_TRIES


class NotYourModel(DPCoreError):
    """A stranger asked to attack a model without a guarantee trained on someone's upload."""


def may_play(run: Run, player: str | None) -> bool:
    """Anyone may attack a DP or built-in model; a model without a guarantee trained on an upload is its owner's:
    its losses, even on synthetic canaries, are statistics of weights that no ε covers."""
    return not (access.owner_only(run) and access.is_stranger(run, player))


def pool_of(player: str, room: str | None) -> str:
    """The pool a visitor's games count in: their room's, or their own."""
    return f"room:{room}" if room else f"solo:{player}"


class LabGames:
    """Games over the run store's ``lab_games`` and ``lab_guesses`` tables."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    def start(self, run_id: str, player: str, lab: LabCanaries, *, room: str | None = None,
              prediction: float | None = None, rounds: int = ROUNDS) -> Game:
        """Deal a new game of ``rounds`` canaries, none dealt in this pool or seen by this visitor before."""
        if prediction is not None and not 0.0 <= prediction <= 1.0:
            raise DPCoreError(f"a predicted success rate is between 0 and 1, got {prediction!r}")
        if not may_play(self.store.get_run(run_id), player):  # RunNotFound for an unknown run
            raise NotYourModel("this model has no guarantee and trained on its owner's upload: only they may attack it")
        pool = pool_of(player, room)
        with self.store.transaction() as conn:
            dealt = conn.execute("SELECT pool, player, canaries FROM lab_games WHERE run_id = ?",
                                 (run_id,)).fetchall()
            used = {c for row in dealt if row["pool"] == pool or row["player"] == player
                    for c in json.loads(row["canaries"])}
            block = [c for c in canary_order(lab.m, f"{run_id}\x00{pool}") if c not in used][:rounds]
            if len(block) < rounds:
                raise LabExhausted("every canary of this model has been played here: pick another model")
            cur = conn.execute(
                "INSERT INTO lab_games (run_id, pool, player, canaries, prediction, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)", (run_id, pool, player, json.dumps(block), prediction, time.time()))
            game_id = int(cur.lastrowid)
        return Game(id=game_id, run_id=run_id, pool=pool, player=player, canaries=tuple(block),
                    prediction=prediction)

    def current(self, run_id: str, player: str, *, room: str | None = None) -> Game | None:
        """The visitor's latest game in this pool, finished or not (None before their first)."""
        games = [g for g in self.pool_games(run_id, pool_of(player, room)) if g.player == player]
        return games[-1] if games else None

    def guess(self, game_id: int, player: str, canary: int, guess: bool | None, lab: LabCanaries) -> Reveal:
        """Record a guess (None: skip) and only then read the coin, which goes back to the guesser alone."""
        with self.store.transaction() as conn:
            row = conn.execute("SELECT player, canaries FROM lab_games WHERE id = ?", (game_id,)).fetchone()
            if row is None or row["player"] != player or canary not in json.loads(row["canaries"]):
                raise NotYourGame("that canary is not in your game")
            if conn.execute("SELECT 1 FROM lab_guesses WHERE game_id = ? AND canary = ?",
                            (game_id, canary)).fetchone():
                raise NotYourGame("that canary has been guessed already")
            truth = lab.truth(canary)
            correct = guess is not None and guess == truth
            conn.execute("INSERT INTO lab_guesses (game_id, canary, guess, correct, ts) VALUES (?, ?, ?, ?, ?)",
                         (game_id, canary, None if guess is None else int(guess), int(correct), time.time()))
        return Reveal(GuessRecord(canary=canary, guess=guess, correct=correct), truth)

    def pool_games(self, run_id: str, pool: str) -> list[Game]:
        """Every game of a pool, oldest first, with its guesses."""
        with self.store.transaction(write=False) as conn:
            games = conn.execute("SELECT * FROM lab_games WHERE run_id = ? AND pool = ? ORDER BY id",
                                 (run_id, pool)).fetchall()
            guesses = conn.execute(
                "SELECT lab_guesses.* FROM lab_guesses JOIN lab_games ON lab_games.id = lab_guesses.game_id "
                "WHERE run_id = ? AND pool = ?", (run_id, pool)).fetchall()
        by_game: dict[int, dict[int, GuessRecord]] = {}
        for g in guesses:
            by_game.setdefault(int(g["game_id"]), {})[int(g["canary"])] = GuessRecord(
                canary=int(g["canary"]), guess=None if g["guess"] is None else bool(g["guess"]),
                correct=bool(g["correct"]))
        return [Game(id=int(r["id"]), run_id=r["run_id"], pool=r["pool"], player=r["player"],
                     canaries=tuple(json.loads(r["canaries"])), prediction=r["prediction"],
                     guesses=by_game.get(int(r["id"]), {})) for r in games]

    def player_games(self, player: str) -> list[Game]:
        """Every game this visitor played, on any model and in any pool (for their predictions table)."""
        with self.store.transaction(write=False) as conn:
            keys = conn.execute("SELECT DISTINCT run_id, pool FROM lab_games WHERE player = ?", (player,)).fetchall()
        return [g for k in keys for g in self.pool_games(k["run_id"], k["pool"]) if g.player == player]

    # ------------------------------------------------------------------ the extraction game
    def extraction(self, run_id: str, player: str, target: ExtractionTarget) -> Extraction:
        """This visitor's tries at ``target`` so far (the secret only once found, given up or out of tries)."""
        with self.store.transaction(write=False) as conn:
            return self._extraction(conn, run_id, player, target)

    def try_secret(self, run_id: str, player: str, target: ExtractionTarget, attempt: str | None) -> Extraction:
        """Record a try (None: give up) and return the state after it; a malformed try is refused, not counted."""
        shaped = None
        if attempt is not None:
            shaped = target.normalise(attempt)
            if shaped is None:
                raise DPCoreError(f"a guess is {target.length} symbols from {target.alphabet!r}, e.g. "
                                  f"{target.separator.join(target.alphabet[:1] * target.length)!r}")
        with self.store.transaction() as conn:
            now = self._extraction(conn, run_id, player, target)
            if now.over:
                return now
            if shaped is not None and shaped in now.attempts:
                raise DPCoreError(f"you have tried {shaped} already")
            conn.execute("INSERT INTO lab_tries (run_id, player, target, attempt, correct, ts) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         (run_id, player, target.canary_id, shaped, int(shaped == target.secret), time.time()))
            return self._extraction(conn, run_id, player, target)

    @staticmethod
    def _extraction(conn, run_id: str, player: str, target: ExtractionTarget) -> Extraction:
        rows = conn.execute("SELECT attempt, correct FROM lab_tries WHERE run_id = ? AND player = ? AND target = ? "
                            "ORDER BY id", (run_id, player, target.canary_id)).fetchall()
        attempts = tuple(r["attempt"] for r in rows if r["attempt"] is not None)
        found = any(r["correct"] for r in rows)
        gave_up = any(r["attempt"] is None for r in rows)
        over = found or gave_up or len(attempts) >= MAX_TRIES
        return Extraction(target=target.canary_id, attempts=attempts, found=found, gave_up=gave_up,
                          secret=target.secret if over else None)

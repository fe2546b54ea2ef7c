"""The attack lab's secrets and its scoreboard: visitors guess which audit canaries a model trained on.

**What is kept.** A run audited with canaries keeps, beside ``audit.json``, ``lab_canaries.npz`` (0600,
in the run's folder, never served, never in a report or an export): each canary's text, its score under
the trained model (minus its loss, as the audit scored it) and its secret coin. The coins concern only
the synthetic canaries, never anyone's text; they are the game's answers, so a visitor learns a coin only
after guessing it (:mod:`dpcore.runs.lab_games` enforces that).

**A game.** ``ROUNDS`` canaries, fixed when the game starts, drawn in an order keyed by the run and the
pool (:func:`canary_order`), which depends on nothing but public names, never on the coins. A pool (one
visitor's games outside a room, or one room's games) never deals a canary twice, and never deals a
visitor a canary whose coin they have already seen.

**Why the one-run theorem still holds with the answer shown after each guess.** For a run that is
(ε, 0)-DP in each coin, given the model and any set of coins already revealed, the odds of the next coin
are within e^±ε (each fair coin's likelihood ratio is an average of ratios within e^±ε), so each guess is
right with probability at most e^ε/(1+e^ε) whatever came before: the count of right guesses is dominated
by Binomial(r, e^ε/(1+e^ε)), exactly the bound :func:`dpcore.audit.one_run.epsilon_lower_bound` inverts.
For δ > 0 the page relies on the theorem of Steinke, Nasr and Jagielski (2023), whose proof bounds the
guesses one at a time given what came before (our reading of it; with δ = 0 the argument above stands alone). Skipped
rounds count as guesses not made, which can only lower the count. The number of games a pool plays is
not fixed in advance (visitors decide to play on after seeing how they did), so the pooled bound pays for
every possible pool size: with G games it is tested at α/2 for one game and at α / (2·(M − 1)) for more,
M = the most games the canaries allow (:func:`pool_alpha`), which sums to α over all G.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from dpcore.audit.defaults import CONFIDENCE
from dpcore.audit.fdp import DEFAULT_FAMILY, epsilon_lower_bound_fdp, fdp_ceiling
from dpcore.audit.one_run import epsilon_lower_bound
from dpcore.errors import DPCoreError

#: The lab's secret file in a run's folder.
LAB_FILE = "lab_canaries.npz"
#: Guesses in one game, fixed before it starts.
ROUNDS = 20
#: The extraction game: the model's own first guesses shown as the hint, and the tries a visitor gets.
HINTS = 20
MAX_TRIES = 20


@dataclass(frozen=True)
class Candidate:
    """What a visitor sees of one canary before guessing: its text, its loss and its loss rank, no coin."""

    canary: int
    text: str
    loss: float
    rank: int  # 1 = the lowest loss of all m canaries: the likeliest member, to an attacker who ranks by loss
    m: int


@dataclass(frozen=True)
class ExtractionTarget:
    """A planted secret of the built-in corpus for the extraction game: its prefix, format and the model's
    first guesses (the hint a real attacker computes from the weights), the audit's rank and exposure, and the
    secret itself, which :mod:`dpcore.runs.lab_games` hands out only once a visitor has found it or given up."""

    canary_id: str
    prefix: str
    secret: str = field(repr=False)
    insertions: int
    alphabet: str
    length: int
    separator: str
    rank: float
    exposure: float
    max_exposure: float
    guesses: tuple[str, ...]

    def normalise(self, attempt: str) -> str | None:
        """A visitor's attempt in the secret's format ("4917" or "4 9 1 7" → "4 9 1 7"), or None if malformed."""
        symbols = [ch for ch in attempt if not ch.isspace() and ch not in ",-"]
        if len(symbols) != self.length or any(ch not in self.alphabet for ch in symbols):
            return None
        return self.separator.join(symbols)

    def is_secret(self, attempt: str) -> bool:
        return self.normalise(attempt) == self.secret


@dataclass(frozen=True)
class LabCanaries:
    """One run's canaries: texts, scores (higher = more likely trained on) and the secret coins; and the
    extraction game's targets (built-in corpus only)."""

    texts: tuple[str, ...]
    scores: np.ndarray
    included: np.ndarray = field(repr=False)
    extraction: tuple[ExtractionTarget, ...] = ()

    def __post_init__(self) -> None:
        if not (len(self.texts) == len(self.scores) == len(self.included)) or not self.texts:
            raise DPCoreError("the attack lab's canary file is damaged (its parts disagree in length)")

    @property
    def m(self) -> int:
        return len(self.texts)

    def candidate(self, canary: int) -> Candidate:
        score = float(self.scores[canary])
        rank = 1 + int(np.count_nonzero(self.scores > score))
        return Candidate(canary=canary, text=self.texts[canary], loss=-score, rank=rank, m=self.m)

    def truth(self, canary: int) -> bool:
        """The coin: was this canary trained on? Only :mod:`dpcore.runs.lab_games` asks, after a guess."""
        return bool(self.included[canary])


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else "·" for ch in text)


def save_lab_canaries(run_dir: str | os.PathLike[str], texts: list[str], scores: np.ndarray,
                      included: np.ndarray, *, extraction: list[ExtractionTarget] | tuple = ()) -> Path:
    """Write the lab's file (0600, atomically) and return its path."""
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    path, tmp = out / LAB_FILE, out / (LAB_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        np.savez_compressed(fh, texts=np.array([_printable(t) for t in texts], dtype=np.str_),
                 scores=np.asarray(scores, dtype=np.float64), included=np.asarray(included, dtype=bool),
                 extraction=np.array(json.dumps([asdict(t) for t in extraction], ensure_ascii=False)))
    os.replace(tmp, path)
    return path


def load_lab_canaries(run_dir: str | os.PathLike[str]) -> LabCanaries | None:
    """The run's lab canaries, or None when the run kept none (no audit, or audited before the lab)."""
    path = Path(run_dir) / LAB_FILE
    try:
        with np.load(path, allow_pickle=False) as data:
            extraction = json.loads(str(data["extraction"])) if "extraction" in data.files else []
            return LabCanaries(texts=tuple(str(t) for t in data["texts"]), scores=data["scores"].copy(),
                               included=data["included"].astype(bool),
                               extraction=tuple(ExtractionTarget(**{**t, "guesses": tuple(t["guesses"])})
                                                for t in extraction))
    except FileNotFoundError:
        return None
    except (OSError, KeyError, TypeError, ValueError) as err:
        raise DPCoreError(f"the attack lab's canary file {path} cannot be read: {err}") from err


def canary_order(m: int, key: str) -> list[int]:
    """All m canaries in an order fixed by ``key`` alone (a BLAKE2b hash), so never by the coins."""
    def rank(i: int) -> bytes:
        return hashlib.blake2b(f"{key}\x00{i}".encode(), digest_size=16).digest()

    return sorted(range(m), key=rank)


def max_games(m: int, rounds: int = ROUNDS) -> int:
    """The most games one pool can play before its canaries run out."""
    return max(1, m // rounds)


def pool_alpha(games: int, most: int, confidence: float = CONFIDENCE) -> float:
    """The failure rate a pool of ``games`` games is tested at, so that all possible sizes share 1 − confidence."""
    if games < 1 or games > most:
        raise DPCoreError(f"a pool holds 1 to {most} games, not {games}")
    alpha = 1.0 - confidence
    if most == 1 or games == 1:
        return alpha / 2 if most > 1 else alpha
    return alpha / (2 * (most - 1))


@dataclass(frozen=True)
class Score:
    """A pool's guesses as ε lower bounds, with the audit's own formulas."""

    games: int
    made: int  # guesses made (skips excluded)
    correct: int
    r: int  # guesses the pool could have made (games × rounds): the count the bound is computed with
    alpha: float
    epsilon: float  # Steinke, Nasr & Jagielski
    epsilon_fdp: float  # Mahloujifar, Melis & Chaudhuri
    ceiling: float  # the most r guesses, all right, could show
    ceiling_fdp: float
    alarm_epsilon: float  # each bound at α/2, to test a claim with both together
    alarm_epsilon_fdp: float
    fdp_family: str

    @property
    def success(self) -> float | None:
        return self.correct / self.made if self.made else None


def pooled_score(m: int, games: int, made: int, correct: int, *, delta: float, rounds: int = ROUNDS,
                 confidence: float = CONFIDENCE, family: str = DEFAULT_FAMILY) -> Score:
    """The ε lower bounds a pool's ``correct`` right guesses show, over ``games`` games of ``rounds``."""
    if not 0 <= correct <= made <= games * rounds:
        raise DPCoreError(f"{correct} right of {made} guesses in {games} games of {rounds} do not add up")
    family = "approx" if delta == 0.0 else family  # as the audit: a pure-DP claim is tested with its own curve
    r = games * rounds
    alpha = pool_alpha(games, max_games(m, rounds), confidence)
    return Score(
        games=games, made=made, correct=correct, r=r, alpha=alpha,
        epsilon=epsilon_lower_bound(m, r, correct, delta=delta, alpha=alpha),
        epsilon_fdp=epsilon_lower_bound_fdp(m, r, correct, delta=delta, alpha=alpha, family=family),
        ceiling=epsilon_lower_bound(m, r, r, delta=delta, alpha=alpha),
        ceiling_fdp=fdp_ceiling(m, r, delta=delta, alpha=alpha, family=family),
        alarm_epsilon=epsilon_lower_bound(m, r, correct, delta=delta, alpha=alpha / 2),
        alarm_epsilon_fdp=epsilon_lower_bound_fdp(m, r, correct, delta=delta, alpha=alpha / 2, family=family),
        fdp_family=family,
    )


def all_canaries_ceiling(m: int, *, delta: float, rounds: int = ROUNDS, confidence: float = CONFIDENCE) -> float:
    """The most any pool could ever show on this model: every one of its m canaries guessed, all right."""
    most = max_games(m, rounds)
    r = most * rounds
    return epsilon_lower_bound(m, r, r, delta=delta, alpha=pool_alpha(most, most, confidence))


def best_success(epsilon: float | None, delta: float) -> float:
    """The most often any attacker guesses a fair coin right against an (ε, δ)-DP run: (e^ε + δ)/(1 + e^ε)."""
    if epsilon is None or not math.isfinite(epsilon):
        return 1.0
    return min(1.0, (math.exp(epsilon) + delta) / (1.0 + math.exp(epsilon))) if epsilon < 700 else 1.0

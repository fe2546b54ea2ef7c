"""The corpus: records grouped by user, plus the canaries planted in it.

Users are the unit a split (and user-level privacy) works on, so every record carries a user id,
even for uploads that have none (see :mod:`dpcore.data.upload`). Canaries are secrets planted on
purpose so that an audit can later measure how much a model memorised them (the "secret sharer"
exposure test); the corpus keeps their exact text and how often each was planted.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from dpcore.errors import CorpusError

#: A canary may be planted at most this many times (more is a dataset, not a canary).
MAX_INSERTIONS = 1000


def normalize_text(text: str) -> str:
    """Collapse every run of whitespace (newlines included) to one space and strip the ends.

    A record must not contain a newline: the character tokenizer uses ``"\\n"`` as the record
    separator, so a stray one would blur where one record ends and the next begins.
    """
    return " ".join(text.split())


@dataclass(frozen=True)
class Record:
    """One message, post or line of text, written by ``user_id``."""

    user_id: str
    text: str


@dataclass(frozen=True)
class Canary:
    """A secret planted ``insertions`` times, e.g. ``"Dana Whitfield's PIN is " + "4 9 1 7"``.

    The secret is ``length`` symbols from ``alphabet`` joined by ``separator``, so an exposure
    test can enumerate (or sample) every candidate secret and rank the true one among them.
    """

    id: str
    prefix: str
    secret: str
    insertions: int
    alphabet: str = "0123456789"
    length: int = 4
    separator: str = " "

    def candidates_count(self) -> int:
        """Size of the candidate space, ``len(alphabet) ** length``."""
        return len(self.alphabet) ** self.length

    def format_secret(self, symbols: Sequence[str]) -> str:
        """``("4", "9", "1", "7") -> "4 9 1 7"`` (with the default separator)."""
        return self.separator.join(symbols)

    def text(self) -> str:
        """The planted record text: prefix followed by the secret."""
        return self.prefix + self.secret


@dataclass
class Corpus:
    """A named list of records, the canaries planted in them and free-form JSON metadata."""

    name: str
    records: list[Record]
    canaries: list[Canary] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def users(self) -> list[str]:
        """Sorted unique user ids."""
        return sorted({r.user_id for r in self.records})

    def num_chars(self) -> int:
        """Total characters over all records (separators not counted)."""
        return sum(len(r.text) for r in self.records)

    def texts_by_user(self) -> dict[str, list[str]]:
        """Each user's record texts, in corpus order."""
        out: dict[str, list[str]] = {}
        for r in self.records:
            out.setdefault(r.user_id, []).append(r.text)
        return out

    def canary_users(self) -> list[str]:
        """Sorted ids of users holding at least one canary record (they must train, never validate)."""
        texts = {c.text() for c in self.canaries}
        return sorted({r.user_id for r in self.records if r.text in texts})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, records included."""
        return {
            "name": self.name,
            "records": [[r.user_id, r.text] for r in self.records],
            "canaries": [asdict(c) for c in self.canaries],
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Corpus:
        try:
            return cls(
                name=str(data["name"]),
                records=[Record(str(u), str(t)) for u, t in data["records"]],
                canaries=[Canary(**c) for c in data.get("canaries", [])],
                metadata=dict(data.get("metadata", {})),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CorpusError(f"the stored corpus is malformed ({type(err).__name__}: {err})") from err


def _holder_rank(seed: int, user: str) -> bytes:
    """A user's place in the queue for holding a canary: BLAKE2b keyed with ``seed``, of the id alone."""
    key = hashlib.blake2b(str(seed).encode("ascii"), digest_size=32).digest()  # any int fits the 64-byte key
    return hashlib.blake2b(user.encode("utf-8"), key=key, digest_size=16, person=b"dprnn-canary").digest()


def add_canary(
    corpus: Corpus,
    prefix: str,
    secret: str,
    insertions: int,
    seed: int,
    alphabet: str = "0123456789",
    separator: str = " ",
    one_holder: bool = False,
) -> Corpus:
    """Return a copy of ``corpus`` with ``prefix + secret`` planted ``insertions`` times.

    Placement (chosen so the audit matches what DP promises and a split stays possible):

    * every insertion is its own record, put at a random position inside an *existing* user's
      records, so the canary reads like that user's data and the user-level privacy unit covers it;
    * the insertions of one canary go to distinct users while there are enough of them, or, with
      ``one_holder``, all to one user (a person who repeated their secret: what user-level DP
      protects as one, and sequence-level DP only through group privacy);
    * new holders are the free users with the smallest :func:`_holder_rank` (a keyed hash of
      ``seed`` and the user id alone), not a draw over the list of users: a draw over the list
      would reshuffle the holders whenever one person is added or removed, and holders always
      train, so other people would change side. With the rank, one person more or less changes
      a canary's holders only if that person ranks among them (they join and the last one leaves);
    * at most half of the corpus's users ever hold canaries (new holders are only drawn while that
      budget lasts; beyond it, insertions reuse current holders), because
      :func:`dpcore.data.dataset.build_lm_data` forces canary holders into the training split and
      needs other users for validation.

    The prefix must not already occur anywhere in the corpus, so that everything the model knows
    about the prefix comes from the planted copies.
    """
    if not prefix.strip():
        raise CorpusError("the canary prefix is empty; give the context that comes before the secret")
    if any(c in prefix + secret + separator for c in "\n\r"):
        raise CorpusError("the canary prefix, secret and separator must each fit on one line")
    if not alphabet or len(set(alphabet)) != len(alphabet) or set(separator) & set(alphabet):
        raise CorpusError(
            "the canary alphabet must be a non-empty string of distinct characters not used as the separator"
        )
    symbols = secret.split(separator) if separator else list(secret)
    if not secret or any(len(s) != 1 or s not in alphabet for s in symbols):
        raise CorpusError(
            f"the canary secret must be single characters from {alphabet!r} separated by {separator!r}"
        )
    if type(insertions) is not int or not 1 <= insertions <= MAX_INSERTIONS:
        raise CorpusError(f"canary insertions must be a whole number from 1 to {MAX_INSERTIONS}")
    if any(prefix.strip() in r.text for r in corpus.records):
        raise CorpusError("the canary prefix already appears in the corpus; choose a context that does not")
    users = corpus.users()
    if len(users) < 2:
        raise CorpusError("a canary needs a corpus with at least 2 users (one must stay out of training)")

    rng = random.Random(seed)
    holders = set(corpus.canary_users())
    budget = max(0, len(users) // 2 - len(holders))
    fresh = [u for u in users if u not in holders]
    fresh.sort(key=lambda u: _holder_rank(seed, u))
    new = fresh[: min(1 if one_holder else insertions, budget, len(fresh))]
    targets = list(new) * (insertions if one_holder and new else 1)
    pool = sorted(holders | set(new))
    while len(targets) < insertions:
        targets.append(rng.choice(pool))

    canary = Canary(
        id=f"canary-{len(corpus.canaries):02d}",
        prefix=prefix,
        secret=secret,
        insertions=insertions,
        alphabet=alphabet,
        length=len(symbols),
        separator=separator,
    )
    by_user: dict[str, list[Record]] = {}
    for r in corpus.records:
        by_user.setdefault(r.user_id, []).append(r)
    for user in targets:
        recs = by_user[user]
        recs.insert(rng.randint(0, len(recs)), Record(user, canary.text()))
    records = [r for recs in by_user.values() for r in recs]

    metadata = dict(corpus.metadata)
    placed = dict(metadata.get("canary_placement", {}))
    placed[canary.id] = sorted(targets)
    metadata["canary_placement"] = placed
    metadata["canary_users"] = sorted(holders | set(targets))
    return Corpus(corpus.name, records, [*corpus.canaries, canary], metadata)

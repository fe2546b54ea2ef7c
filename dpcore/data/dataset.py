"""Split a corpus by user and cut each user's text into fixed-length training windows.

Why by user: validation must measure how the model does on *people it never saw*, and privacy
audits compare seen and unseen users; a record-level split would leak each user's style and
personal details into validation. Canary holders always train (an audit measures memorisation
of what was trained on).

Why windows never cross users: a training example is the privacy unit of example-level DP-SGD,
so each example must belong to exactly one user (``train_example_users`` records whose it is).

Canaries: every planted canary record becomes its own window (padded, never cut by a window
boundary), so "planted k times" means exactly k training examples holding the whole
prefix + secret, each starting from a fresh hidden state -- as the exposure test scores it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import torch

from dpcore.data.corpus import Corpus
from dpcore.data.tokenizer import PAD_ID, CharTokenizer, WordTokenizer, make_tokenizer
from dpcore.errors import CorpusError

#: A window tail shorter than ``seq_len + 1`` is kept (padded) only with this many real tokens.
MIN_TAIL_TOKENS = 8


@dataclass
class LMData:
    """Token windows for next-token prediction: input ``x[:, :-1]``, target ``x[:, 1:]``.

    Tails are padded with ``PAD_ID``; a loss should ignore PAD targets and average each
    sequence's token losses before averaging over the batch (see dp-correctness.md).
    """

    train: torch.Tensor  # LongTensor [N, seq_len + 1]
    val: torch.Tensor  # LongTensor [M, seq_len + 1]
    tokenizer: CharTokenizer | WordTokenizer
    train_users: list[str]
    val_users: list[str]
    train_example_users: list[str]
    corpus: Corpus
    val_example_users: list[str] = field(default_factory=list)
    #: canary id -> train row indices of its planted copies
    canary_rows: dict[str, list[int]] = field(default_factory=dict)

    @property
    def seq_len(self) -> int:
        return int(self.train.shape[1]) - 1

    def summary(self) -> dict[str, Any]:
        """Sizes worth showing next to a run (no text)."""
        return {
            "corpus": self.corpus.name,
            "tokenizer": self.tokenizer.kind,
            "vocab_size": self.tokenizer.vocab_size,
            "seq_len": self.seq_len,
            "num_train_examples": int(self.train.shape[0]),
            "num_val_examples": int(self.val.shape[0]),
            "num_train_users": len(self.train_users),
            "num_val_users": len(self.val_users),
            "num_chars": self.corpus.num_chars(),
        }


def split_users(corpus: Corpus, val_fraction: float, split_seed: int) -> tuple[list[str], list[str]]:
    """(train users, val users), both sorted; canary holders are always in train.

    About ``val_fraction`` of all users validate (at least one), drawn with ``random.Random(split_seed)``
    from the users who hold no canary.
    """
    if not 0.0 < val_fraction < 1.0:
        raise CorpusError(f"the validation fraction must be between 0 and 1, got {val_fraction!r}")
    users = corpus.users()
    if len(users) < 2:
        raise CorpusError(f"the corpus has {len(users)} user(s); a split by user needs at least 2")
    forced = set(corpus.canary_users())
    free = [u for u in users if u not in forced]
    if not free:
        raise CorpusError("every user holds a canary, so no user can be held out for validation")
    n_val = min(max(1, round(val_fraction * len(users))), len(free), len(users) - 1)
    random.Random(split_seed).shuffle(free)
    val = set(free[:n_val])
    return [u for u in users if u not in val], sorted(val)


def _windows(ids: list[int], width: int, keep_tail: bool = False) -> list[list[int]]:
    out = []
    for start in range(0, len(ids), width):
        chunk = ids[start : start + width]
        if len(chunk) < width:
            if len(chunk) < MIN_TAIL_TOKENS and not keep_tail:
                break
            chunk = chunk + [PAD_ID] * (width - len(chunk))
        out.append(chunk)
    return out


def _user_windows(
    texts: list[str], tok: CharTokenizer | WordTokenizer, width: int, canary_texts: dict[str, str]
) -> tuple[list[list[int]], list[str | None]]:
    """Windows of one user and, for each, the canary id it holds (None for ordinary windows)."""
    stream: list[int] = []
    rows: list[list[int]] = []
    tags: list[str | None] = []
    for text in texts:
        ids = [*tok.encode(text), tok.eos_id]
        if text in canary_texts:
            chunks = _windows(ids, width, keep_tail=True)
            rows += chunks
            tags += [canary_texts[text]] * len(chunks)
        else:
            stream += ids
    plain = _windows(stream, width)
    return plain + rows, [None] * len(plain) + tags


def _stack(rows: list[list[int]], width: int) -> torch.Tensor:
    if not rows:
        return torch.empty((0, width), dtype=torch.long)
    return torch.tensor(rows, dtype=torch.long)


def build_lm_data(
    corpus: Corpus,
    *,
    tokenizer: str = "char",
    seq_len: int = 64,
    val_fraction: float = 0.1,
    max_vocab: int = 2000,
    split_seed: int = 0,
) -> LMData:
    """Split ``corpus`` by user, fit the tokenizer on the training users and cut windows.

    Each user's records are joined with the tokenizer's end-of-record token into one stream and
    cut into non-overlapping windows of ``seq_len + 1`` tokens; a shorter tail is padded if it has
    at least :data:`MIN_TAIL_TOKENS` real tokens, else dropped. The tokenizer sees training text
    only, so validation text can contain UNK.
    """
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise CorpusError(f"the sequence length must be a positive whole number, got {seq_len!r}")
    train_users, val_users = split_users(corpus, val_fraction, split_seed)
    by_user = corpus.texts_by_user()
    tok = make_tokenizer(tokenizer, (t for u in train_users for t in by_user[u]), max_vocab=max_vocab)
    canary_texts = {c.text(): c.id for c in corpus.canaries}
    width = seq_len + 1

    train_rows: list[list[int]] = []
    train_owner: list[str] = []
    canary_rows: dict[str, list[int]] = {c.id: [] for c in corpus.canaries}
    for user in train_users:
        rows, tags = _user_windows(by_user[user], tok, width, canary_texts)
        for row, tag in zip(rows, tags, strict=True):
            if tag is not None:
                canary_rows[tag].append(len(train_rows))
            train_rows.append(row)
            train_owner.append(user)
    val_rows: list[list[int]] = []
    val_owner: list[str] = []
    for user in val_users:
        rows, _ = _user_windows(by_user[user], tok, width, canary_texts)
        val_rows += rows
        val_owner += [user] * len(rows)

    if len(train_rows) < 2:
        raise CorpusError(
            f"the training users give only {len(train_rows)} example(s) of {width} tokens; "
            "need at least 2 (add text or lower the sequence length)"
        )
    if not val_rows:
        raise CorpusError(
            "the validation users give no examples (their text is too short); "
            "raise the validation fraction or lower the sequence length"
        )
    return LMData(
        train=_stack(train_rows, width),
        val=_stack(val_rows, width),
        tokenizer=tok,
        train_users=train_users,
        val_users=val_users,
        train_example_users=train_owner,
        corpus=corpus,
        val_example_users=val_owner,
        canary_rows=canary_rows,
    )

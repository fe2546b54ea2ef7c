"""Split a corpus by user and cut each record into fixed-length training windows.

Why by user: validation must measure how the model does on *people it never saw*, and privacy
audits compare seen and unseen users; a record-level split would leak each user's style and
personal details into validation. Canary holders always train (an audit measures memorisation
of what was trained on). Each user's side is a keyed hash of that user alone (:func:`split_users`),
so a neighbouring file (one person more or less) gives a training set with that person's windows
more or less and nothing else.

Why windows per record (dp-correctness.md, "Atomic units"): a training window is the privacy
unit of example-level DP-SGD, so it must be something that can be added or removed alone. Windows
cut from a user's concatenated stream are not: editing one record shifts every later window of
that user. Here every record is tokenised on its own as ``[EOS] + tokens + [EOS]`` and cut into
non-overlapping windows of ``seq_len + 1`` tokens, the last one PAD-padded, so changing a record
changes that record's windows and no other row. The leading EOS marks the start of a record, as
generation (``[EOS] + prompt`` in :mod:`dpcore.sampling` and :mod:`dpcore.privacy.decoders`) and canary
scoring (``[EOS] + prefix``) start. A record longer than one window becomes several windows
(each from a zero hidden state), i.e. several privacy units: a guarantee per sequence covers
such a record only per window (``num_multiwindow_records`` in :meth:`LMData.summary` counts them).
Each window belongs to exactly one user (``train_example_users`` records whose it is).

Canaries are ordinary records: each planted copy is its own record and so starts its own window,
from EOS; ``canary_rows`` maps each canary to the train rows of its copies (their first windows).

Vocabulary: never fitted on the records (the vocabulary ships with the model and would reveal
which tokens occur); see :mod:`dpcore.data.tokenizer` and :func:`build_lm_data`.

Torch is imported only where tensors are made (:func:`_stack`): :func:`summarize_lm_data` gives
the sizes the New run form shows without it, so the dashboard process never loads torch to draw
the form (and ``import dpcore.data`` stays torch-free).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dpcore.data.builtin import builtin_vocabulary
from dpcore.data.corpus import Corpus
from dpcore.data.tokenizer import (
    EOS_ID,
    PAD_ID,
    TOKENIZERS,
    ByteTokenizer,
    Tokenizer,
    public_word_count,
    public_word_tokenizer,
)
from dpcore.errors import CorpusError

if TYPE_CHECKING:  # annotations only: importing this module must not load torch
    import torch

#: A window is kept only with this many real (non-PAD) tokens: one input and its target.
MIN_WINDOW_TOKENS = 2


@dataclass
class LMData:
    """Token windows for next-token prediction: input ``x[:, :-1]``, target ``x[:, 1:]``.

    Every record's first window starts with EOS; its last one is padded with ``PAD_ID``. A loss
    should ignore PAD targets and average each sequence's token losses before averaging over the
    batch (see dp-correctness.md).
    """

    train: torch.Tensor  # LongTensor [N, seq_len + 1]
    val: torch.Tensor  # LongTensor [M, seq_len + 1]
    tokenizer: Tokenizer
    train_users: list[str]
    val_users: list[str]
    train_example_users: list[str]
    corpus: Corpus
    val_example_users: list[str] = field(default_factory=list)
    #: canary id -> train row indices of its planted copies
    canary_rows: dict[str, list[int]] = field(default_factory=dict)
    #: where the vocabulary comes from, in a short phrase (never from the records: ε = 0)
    vocabulary: str = ""
    #: records of the corpus, records of the training users, and training records longer than one window
    num_records: int = 0
    num_train_records: int = 0
    num_multiwindow_records: int = 0

    @property
    def seq_len(self) -> int:
        return int(self.train.shape[1]) - 1

    def summary(self) -> dict[str, Any]:
        """Sizes worth showing next to a run (no text); :func:`summarize_lm_data` gives the same without torch."""
        return _summary(self.corpus, self.tokenizer, self.vocabulary, self.seq_len,
                        num_train=int(self.train.shape[0]), num_val=int(self.val.shape[0]),
                        num_train_users=len(self.train_users), num_val_users=len(self.val_users),
                        num_records=self.num_records, num_train_records=self.num_train_records,
                        num_multiwindow_records=self.num_multiwindow_records)


def _summary(corpus: Corpus, tok: Tokenizer, vocabulary: str, seq_len: int, *, num_train: int, num_val: int,
             num_train_users: int, num_val_users: int, num_records: int, num_train_records: int,
             num_multiwindow_records: int) -> dict[str, Any]:
    """The one place the summary's keys are written (:meth:`LMData.summary`, :func:`summarize_lm_data`)."""
    return {
        "corpus": corpus.name,
        "tokenizer": tok.kind,
        "vocab_size": tok.vocab_size,
        "seq_len": seq_len,
        "num_train_examples": num_train,
        "num_val_examples": num_val,
        "num_train_users": num_train_users,
        "num_val_users": num_val_users,
        "num_chars": corpus.num_chars(),
        "num_records": num_records,
        "num_train_records": num_train_records,
        "num_multiwindow_records": num_multiwindow_records,
        "vocabulary": vocabulary,
        "vocabulary_epsilon": 0.0,
    }


#: Upload groupings whose user ids are line or row numbers (``line-000123``): such an id names a
#: position in the file, not a person, and shifts when a line is added above it.
POSITIONAL_GROUPINGS = frozenset({"each line", "each row"})


def _split_keys(corpus: Corpus) -> dict[str, str]:
    """What decides each user's side: their id, or their own text when the id is a line number.

    A positional id (:data:`POSITIONAL_GROUPINGS`) changes for every later line when one line is
    added or removed, so hashing it would move those users too; the user's own records (canary
    copies left out: they are not the user's text) move with the user and nobody else.
    """
    if corpus.metadata.get("user_grouping") not in POSITIONAL_GROUPINGS:
        return {u: "id\x00" + u for u in corpus.users()}
    canary_texts = {c.text() for c in corpus.canaries}
    own = {u: [t for t in texts if t not in canary_texts] for u, texts in corpus.texts_by_user().items()}
    return {u: "text\x00" + "\x00".join(texts) for u, texts in own.items()}


def validation_draw(split_seed: int, key: str) -> float:
    """A user's point in [0, 1): BLAKE2b keyed with the split seed over the user's split key.

    Deterministic for a seed (the non-private baseline is reproducible) and a function of the one
    user alone; the user validates when it is below the validation fraction.
    """
    if isinstance(split_seed, bool) or not isinstance(split_seed, int):
        raise CorpusError(f"the split seed must be a whole number, got {split_seed!r}")
    seed = str(split_seed).encode("ascii")
    if len(seed) > hashlib.blake2b.MAX_KEY_SIZE:
        raise CorpusError(f"the split seed must have at most {hashlib.blake2b.MAX_KEY_SIZE} digits")
    digest = hashlib.blake2b(key.encode("utf-8"), key=seed, digest_size=8, person=b"dprnn-split").digest()
    return int.from_bytes(digest, "big") / 2.0**64


def split_users(corpus: Corpus, val_fraction: float, split_seed: int) -> tuple[list[str], list[str]]:
    """(train users, val users), both sorted; canary holders are always in train.

    Each user's side is decided by that user alone: a user validates when
    :func:`validation_draw` of (split seed, the user's split key) is below ``val_fraction``. The
    key is the user id, or for line-numbered uploads the user's own text (:func:`_split_keys`).
    So adding or removing one person changes the training set by that person's records alone
    (dp-correctness.md, "Neighbouring files, neighbouring training sets"). The old rule, a
    ``random.Random(split_seed)`` shuffle of all users cut at ``round(val_fraction · N)``, let
    every user's side depend on everyone else: adding one line to an upload moved other people
    between train and validation. The price: the validation size is now Binomial(N, val_fraction), not fixed,
    and a small corpus can draw no validation user, which is refused with a message.
    """
    if not 0.0 < val_fraction < 1.0:
        raise CorpusError(f"the validation fraction must be between 0 and 1, got {val_fraction!r}")
    users = corpus.users()
    if len(users) < 2:
        raise CorpusError(f"the corpus has {len(users)} user(s); a split by user needs at least 2")
    forced = set(corpus.canary_users())
    if len(forced) == len(users):
        raise CorpusError("every user holds a canary, so no user can be held out for validation")
    keys = _split_keys(corpus)
    val = {u for u in users if u not in forced and validation_draw(split_seed, keys[u]) < val_fraction}
    if not val:
        raise CorpusError(
            f"no user of the {len(users):,} fell into validation at the validation fraction {val_fraction:g} "
            "(each user is placed on their own, by a keyed hash); raise the validation fraction or add users"
        )
    if len(val) == len(users):
        raise CorpusError(
            f"every one of the {len(users):,} users fell into validation at the validation fraction "
            f"{val_fraction:g}, leaving none to train on; lower the validation fraction or add users"
        )
    return [u for u in users if u not in val], sorted(val)


def _record_windows(ids: list[int], width: int) -> list[list[int]]:
    """``[EOS] + ids + [EOS]`` cut into non-overlapping windows of ``width``; the last one padded.

    A window is kept only with at least :data:`MIN_WINDOW_TOKENS` real tokens (one input and one
    target); an empty record gives no window.
    """
    if not ids:
        return []
    seq = [EOS_ID, *ids, EOS_ID]
    out = []
    for start in range(0, len(seq), width):
        chunk = seq[start : start + width]
        if len(chunk) < MIN_WINDOW_TOKENS:
            break
        out.append(chunk + [PAD_ID] * (width - len(chunk)))
    return out


def _num_record_windows(num_ids: int, width: int) -> int:
    """``len(_record_windows(ids, width))`` from ``len(ids)`` alone (``width`` ≥ 2)."""
    if num_ids == 0:
        return 0
    full, rest = divmod(num_ids + 2, width)  # [EOS] + ids + [EOS]
    return full + (rest >= MIN_WINDOW_TOKENS)


def _vocabulary(corpus: Corpus, kind: str, max_vocab: int) -> tuple[Tokenizer, str]:
    """(tokenizer, where its vocabulary comes from): never read from the corpus's records."""
    if kind not in TOKENIZERS:
        raise CorpusError(f"tokenizer must be one of {', '.join(TOKENIZERS)}; got {kind!r}")
    if corpus.metadata.get("source") == "builtin":
        tokens = builtin_vocabulary(kind, max_vocab=max_vocab)
        tok = TOKENIZERS[kind]([*TOKENIZERS[kind]._special_tokens(), *tokens])
        return tok, "the built-in generator's alphabet (public)" if kind == "char" else (
            "the built-in generator's words (public)")
    if kind == "char":
        return ByteTokenizer(), "UTF-8 bytes (fixed, independent of the data)"
    word = public_word_tokenizer(max_vocab)
    return word, (f"the {public_word_count(word):,} most frequent English words of the public wordfreq list, "
                  "plus punctuation and digits")


def _stack(rows: list[list[int]], width: int) -> torch.Tensor:
    import torch  # lazy: only tensors need it (see the module docstring)

    if not rows:
        return torch.empty((0, width), dtype=torch.long)
    return torch.tensor(rows, dtype=torch.long)


def _prepare(corpus: Corpus, tokenizer: str, seq_len: int, val_fraction: float, max_vocab: int,
             split_seed: int) -> tuple[Tokenizer, str, list[str], list[str]]:
    """Checks, vocabulary and user split shared by :func:`build_lm_data` and :func:`summarize_lm_data`."""
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise CorpusError(f"the sequence length must be a positive whole number, got {seq_len!r}")
    tok, vocabulary = _vocabulary(corpus, tokenizer, max_vocab)
    train_users, val_users = split_users(corpus, val_fraction, split_seed)
    return tok, vocabulary, train_users, val_users


def _check_sizes(num_train: int, num_val: int, width: int) -> None:
    if num_train < 2:
        raise CorpusError(
            f"the training users give only {num_train} example(s) of {width} tokens; "
            "need at least 2 (add text or lower the sequence length)"
        )
    if not num_val:
        raise CorpusError(
            "the validation users give no examples (their text is too short); "
            "raise the validation fraction or lower the sequence length"
        )


def build_lm_data(
    corpus: Corpus,
    *,
    tokenizer: str = "char",
    seq_len: int = 64,
    val_fraction: float = 0.1,
    max_vocab: int = 2000,
    split_seed: int = 0,
) -> LMData:
    """Split ``corpus`` by user, pick a data-independent vocabulary and cut windows per record.

    Vocabulary, by corpus source (``corpus.metadata["source"]``): the built-in corpus uses its
    generator's alphabet or words (:func:`dpcore.data.builtin.builtin_vocabulary`); anything else
    (an upload, or a corpus without metadata) uses UTF-8 bytes for ``tokenizer="char"`` (always 259
    tokens: ``max_vocab`` does not apply) and the public wordfreq list for ``tokenizer="word"``
    (``max_vocab`` tokens). No record is read to choose it, so it costs no privacy and reveals
    nothing; in exchange text outside it (a rare word) encodes as UNK.

    Windows: each record is ``[EOS] + tokens + [EOS]`` cut into non-overlapping windows of
    ``seq_len + 1`` tokens, the last one PAD-padded and kept only with at least
    :data:`MIN_WINDOW_TOKENS` real tokens. Windows never span two records, so one record's edit
    changes only its own rows (see the module docstring).
    """
    tok, vocabulary, train_users, val_users = _prepare(corpus, tokenizer, seq_len, val_fraction, max_vocab,
                                                       split_seed)
    by_user = corpus.texts_by_user()
    canary_texts = {c.text(): c.id for c in corpus.canaries}
    width = seq_len + 1

    train_rows: list[list[int]] = []
    train_owner: list[str] = []
    canary_rows: dict[str, list[int]] = {c.id: [] for c in corpus.canaries}
    multiwindow = 0
    for user in train_users:
        for text in by_user[user]:
            rows = _record_windows(tok.encode(text), width)
            multiwindow += len(rows) > 1
            if rows and text in canary_texts:
                canary_rows[canary_texts[text]].append(len(train_rows))
            train_rows += rows
            train_owner += [user] * len(rows)
    val_rows: list[list[int]] = []
    val_owner: list[str] = []
    for user in val_users:
        for text in by_user[user]:
            rows = _record_windows(tok.encode(text), width)
            val_rows += rows
            val_owner += [user] * len(rows)

    _check_sizes(len(train_rows), len(val_rows), width)
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
        vocabulary=vocabulary,
        num_records=len(corpus.records),
        num_train_records=sum(len(by_user[u]) for u in train_users),
        num_multiwindow_records=multiwindow,
    )


def summarize_lm_data(
    corpus: Corpus,
    *,
    tokenizer: str = "char",
    seq_len: int = 64,
    val_fraction: float = 0.1,
    max_vocab: int = 2000,
    split_seed: int = 0,
) -> dict[str, Any]:
    """``build_lm_data(corpus, ...).summary()`` without building tensors or importing torch.

    Same checks, vocabulary, user split and window rule (it counts the windows each record would
    give), so the same dict or the same :class:`~dpcore.errors.CorpusError`. The New run preview
    uses it on every form change in the dashboard process.
    """
    tok, vocabulary, train_users, val_users = _prepare(corpus, tokenizer, seq_len, val_fraction, max_vocab,
                                                       split_seed)
    by_user = corpus.texts_by_user()
    width = seq_len + 1
    num_train = multiwindow = 0
    for user in train_users:
        for text in by_user[user]:
            n = _num_record_windows(len(tok.encode(text)), width)
            multiwindow += n > 1
            num_train += n
    num_val = sum(_num_record_windows(len(tok.encode(text)), width) for user in val_users for text in by_user[user])
    _check_sizes(num_train, num_val, width)
    return _summary(corpus, tok, vocabulary, seq_len, num_train=num_train, num_val=num_val,
                    num_train_users=len(train_users), num_val_users=len(val_users),
                    num_records=len(corpus.records),
                    num_train_records=sum(len(by_user[u]) for u in train_users),
                    num_multiwindow_records=multiwindow)

"""Character- and word-level tokenizers with a fixed, deterministic vocabulary.

Ids 0, 1 and 2 are always PAD, UNK and the end-of-record token, so a checkpoint's vocabulary can be
read without the corpus. The rest is ordered by frequency, ties broken by code point (char) or
alphabetically (word): the same texts always give the same ids on every machine.

``max_vocab`` counts the whole vocabulary, special tokens included, because it is what sizes the
embedding (and Opacus's dense per-sample embedding gradient, see dp-correctness.md).

Privacy note: the vocabulary is computed from the training text without noise. A rare word that
only one user wrote is visible in a word-level vocabulary even when the weights are DP-trained.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any, ClassVar

from dpcore.errors import CorpusError

PAD_ID = 0
UNK_ID = 1
EOS_ID = 2
_SPECIALS = ("<pad>", "<unk>", "<eos>")

# Words (letters, digits, underscore in any script), or any single other non-space character;
# a newline is the record separator and becomes <eos>.
_WORD_RE = re.compile(r"\n|\w+|[^\w\s]")
_NO_SPACE_BEFORE = set(".,!?;:)]}%'\u2019-/@")
_NO_SPACE_AFTER = set("([{$#'\u2019-/@")


class _Tokenizer:
    """Shared vocabulary bookkeeping: ``itos`` (id -> token) and ``stoi`` (token -> id)."""

    kind: ClassVar[str] = ""
    eos_id: int = EOS_ID

    def __init__(self, itos: list[str]) -> None:
        if len(itos) < len(_SPECIALS) + 1:
            raise CorpusError("a tokenizer vocabulary needs at least one token besides the special ones")
        self.itos = list(itos)
        self.stoi = {tok: i for i, tok in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise CorpusError("the tokenizer vocabulary has duplicate tokens")

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    @classmethod
    def _from_counts(cls, counts: Counter[str], max_vocab: int, eos: str) -> _Tokenizer:
        if isinstance(max_vocab, bool) or not isinstance(max_vocab, int) or max_vocab < len(_SPECIALS) + 1:
            raise CorpusError(f"max vocabulary must be a whole number of at least {len(_SPECIALS) + 1}")
        counts.pop(eos, None)
        if not counts:
            raise CorpusError("there is no text to build a vocabulary from")
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        keep = [tok for tok, _ in ranked[: max_vocab - len(_SPECIALS)]]
        return cls([*cls._special_tokens(), *keep])

    @classmethod
    def _special_tokens(cls) -> tuple[str, ...]:
        return _SPECIALS

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; :func:`tokenizer_from_dict` inverts it."""
        return {"kind": self.kind, "vocab": list(self.itos)}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.itos == self.itos  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.kind, tuple(self.itos)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


class CharTokenizer(_Tokenizer):
    """One id per character; works for any script. ``"\\n"`` (id 2) separates records."""

    kind: ClassVar[str] = "char"
    eos_token: ClassVar[str] = "\n"
    unk_text: ClassVar[str] = "\ufffd"

    @classmethod
    def _special_tokens(cls) -> tuple[str, ...]:
        return ("<pad>", "<unk>", cls.eos_token)

    @classmethod
    def fit(cls, texts: Iterable[str], max_vocab: int = 2000) -> CharTokenizer:
        """Keep the ``max_vocab - 3`` most frequent characters; others encode as UNK."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(text)
        tok = cls._from_counts(counts, max_vocab, cls.eos_token)
        assert isinstance(tok, CharTokenizer)
        return tok

    def encode(self, text: str) -> list[int]:
        get = self.stoi.get
        return [get(ch, UNK_ID) for ch in text]

    def decode(self, ids: Iterable[int]) -> str:
        """Characters for ``ids``; PAD is skipped, UNK shows as U+FFFD."""
        out = []
        for i in ids:
            i = int(i)
            if i == PAD_ID:
                continue
            out.append(self.unk_text if i == UNK_ID or not 0 <= i < len(self.itos) else self.itos[i])
        return "".join(out)


class WordTokenizer(_Tokenizer):
    """Lower-cased words and single punctuation marks; ``"<eos>"`` (id 2) separates records."""

    kind: ClassVar[str] = "word"
    eos_token: ClassVar[str] = "<eos>"
    unk_text: ClassVar[str] = "<unk>"

    @staticmethod
    def split(text: str) -> list[str]:
        """The token strings of ``text`` (lower-cased; newlines kept as ``"\\n"``)."""
        return _WORD_RE.findall(text.lower())

    @classmethod
    def fit(cls, texts: Iterable[str], max_vocab: int = 2000) -> WordTokenizer:
        """Keep the ``max_vocab - 3`` most frequent tokens; others encode as UNK."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(t for t in cls.split(text) if t != "\n")
        tok = cls._from_counts(counts, max_vocab, cls.eos_token)
        assert isinstance(tok, WordTokenizer)
        return tok

    def encode(self, text: str) -> list[int]:
        get = self.stoi.get
        return [EOS_ID if t == "\n" else get(t, UNK_ID) for t in self.split(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """Tokens joined by spaces, except before closing and after opening punctuation.

        ``<eos>`` becomes a newline. Decoding is lossy for spacing (``"7.2"`` comes back as
        ``"7. 2"``) but re-encoding the result gives the same ids.
        """
        out: list[str] = []
        prev = "\n"
        for i in ids:
            i = int(i)
            if i == PAD_ID:
                continue
            tok = "\n" if i == EOS_ID else self.itos[i] if 0 < i < len(self.itos) else self.unk_text
            glued = tok in _NO_SPACE_BEFORE or prev in _NO_SPACE_AFTER
            if out and tok != "\n" and prev != "\n" and not glued:
                out.append(" ")
            out.append(tok)
            prev = tok
        return "".join(out)


Tokenizer = CharTokenizer | WordTokenizer
TOKENIZERS: dict[str, type[CharTokenizer | WordTokenizer]] = {"char": CharTokenizer, "word": WordTokenizer}


def make_tokenizer(kind: str, texts: Iterable[str], max_vocab: int = 2000) -> Tokenizer:
    """Fit the tokenizer named ``kind`` ("char" or "word") on ``texts``."""
    if kind not in TOKENIZERS:
        raise CorpusError(f"tokenizer must be one of {', '.join(TOKENIZERS)}; got {kind!r}")
    return TOKENIZERS[kind].fit(texts, max_vocab=max_vocab)


def tokenizer_from_dict(d: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer saved with ``to_dict()`` (e.g. from a checkpoint)."""
    kind = d.get("kind") if isinstance(d, dict) else None
    vocab = d.get("vocab") if isinstance(d, dict) else None
    if kind not in TOKENIZERS:
        raise CorpusError(f"unknown tokenizer kind {kind!r}; expected one of {', '.join(TOKENIZERS)}")
    if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
        raise CorpusError("the saved tokenizer has no vocabulary list")
    cls = TOKENIZERS[kind]
    if tuple(vocab[: len(_SPECIALS)]) != cls._special_tokens():
        raise CorpusError("the saved tokenizer's special tokens are not PAD, UNK, EOS in ids 0, 1, 2")
    return cls(vocab)

"""Byte-, character- and word-level tokenizers with a fixed, deterministic vocabulary.

Ids 0, 1 and 2 are always PAD, UNK and the end-of-record token, so a checkpoint's vocabulary can be
read without the corpus.

``max_vocab`` counts the whole vocabulary, special tokens included, because it is what sizes the
embedding (and Opacus's dense per-sample embedding gradient, see dp-correctness.md).

Privacy: the vocabulary ships inside ``model.pt``, so it is released with the weights. A
vocabulary read off the private text without noise would prove that a rare character or word
occurs in some record (dp-correctness.md, "The vocabulary"). Training therefore never fits one
(:func:`dpcore.data.dataset.build_lm_data` picks it):

* :class:`ByteTokenizer` (uploads, character level): the 256 UTF-8 byte values, the same for
  every corpus;
* :func:`public_word_tokenizer` (uploads, word level): ASCII punctuation, the digits and the most
  frequent English words of the public ``wordfreq`` list;
* :func:`dpcore.data.builtin.builtin_vocabulary` (the synthetic built-in corpus): the
  generator's own alphabet or words.

None of them reads the training data, so the vocabulary costs no ε (``vocabulary_epsilon = 0``).
``CharTokenizer.fit`` / ``WordTokenizer.fit`` (vocabulary by frequency, ties broken by code point
or alphabetically) remain for public text, tests and old checkpoints only.
"""

from __future__ import annotations

import codecs
import functools
import re
import string
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
        _check_max_vocab(max_vocab)
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


#: A byte outside printable ASCII shows in ``itos`` as ``"<0xNN>"``.
_BYTE_OFFSET = len(_SPECIALS)
_NEWLINE = 0x0A


def _byte_token(b: int) -> str:
    return chr(b) if 0x20 <= b < 0x7F else f"<0x{b:02X}>"


def _is_continuation(b: int) -> bool:
    return 0x80 <= b < 0xC0


class ByteTokenizer(_Tokenizer):
    """One id per UTF-8 byte: ``id = byte + 3``; a vocabulary of 259, the same for every corpus.

    Any script works (a Chinese character is three tokens, ASCII one token per character) and no
    byte is ever UNK, so nothing about the training text is in the vocabulary. ``max_vocab`` does
    not apply. As for the other tokenizers, ``"\\n"`` is the record separator and encodes as EOS
    (id 2); byte 0x0A's own id (13) is never produced by :meth:`encode`.
    """

    kind: ClassVar[str] = "byte"
    eos_token: ClassVar[str] = "<eos>"
    unk_text: ClassVar[str] = "\ufffd"

    def __init__(self, itos: list[str] | None = None) -> None:
        fixed = byte_vocabulary()
        if itos is not None and list(itos) != fixed:
            raise CorpusError("the saved byte tokenizer's vocabulary is not the 256 UTF-8 byte values")
        super().__init__(fixed)

    def encode(self, text: str) -> list[int]:
        """UTF-8 bytes shifted by 3; a newline becomes EOS. (Unencodable lone surrogates become "?".)"""
        data = text.encode("utf-8", errors="replace")
        return [EOS_ID if b == _NEWLINE else b + _BYTE_OFFSET for b in data]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``: PAD skipped, EOS as a newline, UNK (never encoded) as U+FFFD.

        Bytes between separators are decoded as UTF-8. A multibyte sequence cut off at either end
        (a window or a single generated token that starts or stops inside a character) is dropped
        rather than shown as U+FFFD; a genuinely invalid sequence in the middle becomes U+FFFD.
        """
        out: list[str] = []
        run = bytearray()
        for i in ids:
            i = int(i)
            if i == PAD_ID:
                continue
            if _BYTE_OFFSET <= i < _BYTE_OFFSET + 256:
                run.append(i - _BYTE_OFFSET)
                continue
            out.append(_decode_bytes(bytes(run)))
            run.clear()
            out.append("\n" if i == EOS_ID else self.unk_text)
        out.append(_decode_bytes(bytes(run)))
        return "".join(out)


def _decode_bytes(data: bytes) -> str:
    """UTF-8 ``data`` with truncated sequences at its start and end dropped, invalid ones replaced."""
    start = 0
    while start < len(data) and start < 3 and _is_continuation(data[start]):
        start += 1
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return decoder.decode(data[start:], final=False)  # not final: an incomplete tail stays unread


@functools.lru_cache(maxsize=1)
def _byte_vocabulary() -> tuple[str, ...]:
    return (*_SPECIALS, *(_byte_token(b) for b in range(256)))


def byte_vocabulary() -> list[str]:
    """``itos`` of :class:`ByteTokenizer`: the specials, then a token per byte value 0..255."""
    return list(_byte_vocabulary())


#: Single punctuation marks of a public word vocabulary (the tokenizer's non-word tokens).
PUBLIC_PUNCTUATION = tuple(string.punctuation)
DIGITS = tuple(string.digits)


@functools.lru_cache(maxsize=8)
def _wordfreq_words(count: int) -> tuple[str, ...]:
    """The ``count`` most frequent English word tokens of wordfreq's public list, in rank order.

    wordfreq (https://github.com/rspeer/wordfreq) ships its word lists inside the package: code
    Apache-2.0, data CC-BY-SA 4.0. Entries are lower-case already; one that the tokenizer splits
    into several tokens (``"don't"`` -> ``don ' t``) contributes its word pieces, so contractions
    encode without UNK.
    """
    if count <= 0:
        return ()
    import wordfreq  # lazy: only a word vocabulary needs it, and importing dpcore stays fast

    seen: dict[str, None] = {}
    n = count * 2 + 100
    while True:
        entries = wordfreq.top_n_list("en", n)
        for entry in entries:
            for tok in WordTokenizer.split(entry):
                if re.fullmatch(r"\w+", tok) and tok not in seen and tok not in DIGITS:
                    seen[tok] = None
                    if len(seen) == count:
                        return tuple(seen)
        if len(entries) < n:  # the list ran out
            return tuple(seen)
        seen.clear()
        n *= 2


def public_word_tokenizer(max_vocab: int = 2000) -> WordTokenizer:
    """A word vocabulary fixed independently of any corpus, ``max_vocab`` tokens in all.

    Specials, then :data:`PUBLIC_PUNCTUATION` (ASCII punctuation), the digits 0-9, then the most
    frequent English words of the public wordfreq list (see :func:`_wordfreq_words`). A
    ``max_vocab`` too small for all of that keeps the first tokens of this order.
    """
    _check_max_vocab(max_vocab)
    fixed = [*PUBLIC_PUNCTUATION, *DIGITS]
    room = max_vocab - len(_SPECIALS)
    words = list(_wordfreq_words(max(0, room - len(fixed))))
    return WordTokenizer([*WordTokenizer._special_tokens(), *(fixed + words)[:room]])


def public_word_count(tok: WordTokenizer) -> int:
    """How many of ``tok``'s tokens are words (not specials, punctuation or digits)."""
    skip = set(_SPECIALS) | set(PUBLIC_PUNCTUATION) | set(DIGITS)
    return sum(t not in skip for t in tok.itos)


def _check_max_vocab(max_vocab: int) -> None:
    if isinstance(max_vocab, bool) or not isinstance(max_vocab, int) or max_vocab < len(_SPECIALS) + 1:
        raise CorpusError(f"max vocabulary must be a whole number of at least {len(_SPECIALS) + 1}")


Tokenizer = CharTokenizer | WordTokenizer | ByteTokenizer
#: The tokenizer levels a user chooses between (the vocabulary's source is picked per corpus).
TOKENIZERS: dict[str, type[CharTokenizer | WordTokenizer]] = {"char": CharTokenizer, "word": WordTokenizer}
#: Every kind a saved tokenizer may have.
_KINDS: dict[str, type[CharTokenizer | WordTokenizer | ByteTokenizer]] = {**TOKENIZERS, "byte": ByteTokenizer}


def make_tokenizer(kind: str, texts: Iterable[str], max_vocab: int = 2000) -> Tokenizer:
    """Fit the tokenizer named ``kind`` ("char" or "word") on ``texts``; ``"byte"`` ignores them.

    Fitting reads the texts without noise: for public text and tests only, never for private
    training data (see the module docstring).
    """
    if kind == "byte":
        return ByteTokenizer()
    if kind not in TOKENIZERS:
        raise CorpusError(f"tokenizer must be one of {', '.join(TOKENIZERS)}; got {kind!r}")
    return TOKENIZERS[kind].fit(texts, max_vocab=max_vocab)


def tokenizer_from_dict(d: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer saved with ``to_dict()`` (e.g. from a checkpoint)."""
    kind = d.get("kind") if isinstance(d, dict) else None
    vocab = d.get("vocab") if isinstance(d, dict) else None
    if kind not in _KINDS:
        raise CorpusError(f"unknown tokenizer kind {kind!r}; expected one of {', '.join(_KINDS)}")
    if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
        raise CorpusError("the saved tokenizer has no vocabulary list")
    cls = _KINDS[kind]
    if tuple(vocab[: len(_SPECIALS)]) != cls._special_tokens():
        raise CorpusError("the saved tokenizer's special tokens are not PAD, UNK, EOS in ids 0, 1, 2")
    return cls(vocab)

"""Public text a model may be pre-trained on before private fine-tuning (:mod:`dpcore.training.pretrain`).

Why: DP-SGD pays for every private step with noise, and a model that starts from random weights
spends most of its private steps learning what any public text teaches (spelling, spaces, common
words and phrases). Pre-training on text that is *not* the private data, without privacy, costs no
ε: the guarantee is about the private data only, and the public model is a function of public
text and public code. Two public corpora, chosen by what the private run trains on:

* **the built-in corpus** -> :func:`public_builtin_corpus`: the same generator
  (:mod:`dpcore.data.builtin`) under its own seed (:data:`PUBLIC_SEED`) and id prefix
  (``public-0000``, ...), without canaries. It stands for "public posts of the same kind written by
  other people": different user ids, personas drawn from a different random stream, and none of the
  planted secrets (canary names come from their own list, which the generator never uses). Names
  are drawn from the same first- and last-name lists, as different people share names in life; a
  name alone is not a person here, a user id is.
* **an upload** -> :func:`public_text_corpus`: English prose from the Python Language Reference that
  CPython ships with its standard library (``pydoc_data.topics``, the text behind ``help("if")``;
  PSF licence, which allows derived works). Nothing is downloaded and no text is copied into this
  repository; the prose paragraphs are cut into sentences at load time. It is technical English,
  but English: a byte- or word-level model learns spelling, spacing and punctuation from it.

The public corpus never depends on the private one (only on whether the run trains on the built-in
corpus or an upload, which its configuration says), so choosing it reveals nothing either.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterator

from dpcore.data.builtin import DEFAULT_USERS, generate_people
from dpcore.data.corpus import Corpus, Record, normalize_text
from dpcore.errors import CorpusError

#: The seed and size of the public crowd (never 0, the private corpus's seed: tested).
PUBLIC_SEED = 515_151
PUBLIC_USERS = DEFAULT_USERS
PUBLIC_PREFIX = "public"
#: Sentences kept from the reference's prose (shorter ones are headings and fragments).
MIN_SENTENCE, MAX_SENTENCE = 20, 400

#: What each public corpus is, in words for the privacy statement.
BUILTIN_DESCRIPTION = (
    f"{PUBLIC_USERS:,} other synthetic people's messages from the same generator (public code, its own seed, "
    "no canaries, no user of the private corpus)"
)
TEXT_DESCRIPTION = "English prose from the Python Language Reference, shipped with Python (PSF licence)"


@functools.lru_cache(maxsize=1)
def public_builtin_corpus() -> Corpus:
    """The public crowd for runs on the built-in corpus (deterministic, no canaries).

    Its metadata ``source`` is ``"builtin"`` so that it gets the built-in generator's public
    vocabulary, exactly the tokenizer a private built-in run uses
    (:func:`dpcore.data.dataset.build_lm_data`); ``public`` marks it.
    """
    return Corpus(
        name="public-builtin",
        records=generate_people(PUBLIC_SEED, PUBLIC_USERS, prefix=PUBLIC_PREFIX),
        canaries=[],
        metadata={"source": "builtin", "public": True, "seed": PUBLIC_SEED, "num_users": PUBLIC_USERS,
                  "description": BUILTIN_DESCRIPTION},
    )


def _is_prose(flat: str) -> bool:
    """A paragraph of sentences, not a grammar rule, an example session or code."""
    if not flat.endswith((".", ":")) or any(m in flat for m in (">>>", "::=", "...", "def ", "class ", "import ")):
        return False
    return sum(c.isalpha() or c == " " for c in flat) >= 0.85 * len(flat)


def _sentences(text: str) -> Iterator[str]:
    for para in re.split(r"\n[ \t]*\n", text):
        lines = [line for line in para.split("\n") if line.strip()]
        if not lines or any(set(line.strip()) <= set("*=-^~") for line in lines):  # headings
            continue
        flat = normalize_text(para)
        if _is_prose(flat):
            for sentence in re.split(r"(?<=[.!?:])\s+(?=[A-Z\"'(])", flat):
                if MIN_SENTENCE <= len(sentence) <= MAX_SENTENCE:
                    yield sentence


@functools.lru_cache(maxsize=1)
def public_text_corpus() -> Corpus:
    """English prose for runs on an upload: one record per sentence, one "user" per reference topic.

    Raises :class:`CorpusError` on a Python installed without ``pydoc_data`` (some minimal builds).
    """
    try:
        from pydoc_data.topics import topics  # the standard library's own text: nothing is downloaded
    except ImportError:
        raise CorpusError(
            "this Python has no pydoc_data (the Language Reference text a public model for uploads is "
            "pre-trained on); use a full Python installation or start from scratch"
        ) from None
    records = [Record(f"doc-{name}", s) for name, text in sorted(topics.items()) for s in _sentences(text)]
    if len(records) < 100:
        raise CorpusError("this Python's pydoc_data holds too little prose to pre-train a public model on")
    return Corpus(name="public-text", records=records, canaries=[],
                  metadata={"source": "public-text", "public": True, "description": TEXT_DESCRIPTION})


def public_corpus(corpus_spec: str) -> Corpus:
    """The public corpus for a run whose config says ``corpus=corpus_spec`` (see the module docstring)."""
    return public_builtin_corpus() if corpus_spec == "builtin" else public_text_corpus()


def public_kind(corpus_spec: str) -> str:
    """``"builtin"`` or ``"text"``: which public corpus a run on ``corpus_spec`` pre-trains on."""
    return "builtin" if corpus_spec == "builtin" else "text"


def corpus_digest(corpus: Corpus) -> str:
    """SHA-256 of every record (user and text): a cache key that changes when the text does."""
    h = hashlib.sha256()
    for r in corpus.records:
        h.update(r.user_id.encode())
        h.update(b"\x00")
        h.update(r.text.encode())
        h.update(b"\x01")
    return h.hexdigest()

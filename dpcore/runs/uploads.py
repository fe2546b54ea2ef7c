"""What the New run form says about a visitor's upload: checking and storing it, its columns, a
suggested text and user column with a glance at its first rows, the size limit in words, and how
its "users" were formed (which is what the train/validation split keeps together, not what ε protects).

No streamlit, no torch. Sentences here describe a file, never quote it; the only place an upload's
content appears is the preview of its first rows, which the form shows to the file's owner alone.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from dpcore.data import csv_columns, load_corpus, load_corpus_bytes
from dpcore.data.upload import MAX_UPLOAD_BYTES, SAMPLE_BYTES, ColumnSuggestion, suggest_columns
from dpcore.errors import DPCoreError
from dpcore.paths import file_version


def upload_limit() -> str:
    """The upload size limit in words ("20 MB"), from :data:`~dpcore.data.upload.MAX_UPLOAD_BYTES`."""
    mb = MAX_UPLOAD_BYTES / (1024 * 1024)
    return f"{mb:g} MB" if mb >= 1 else f"{MAX_UPLOAD_BYTES / 1024:g} KB"


def accept_upload(store: Any, owner: str, filename: str, data: bytes) -> Any:
    """Check an uploaded corpus, then store it privately for ``owner``; returns the Upload.

    A .txt must parse into enough text now; a .csv only needs a readable header here (its text
    and user columns are picked next, and the corpus is checked again with them).
    Raises :class:`~dpcore.errors.DPCoreError` with a sentence about the file, never its content.
    """
    if os.path.splitext(filename)[1].lower() == ".csv":
        csv_columns(data)
    else:
        load_corpus_bytes(data, filename)
    return store.save_upload(owner, filename, data)


@functools.lru_cache(maxsize=32)
def _columns_cached(path: str, version: tuple[int, int]) -> tuple[str, ...]:
    del version
    with open(path, "rb") as fh:
        return tuple(csv_columns(fh.read()))


def upload_columns(path: str) -> list[str]:
    """The header of a stored CSV upload (cached per file version)."""
    return list(_columns_cached(path, file_version(path)))


@functools.lru_cache(maxsize=32)
def _sample_cached(path: str, version: tuple[int, int]) -> ColumnSuggestion:
    del version
    with open(path, "rb") as fh:
        head = fh.read(SAMPLE_BYTES + 1)  # one byte more tells suggest_columns the file goes on
    return suggest_columns(head)


def upload_sample(path: str) -> ColumnSuggestion:
    """Suggested columns and the first rows of a stored CSV upload, from its first bytes only (cached)."""
    return _sample_cached(path, file_version(path))


def preview_header(columns: list[str]) -> list[str]:
    """Column names fit for a table header: unnamed columns named, repeated names told apart."""
    seen: dict[str, int] = {}
    names = []
    for i, column in enumerate(columns):
        name = column or f"(column {i + 1})"
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return names


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def grouping_sentences(meta: dict[str, Any], unit: str = "user", user_cap: int = 2) -> list[str]:
    """How an upload's users were formed and what the privacy unit then protects.

    ``meta`` is an uploaded corpus's metadata (:func:`dpcore.data.upload.load_corpus_bytes`);
    ``unit`` and ``user_cap`` are the run's privacy unit and per-user cap k.
    """
    grouping = meta.get("user_grouping")
    users = meta.get("num_users")
    unit_word = "line" if meta.get("format") == "txt" else "row"
    sentences: list[str] = []
    if grouping in ("each line", "each row"):
        count = f" ({_plural(users, 'user')})" if users else ""
        if meta.get("format") == "txt":
            sentences.append(f"How users are formed: a .txt has no users, so each line counts as one user{count}.")
        else:
            sentences.append(f"How users are formed: no user column is chosen, so each row counts as one user{count}.")
        if unit == "user":
            sentences.append(f"With the privacy unit 'user', ε protects each {unit_word} as a whole, however many "
                             f"training sequences it fills. Nothing in the file says which {unit_word}s one person "
                             f"wrote: someone who wrote k {unit_word}s is protected only at about k·ε.")
        else:
            sentences.append(f"With the privacy unit 'sequence', ε protects one training sequence, a window of one "
                             f"{unit_word}: a long {unit_word} is protected window by window, and someone who wrote "
                             f"k sequences only at about k·ε.")
    elif grouping == "user column":
        column = meta.get("user_column", "")
        count = f" ({_plural(users, 'user')})" if users else ""
        sentences.append(f"How users are formed: each distinct value of the {column!r} column is one user{count}.")
        missing = int(meta.get("rows_without_user") or 0)
        if missing:
            sentences.append(f"{_plural(missing, 'row')} with an empty {column!r} cell count together as one "
                             "user, 'unknown-user'.")
        if unit == "user":
            sentences.append(f"With the privacy unit 'user', ε protects everything one user wrote, all of their "
                             f"rows together (at most {user_cap} of their sequences count in one training step).")
        else:
            sentences.append("With the privacy unit 'sequence', ε protects one training sequence, a window of one "
                             "row, not everything one user wrote: someone with k sequences is protected only at "
                             "about k·ε.")
    return sentences


@functools.lru_cache(maxsize=32)
def _meta_cached(path: str, version: tuple[int, int], text_column: str | None,
                 user_column: str | None) -> tuple[tuple[str, Any], ...]:
    del version
    corpus = load_corpus(path, text_column=text_column, user_column=user_column)
    return tuple((k, v) for k, v in corpus.metadata.items() if isinstance(v, (str, int, float, type(None))))


def upload_notes(path: str, text_column: str | None = None, user_column: str | None = None,
                 unit: str = "user", user_cap: int = 2) -> list[str]:
    """:func:`grouping_sentences` for a stored upload read with these columns (cached per file version).

    An upload that cannot be read this way gives no notes: the form's check explains the problem.
    """
    try:
        meta = dict(_meta_cached(path, file_version(path), text_column, user_column))
    except DPCoreError:
        return []
    return grouping_sentences(meta, unit, user_cap)

"""Turn a user's .txt or .csv file into a :class:`Corpus`, or say in one sentence why not.

Every check happens on bytes first (type, size, binary, encoding), then on the parsed records
(enough text, enough users), so a bad file fails fast with a message that names the problem.
Messages never quote the file's text: an upload may be exactly the private data DP is for.

User ids: a .csv may name a user column. Without one (and always for .txt), each line or row is
its own user ``line-000000``, ``line-000001``…: nothing in the file says which lines one person
wrote, so the honest unit is the line. With the privacy unit "user" (the default) ε then protects
each line as a whole, however many training sequences it fills; a person who wrote many lines is
protected only through group privacy, and the form says so. CSV rows with an empty user cell all
go to one user, ``unknown-user`` (counted in the metadata; lumping them together only makes their
unit larger). The metadata says how users were formed (``user_grouping``, ``num_users``), so the
form can say it in words.

A file with more than :data:`MAX_RECORDS` records is refused, never cut to its first records
(see :func:`_too_many_records`).

:func:`suggest_columns` guesses a CSV's text and user columns from its first rows only (at most
:data:`SAMPLE_BYTES`), and keeps a few of them for the form's preview.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from dpcore.data.builtin import DEFAULT_USERS, builtin_corpus
from dpcore.data.corpus import Corpus, Record, normalize_text
from dpcore.errors import CorpusError

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Records (non-blank lines or rows) one upload may hold; a file with more is refused (:func:`_too_many_records`).
#: Bounds the memory and time of checking and previewing a file (a 20 MB CSV of short rows is ~1 M rows).
MAX_RECORDS = 100_000
#: A CSV header must fit in this many bytes (it is read without decoding the rest of the file).
HEADER_BYTES = 64 * 1024
MIN_CORPUS_CHARS = 2000
MIN_USERS = 2
EXTENSIONS = (".txt", ".csv")
_BOM = b"\xef\xbb\xbf"
_CONTROL_BYTES = frozenset(range(0x20)) - {0x09, 0x0A, 0x0B, 0x0C, 0x0D} | {0x7F}
_MAX_SHOWN_COLUMNS = 20
#: Column suggestions and the preview read at most this much of a CSV, never the whole file.
SAMPLE_BYTES = 64 * 1024
SAMPLE_ROWS = 500
PREVIEW_ROWS = 5
#: A preview cell is cut to this many characters (it is a glance at the file, not the file).
PREVIEW_CELL_CHARS = 200
#: Without a telling name (user, author...), a user column needs this many distinct values in the sample,
#: so a label, rating or category column (a handful of values) is not taken for users.
_MIN_UNNAMED_USERS = 10
_USER_NAMES = frozenset({"user", "users", "userid", "uid", "author", "speaker", "sender", "from", "username",
                         "handle", "account", "person", "participant", "writer", "customer", "client", "member",
                         "name", "poster", "owner", "student", "patient", "respondent", "who"})
_NUMBERLIKE = re.compile(r"[+-]?[\d.,:/ _-]*\d[\d.,:/ _-]*[%]?")


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n} bytes"


def _decode(data: bytes, max_bytes: int) -> str:
    """Bytes -> text, refusing oversized, empty, binary and non-UTF-8 input. Strips a UTF-8 BOM."""
    if len(data) > max_bytes:
        raise CorpusError(
            f"the file is {_size(len(data))}, over the {_size(max_bytes)} upload limit; "
            "upload a smaller sample"
        )
    if not data.strip():
        raise CorpusError("the file is empty: it has no text records")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise CorpusError("the file is UTF-16 encoded, not UTF-8; re-save it as UTF-8 and upload it again")
    sample = data[:65536]
    if b"\x00" in data:
        raise CorpusError(
            "the file looks binary (it contains NUL bytes), not text; upload a UTF-8 .txt or .csv"
        )
    if sum(b in _CONTROL_BYTES for b in sample) > 0.1 * len(sample):
        raise CorpusError(
            "the file looks binary (it is mostly control characters), not text; upload a UTF-8 .txt or .csv"
        )
    skip = len(_BOM) if data.startswith(_BOM) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as err:
        raise CorpusError(
            f"the file is not valid UTF-8 (first bad byte at offset {err.start + skip}); "
            "re-save it as UTF-8 and upload it again"
        ) from None


def _shown(columns: list[str]) -> str:
    """Column names for a message, shortened (a headerless CSV's "header" is really text)."""
    names = [c if len(c) <= 30 else c[:27] + "..." for c in columns[:_MAX_SHOWN_COLUMNS]]
    more = len(columns) - len(names)
    return ", ".join(repr(n) for n in names) + (f" and {more} more" if more > 0 else "")


def _csv_rows(text: str) -> Iterator[list[str]]:
    """The CSV's rows, parsed lazily (memory stays proportional to the rows kept, not the file)."""
    first = text.split("\n", 1)[0] if len(text) < HEADER_BYTES else text[:HEADER_BYTES].split("\n", 1)[0]
    delimiter = "," if "," in first else ";" if ";" in first else "\t" if "\t" in first else ","
    csv.field_size_limit(max(csv.field_size_limit(), MAX_UPLOAD_BYTES))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        yield from reader
    except csv.Error as err:
        raise CorpusError(f"the CSV file could not be parsed ({err}); check its quoting") from None


def _header(rows: Iterator[list[str]]) -> list[str]:
    first = next(rows, None)
    if not first or not any(c.strip() for c in first):
        raise CorpusError("the CSV file has no header row naming its columns")
    return [c.strip() for c in first]


def _pick(columns: list[str], wanted: str, role: str) -> int:
    if wanted in columns:
        return columns.index(wanted)
    lowered = [c.lower() for c in columns]
    if wanted.strip().lower() in lowered:
        return lowered.index(wanted.strip().lower())
    raise CorpusError(
        f"the CSV file has no {role} column named {wanted!r}; its columns are {_shown(columns)}"
    )


def csv_columns(data: bytes) -> list[str]:
    """The header names of a CSV upload, for the UI's column picker, read from the first bytes only.

    The file's size and type are checked on the whole bytes (cheap); only the first
    :data:`HEADER_BYTES` are decoded and parsed, so checking a 20 MB file costs what its header does.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        _decode(data, MAX_UPLOAD_BYTES)  # raises the size message
    head = data[:HEADER_BYTES]
    if len(data) > HEADER_BYTES:
        cut = head.rfind(b"\n")
        if cut <= 0:
            raise CorpusError(f"the CSV header is longer than {_size(HEADER_BYTES)}; is this really a CSV file?")
        head = head[: cut + 1]
    return _header(_csv_rows(_decode(head, MAX_UPLOAD_BYTES)))


class ColumnSuggestion(NamedTuple):
    """What :func:`suggest_columns` read off a CSV's first rows."""

    text_column: str
    user_column: str | None
    preview_rows: list[list[str]]  # the first PREVIEW_ROWS data rows, one cell per header column, cut short


def _sample_rows(data: bytes) -> tuple[list[str], list[list[str]]]:
    """The header and at most SAMPLE_ROWS rows from the first SAMPLE_BYTES of ``data`` (never more)."""
    if len(data) > MAX_UPLOAD_BYTES:
        _decode(data, MAX_UPLOAD_BYTES)  # raises the size message
    head = data[:SAMPLE_BYTES]
    truncated = len(data) > SAMPLE_BYTES
    if truncated:
        cut = head.rfind(b"\n")
        if cut <= 0:
            raise CorpusError(f"the CSV header is longer than {_size(SAMPLE_BYTES)}; is this really a CSV file?")
        head = head[: cut + 1]
    rows = _csv_rows(_decode(head, MAX_UPLOAD_BYTES))
    columns = _header(rows)
    sample: list[list[str]] = []
    full = False
    try:
        for row in rows:
            if len(sample) == SAMPLE_ROWS:
                full = True
                break
            if any(c.strip() for c in row):
                sample.append(row)
    except CorpusError:  # a quoted field cut by the sample's end: keep the rows before it
        truncated = True
    if truncated and not full and len(sample) > 1:
        sample.pop()  # the row at the sample's end may be cut short
    return columns, sample


def _cells(sample: list[list[str]], i: int) -> list[str]:
    return [normalize_text(row[i]) if i < len(row) else "" for row in sample]


def _cut(cell: str) -> str:
    return cell if len(cell) <= PREVIEW_CELL_CHARS else cell[: PREVIEW_CELL_CHARS - 1] + "…"


def _text_score(cells: list[str], name: str) -> float:
    """Long, worded, mostly non-numeric strings score high; ids, numbers and dates score low."""
    filled = [c for c in cells if c]
    if not filled:
        return 0.0
    numberlike = sum(bool(_NUMBERLIKE.fullmatch(c)) for c in filled) / len(filled)
    mean_chars = sum(len(c) for c in filled) / len(filled)
    worded = sum(" " in c for c in filled) / len(filled)
    score = (len(filled) / len(cells)) * (1 - numberlike) * mean_chars * (0.5 + 0.5 * worded)
    return score * (1.5 if name.strip().lower() == "text" else 1.0)


def _user_score(cells: list[str], name: str) -> float | None:
    """Short values repeated over many rows (each user writes several); None if not id-like at all."""
    filled = [c for c in cells if c]
    if len(filled) < 4 or len(filled) < 0.9 * len(cells):
        return None
    distinct = len(set(filled))
    named = bool(_USER_NAMES & set(re.split(r"[^a-z]+", name.lower()))) or "user" in name.lower() \
        or "author" in name.lower()
    if distinct < (2 if named else _MIN_UNNAMED_USERS) or len(filled) < 2 * distinct:
        return None  # one value for everything, a label with a few values, or (nearly) one value per row
    if sum(len(c) for c in filled) / len(filled) > 40 or sum(c.count(" ") > 2 for c in filled) > 0.1 * len(filled):
        return None  # sentences, not ids
    return (1.0 if named else 0.0) + (1 - distinct / len(filled))


def suggest_columns(data: bytes) -> ColumnSuggestion:
    """Guess a CSV's text column and user column from its first rows, and keep a few rows to preview.

    Reads at most the first :data:`SAMPLE_BYTES` (and :data:`SAMPLE_ROWS` rows) of ``data``, which
    may be the whole file or just its beginning. The text column is the one with the longest,
    mostly non-numeric, worded values (a column named "text" gets a nudge); the user column is a
    short value repeated over many rows (few distinct values relative to the rows; a name such as
    "user" or "author" counts for more), or None when no column looks like one. A suggestion
    only: the form lets the visitor change both.
    """
    columns, sample = _sample_rows(data)
    texts = [_text_score(_cells(sample, i), name) for i, name in enumerate(columns)]
    ti = max(range(len(columns)), key=lambda i: (texts[i], -i))
    users = {i: _user_score(_cells(sample, i), name) for i, name in enumerate(columns) if i != ti}
    scored = {i: score for i, score in users.items() if score is not None}
    ui = max(scored, key=lambda i: (scored[i], -i)) if scored else None
    preview = [[_cut(normalize_text(c)) for c in (row + [""] * len(columns))[: len(columns)]]
               for row in sample[:PREVIEW_ROWS]]
    return ColumnSuggestion(columns[ti], columns[ui] if ui is not None else None, preview)


def _one_user_per_record(texts: list[str]) -> list[Record]:
    """Each line (or row) its own user: a file without user ids says nothing about who wrote what."""
    return [Record(f"line-{i:06d}", t) for i, t in enumerate(texts)]


def _too_many_records(unit: str) -> CorpusError:
    """The refusal of a file past :data:`MAX_RECORDS`, raised on the first record past it.

    Why refuse instead of keeping the first records: a cut by position lets one person's record,
    added early in the file, push another person's record out, so a neighbouring file would differ
    by one person added and another removed (about 2ε, not ε). Why not keep records by a keyed hash
    at some rate instead: the rate must not depend on the file (a rate chosen to fit the cap moves
    everyone when one record is added), so a fixed rate would thin every file, small ones too, and
    still not bound the count. Refusing keeps every accepted file whole; the limit is part of what
    a valid file is, like :data:`MAX_UPLOAD_BYTES`, and only the person uploading sees the message.
    """
    return CorpusError(
        f"the file has more than {MAX_RECORDS:,} {unit}s of text, the most one upload may hold; upload at most "
        f"{MAX_RECORDS:,} (a sample of whole users): cutting the {unit}s past the limit would let one person's "
        f"{unit} push another's out, and the privacy guarantee would not hold"
    )


def _parse_txt(text: str) -> tuple[list[Record], dict]:
    texts: list[str] = []
    for line in io.StringIO(text):
        body = normalize_text(line)
        if not body:
            continue
        if len(texts) == MAX_RECORDS:
            raise _too_many_records("line")
        texts.append(body)
    return _one_user_per_record(texts), {"format": "txt", "user_grouping": "each line"}


def _parse_csv(text: str, text_column: str | None, user_column: str | None) -> tuple[list[Record], dict]:
    rows = _csv_rows(text)
    columns = _header(rows)  # consumes the header row; the rest is read lazily below
    if text_column is not None:
        ti = _pick(columns, text_column, "text")
    elif "text" in [c.lower() for c in columns]:
        ti = [c.lower() for c in columns].index("text")
    elif len(columns) == 1:
        ti = 0
    else:
        raise CorpusError(
            f"choose the text column: the CSV has no column named 'text'; its columns are {_shown(columns)}"
        )
    ui = _pick(columns, user_column, "user") if user_column is not None else None
    if ui == ti:
        raise CorpusError("the text column and the user column must be different columns")
    pairs: list[tuple[str, str]] = []
    missing_users = 0
    for row in rows:
        body = normalize_text(row[ti]) if ti < len(row) else ""
        if not body:
            continue
        if len(pairs) == MAX_RECORDS:
            raise _too_many_records("row")
        user = normalize_text(row[ui]) if ui is not None and ui < len(row) else ""
        missing_users += ui is not None and not user
        pairs.append((user or "unknown-user", body))
    meta: dict = {"format": "csv", "text_column": columns[ti]}
    if ui is None:
        records = _one_user_per_record([b for _, b in pairs])
        meta.update(user_grouping="each row")
    else:
        records = [Record(u, b) for u, b in pairs]
        meta.update(user_column=columns[ui], user_grouping="user column", rows_without_user=missing_users)
    return records, meta


def _check_enough(records: list[Record]) -> None:
    if not records:
        raise CorpusError("the file has no text records (every line or row is blank)")
    chars = sum(len(r.text) for r in records)
    if chars < MIN_CORPUS_CHARS:
        raise CorpusError(
            f"the file has too little text to train on: {chars:,} characters, "
            f"need at least {MIN_CORPUS_CHARS:,}"
        )
    users = len({r.user_id for r in records})
    if users < MIN_USERS:
        raise CorpusError(
            f"the file has too few users: {users}, need at least {MIN_USERS} so some can be held out for "
            "validation (add lines, or pick a different user column)"
        )


def _extension(filename: str) -> str:
    ext = Path(filename).suffix.lower()
    if ext not in EXTENSIONS:
        shown = f"'{ext}'" if ext else "without an extension"
        raise CorpusError(
            f"unsupported file type {shown}: upload a UTF-8 .txt (one record per line) or .csv file"
        )
    return ext


def load_corpus_bytes(
    data: bytes,
    filename: str,
    *,
    text_column: str | None = None,
    user_column: str | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> Corpus:
    """Parse an upload: ``.txt`` has one record per line; ``.csv`` a text and maybe a user column."""
    ext = _extension(filename)
    text = _decode(data, max_bytes)
    if ext == ".txt":
        records, meta = _parse_txt(text)
    else:
        records, meta = _parse_csv(text, text_column, user_column)
    _check_enough(records)
    name = Path(filename).name
    meta = {"source": "upload", "filename": name, **meta, "num_records": len(records),
            "num_users": len({r.user_id for r in records}), "max_records": MAX_RECORDS}
    return Corpus(name=name, records=records, canaries=[], metadata=meta)


def load_corpus(
    spec: str,
    *,
    text_column: str | None = None,
    user_column: str | None = None,
    seed: int = 0,
    builtin_users: int = DEFAULT_USERS,
) -> Corpus:
    """``"builtin"`` for the demo corpus (of ``builtin_users`` people), else a path to a ``.txt`` or ``.csv`` file.

    ``seed`` is accepted for call-site symmetry with the training config but deliberately unused:
    the built-in corpus is always generated with seed 0, so changing the training seed never
    changes the data (and a run's results stay comparable across seeds).
    """
    del seed
    if spec == "builtin":
        return builtin_corpus(seed=0, num_users=builtin_users)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise CorpusError(
            f"no such corpus file {str(path)!r}; give 'builtin' or a path to a .txt or .csv file"
        )
    _extension(path.name)
    size = path.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise CorpusError(
            f"the file is {_size(size)}, over the {_size(MAX_UPLOAD_BYTES)} upload limit; "
            "use a smaller sample"
        )
    return load_corpus_bytes(path.read_bytes(), path.name, text_column=text_column, user_column=user_column)

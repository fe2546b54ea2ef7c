"""Turn a user's .txt or .csv file into a :class:`Corpus`, or say in one sentence why not.

Every check happens on bytes first (type, size, binary, encoding), then on the parsed records
(enough text, enough users), so a bad file fails fast with a message that names the problem.
Messages never quote the file's text: an upload may be exactly the private data DP is for.

User ids: a .csv may name a user column. Without one (and always for .txt), consecutive records
are grouped into pseudo-users ``block-00000``, ``block-00001``… of 20 records (fewer for short
files, so that there are at least about 10 blocks). A split by block keeps neighbouring lines,
which often come from the same conversation or document, on the same side; it is *not* a real
user, so user-level privacy on such a corpus protects blocks of lines, not people. CSV rows with an
empty user cell all go to one user, ``unknown-user`` (counted in the metadata).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from dpcore.data.builtin import builtin_corpus
from dpcore.data.corpus import Corpus, Record, normalize_text
from dpcore.errors import CorpusError

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Records read from one upload; the rest of a longer file is left out, and the metadata says how many.
#: Bounds the memory and time of checking and previewing a file (a 20 MB CSV of short rows is ~1 M rows).
MAX_RECORDS = 100_000
#: A CSV header must fit in this many bytes (it is read without decoding the rest of the file).
HEADER_BYTES = 64 * 1024
MIN_CORPUS_CHARS = 2000
MIN_USERS = 2
BLOCK_RECORDS = 20
MIN_BLOCKS = 10
EXTENSIONS = (".txt", ".csv")
_BOM = b"\xef\xbb\xbf"
_CONTROL_BYTES = frozenset(range(0x20)) - {0x09, 0x0A, 0x0B, 0x0C, 0x0D} | {0x7F}
_MAX_SHOWN_COLUMNS = 20


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


def _blocks(texts: list[str]) -> list[Record]:
    """Group consecutive records into pseudo-users (see the module docstring)."""
    size = max(1, min(BLOCK_RECORDS, len(texts) // MIN_BLOCKS))
    return [Record(f"block-{i // size:05d}", t) for i, t in enumerate(texts)]


def _parse_txt(text: str) -> tuple[list[Record], dict]:
    texts: list[str] = []
    left_out = 0
    for line in io.StringIO(text):
        body = normalize_text(line)
        if not body:
            continue
        if len(texts) < MAX_RECORDS:
            texts.append(body)
        else:
            left_out += 1
    return _blocks(texts), {"format": "txt", "user_grouping": "blocks of consecutive lines",
                            "records_left_out": left_out}


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
    missing_users = left_out = 0
    for row in rows:
        body = normalize_text(row[ti]) if ti < len(row) else ""
        if not body:
            continue
        if len(pairs) >= MAX_RECORDS:
            left_out += 1
            continue
        user = normalize_text(row[ui]) if ui is not None and ui < len(row) else ""
        missing_users += ui is not None and not user
        pairs.append((user or "unknown-user", body))
    meta: dict = {"format": "csv", "text_column": columns[ti], "records_left_out": left_out}
    if ui is None:
        records = _blocks([b for _, b in pairs])
        meta["user_grouping"] = "blocks of consecutive rows"
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
    meta = {"source": "upload", "filename": name, **meta, "num_records": len(records)}
    return Corpus(name=name, records=records, canaries=[], metadata=meta)


def load_corpus(
    spec: str,
    *,
    text_column: str | None = None,
    user_column: str | None = None,
    seed: int = 0,
) -> Corpus:
    """``"builtin"`` for the demo corpus, else a path to a ``.txt`` or ``.csv`` file.

    ``seed`` is accepted for call-site symmetry with the training config but deliberately unused:
    the built-in corpus is always generated with seed 0, so changing the training seed never
    changes the data (and a run's results stay comparable across seeds).
    """
    del seed
    if spec == "builtin":
        return builtin_corpus(seed=0)
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

"""Uploads parse into corpora, and every bad file fails with a message naming the problem."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from dpcore.data import upload as upload_mod
from dpcore.data.builtin import builtin_corpus
from dpcore.data.dataset import build_lm_data
from dpcore.data.tokenizer import UNK_ID
from dpcore.data.upload import csv_columns, load_corpus, load_corpus_bytes
from dpcore.errors import CorpusError

SECRET_WORD = "zebrafish"  # appears in uploaded text; must never appear in an error message


def _lines(n: int, width: int = 60) -> list[str]:
    return [f"line {i} says {SECRET_WORD} things ".ljust(width, "x") for i in range(n)]


def _txt(n: int = 100) -> bytes:
    return "\n".join(_lines(n)).encode()


def _csv(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode()


def test_txt_one_record_and_one_user_per_line() -> None:
    data = b"\xef\xbb\xbf" + "\n\n".join(_lines(240)).encode() + b"\r\n   \n"
    corpus = load_corpus_bytes(data, "notes.TXT")
    assert len(corpus.records) == 240
    assert not corpus.records[0].text.startswith("\ufeff")
    assert corpus.users() == [f"line-{i:06d}" for i in range(240)]  # blank lines are not records
    assert [r.user_id for r in corpus.records[:2]] == ["line-000000", "line-000001"]
    assert corpus.metadata["format"] == "txt" and corpus.name == "notes.TXT"


@pytest.mark.parametrize(
    ("data", "filename", "match"),
    [
        (b"", "a.txt", "empty"),
        (b"  \n\n \t\n", "a.txt", "empty"),
        (b"\xef\xbb\xbf\n\n", "a.txt", "no text records"),
        (b"text\n\n,\n", "a.csv", "no text records"),
        (_txt()[:500] + b"\x00\x01\x02" + _txt()[500:], "a.txt", "binary.*NUL"),
        (bytes(range(1, 32)) * 200, "a.txt", "binary.*control"),
        (_txt()[:123] + b"\xff\xfe" + _txt()[123:], "a.txt", r"not valid UTF-8.*offset 123.*re-save"),
        (b"\xef\xbb\xbf" + _txt()[:10] + b"\xc3(" + _txt(), "a.txt", r"UTF-8.*offset 13\b"),
        ("\n".join(_lines(100)).encode("utf-16"), "a.txt", "UTF-16.*re-save"),
        (_txt(), "a.pdf", r"unsupported file type '\.pdf'"),
        (_txt(), "README", "unsupported file type without an extension"),
        (_txt(10), "a.txt", r"too little text.*600 characters.*2,000"),
        (_csv([["user", "text"], *[["u1", s] for s in _lines(100)]]), "a.csv", "too few users: 1"),
        (
            _csv([["id", "body", "when"], ["1", "hi", "now"]]),
            "a.csv",
            "choose the text column.*'id', 'body', 'when'",
        ),
    ],
)
def test_bad_uploads_are_named(data: bytes, filename: str, match: str) -> None:
    kwargs = {"user_column": "user"} if b"user," in data[:20] else {}
    with pytest.raises(CorpusError, match=match) as info:
        load_corpus_bytes(data, filename, **kwargs)
    assert SECRET_WORD not in str(info.value)


def test_oversized_upload_names_size_and_limit() -> None:
    with pytest.raises(CorpusError, match=r"6\.[0-9] KB, over the 5\.0 KB upload limit"):
        load_corpus_bytes(_txt(), "a.txt", max_bytes=5 * 1024)


def test_oversized_file_on_disk_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.txt"
    path.write_bytes(_txt())
    monkeypatch.setattr(upload_mod, "MAX_UPLOAD_BYTES", 1024)
    with pytest.raises(CorpusError, match=r"over the 1\.0 KB upload limit"):
        load_corpus(str(path))


def test_csv_columns_and_default_text_column() -> None:
    rows = [["Author", " Text "], *[[f"u{i % 4}", s] for i, s in enumerate(_lines(60))]]
    data = b"\xef\xbb\xbf" + _csv(rows)
    assert csv_columns(data) == ["Author", "Text"]
    corpus = load_corpus_bytes(data, "posts.csv")
    assert corpus.metadata["text_column"] == "Text"
    assert corpus.metadata["user_grouping"] == "each row"
    assert all(r.user_id.startswith("line-") for r in corpus.records)
    by_user = load_corpus_bytes(data, "posts.csv", user_column="author")
    assert by_user.users() == ["u0", "u1", "u2", "u3"]
    assert by_user.records[0].text == _lines(1)[0].strip()


def test_csv_explicit_and_single_column() -> None:
    rows = [["id", "body"], *[[str(i), s] for i, s in enumerate(_lines(50))]]
    corpus = load_corpus_bytes(_csv(rows), "a.csv", text_column="body")
    assert len(corpus.records) == 50 and corpus.records[0].text.startswith("line 0")
    single = load_corpus_bytes(_csv([["message"], *[[s] for s in _lines(50)]]), "a.csv")
    assert len(single.records) == 50
    lines = ["id;text", *[f"{i};{s}" for i, s in enumerate(_lines(50))]]
    semicolon = load_corpus_bytes("\n".join(lines).encode(), "a.csv")
    assert semicolon.records[3].text.startswith("line 3")


def test_csv_unknown_column_lists_columns() -> None:
    rows = [["id", "body"], *[[str(i), s] for i, s in enumerate(_lines(50))]]
    with pytest.raises(CorpusError, match=r"no text column named 'message'.*'id', 'body'"):
        load_corpus_bytes(_csv(rows), "a.csv", text_column="message")
    with pytest.raises(CorpusError, match=r"no user column named 'user'.*'id', 'body'"):
        load_corpus_bytes(_csv(rows), "a.csv", text_column="body", user_column="user")
    with pytest.raises(CorpusError, match="must be different"):
        load_corpus_bytes(_csv(rows), "a.csv", text_column="body", user_column="body")


def test_csv_multiline_field_becomes_one_record() -> None:
    rows = [["text"], *[[s + "\nsecond line"] for s in _lines(50)]]
    corpus = load_corpus_bytes(_csv(rows), "a.csv")
    assert len(corpus.records) == 50 and all("\n" not in r.text for r in corpus.records)


def test_chinese_text_round_trips_through_char_tokens() -> None:
    diary = "今天天气很好 我们去公园散步 然后吃了饺子。电话号码是一三八零零"
    lines = [f"第{i}天 {diary}{i:04d}。" for i in range(90)]
    corpus = load_corpus_bytes("\n".join(lines).encode(), "日记.txt")
    assert corpus.num_chars() >= 2000 and corpus.records[5].text == lines[5]
    data = build_lm_data(corpus, seq_len=32, val_fraction=0.2)
    tok = data.tokenizer
    assert tok.kind == "byte" and tok.decode(tok.encode(lines[0])) == lines[0]
    # the first training record spans several windows (3 bytes a character); joined, they decode back
    first = next(r.text for r in corpus.records if r.user_id == data.train_users[0])
    n_rows = -(-(len(first.encode()) + 2) // 33)
    assert n_rows > 1 and data.summary()["num_multiwindow_records"] == data.summary()["num_train_records"]
    assert tok.decode(data.train[:n_rows].flatten().tolist()) == "\n" + first + "\n"
    for row in data.train.tolist():  # a window cut inside a character shows no stray U+FFFD
        assert "\ufffd" not in tok.decode(row)


@pytest.mark.parametrize("tokenizer", ["char", "word"])
def test_a_private_token_does_not_change_an_uploads_vocabulary(tokenizer: str) -> None:
    base = _lines(100)
    plain = load_corpus_bytes("\n".join(base).encode(), "a.txt")
    leaky = load_corpus_bytes("\n".join([*base[:-1], "Жанна wrote zorblaxiquent Ж"]).encode(), "a.txt")
    assert plain.metadata["source"] == "upload"
    data = build_lm_data(plain, tokenizer=tokenizer, seq_len=32, max_vocab=500)
    again = build_lm_data(leaky, tokenizer=tokenizer, seq_len=32, max_vocab=500)
    assert "line-000099" in again.train_users  # the edited last line trains
    assert again.tokenizer.to_dict() == data.tokenizer.to_dict()
    other = build_lm_data(builtin_corpus(seed=2, num_users=30), seq_len=32, max_vocab=500, tokenizer=tokenizer)
    assert other.tokenizer.to_dict() != data.tokenizer.to_dict()  # the built-in one is the generator's
    s = again.summary()
    assert s["vocabulary_epsilon"] == 0.0
    if tokenizer == "char":
        assert again.tokenizer.vocab_size == 259 and s["vocabulary"].startswith("UTF-8 bytes")
    else:
        assert again.tokenizer.vocab_size == 500 and "wordfreq" in s["vocabulary"]
        assert UNK_ID in again.tokenizer.encode("zorblaxiquent")
        assert UNK_ID not in again.tokenizer.encode("the number is 5 5 5, call me!")


def test_load_corpus_builtin_ignores_training_seed() -> None:
    assert load_corpus("builtin", seed=5).records == builtin_corpus(seed=0).records


def test_load_corpus_from_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.txt"
    path.write_bytes(_txt())
    assert len(load_corpus(str(path)).records) == 100
    with pytest.raises(CorpusError, match="no such corpus file"):
        load_corpus(str(tmp_path / "missing.txt"))
    with pytest.raises(CorpusError, match="unsupported file type"):
        (tmp_path / "x.json").write_text("{}")
        load_corpus(str(tmp_path / "x.json"))


def test_csv_columns_read_only_the_header_bytes():
    from dpcore.data.upload import HEADER_BYTES, csv_columns

    body = b"".join(b"%d,hello there,u%d\n" % (i, i % 50) for i in range(200_000))
    # bytes far past the header that the old code decoded and parsed (and failed on)
    data = b"id,note,user\n" + body + b"\xff\xfe broken \"quote\n"
    assert len(data) > 10 * HEADER_BYTES
    assert csv_columns(data) == ["id", "note", "user"]


def test_a_file_past_max_records_is_refused_whole_not_cut_to_its_first_records(monkeypatch):
    from dpcore.data import upload

    monkeypatch.setattr(upload, "MAX_RECORDS", 300)
    lines = [f"line {i}: some words to train on, more than a few characters" for i in range(301)]
    with pytest.raises(CorpusError, match="more than 300 lines of text.*push another's out") as err:
        upload.load_corpus_bytes("\n".join(lines).encode(), "notes.txt")
    assert "line 1" not in str(err.value)  # the message never quotes the file
    at_cap = upload.load_corpus_bytes("\n".join(lines[:300] + ["", "   "]).encode(), "notes.txt")
    assert len(at_cap.records) == 300  # blank lines are not records
    rows = ["text,user"] + [f"row {i} with enough text to count for training,u{i % 40}" for i in range(301)]
    with pytest.raises(CorpusError, match="more than 300 rows of text"):
        upload.load_corpus_bytes("\n".join(rows).encode(), "notes.csv", text_column="text", user_column="user")
    kept = upload.load_corpus_bytes("\n".join(rows[:301] + [",u7"]).encode(), "notes.csv", text_column="text",
                                    user_column="user")
    assert len(kept.records) == 300 and "records_left_out" not in kept.metadata


# ------------------------------------------------------------------------------ suggested columns
def _mixed_csv(rows: int = 300, header: tuple[str, ...] = ("id", "note", "speaker", "rating")) -> bytes:
    """An id first (numbers), the text in the second column, users (12, repeated) third, a 1-5 rating last."""
    body = [[str(10_000 + i), f"message {i}: the {SECRET_WORD} swam past the harbour wall again today",
             f"person-{i % 12:02d}", str(i % 5 + 1)] for i in range(rows)]
    return _csv([list(header), *body])


def test_suggest_columns_finds_the_text_and_the_users_by_content() -> None:
    text_col, user_col, preview = upload_mod.suggest_columns(_mixed_csv())
    assert (text_col, user_col) == ("note", "speaker"), "not the first column (ids), not the rating"
    assert len(preview) == upload_mod.PREVIEW_ROWS and preview[0][0] == "10000" and len(preview[0]) == 4


def test_suggest_columns_needs_repetition_for_a_user_column() -> None:
    # unique per row (an id), a two-value label, one value for every row: none of them is users
    rows = [["text", "row_id", "label", "lang"]] + [[f"words and more words {i}", f"r{i}", str(i % 2), "en"]
                                                    for i in range(200)]
    assert upload_mod.suggest_columns(_csv(rows))[:2] == ("text", None)
    # a column named like users may have few of them in the first rows (a file sorted by user)
    rows = [["author", "body"]] + [[f"a{i // 100}", f"message number {i} with some words"] for i in range(300)]
    assert upload_mod.suggest_columns(_csv(rows))[:2] == ("body", "author")
    # an unnamed column needs many distinct values before it is taken for users
    rows = [["body", "k"]] + [[f"message number {i} with some words", f"k{i % 4}"] for i in range(300)]
    assert upload_mod.suggest_columns(_csv(rows))[:2] == ("body", None)
    rows = [["body", "k"]] + [[f"message number {i} with some words", f"k{i % 40}"] for i in range(300)]
    assert upload_mod.suggest_columns(_csv(rows))[:2] == ("body", "k")


def test_suggest_columns_reads_only_the_first_bytes() -> None:
    head = _mixed_csv(2000)
    assert len(head) > upload_mod.SAMPLE_BYTES
    # past the sample: bytes that are not UTF-8 and a broken quote; a whole-file read would fail on them
    data = head + b'\n\xff\xfe"unterminated,' + b"x" * 1000
    text_col, user_col, preview = upload_mod.suggest_columns(data)
    assert (text_col, user_col) == ("note", "speaker") and len(preview) == upload_mod.PREVIEW_ROWS
    with pytest.raises(CorpusError, match="upload limit"):
        upload_mod.suggest_columns(b"a,b\n" + b"x" * upload_mod.MAX_UPLOAD_BYTES)


def test_suggest_columns_preview_cells_are_cut_and_padded() -> None:
    long = "word " * 200
    rows = [["text", "user"], [long, "u1"], ["short but long enough text here"]]
    _, _, preview = upload_mod.suggest_columns(_csv(rows))
    assert len(preview[0][0]) == upload_mod.PREVIEW_CELL_CHARS and preview[0][0].endswith("…")
    assert preview[1] == ["short but long enough text here", ""]


def test_metadata_says_how_users_were_formed() -> None:
    meta = load_corpus_bytes(_txt(300), "notes.txt").metadata
    assert meta["user_grouping"] == "each line"
    assert meta["num_users"] == 300
    assert meta["max_records"] == upload_mod.MAX_RECORDS
    by_rows = load_corpus_bytes(_mixed_csv(), "m.csv", text_column="note").metadata
    assert (by_rows["user_grouping"], by_rows["num_users"]) == ("each row", 300)
    by_user = load_corpus_bytes(_mixed_csv(), "m.csv", text_column="note", user_column="speaker").metadata
    assert by_user["user_grouping"] == "user column" and by_user["num_users"] == 12
    assert "block_records" not in by_user

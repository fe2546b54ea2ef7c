"""AppTest: a first-time visitor's upload on the New run page: suggested CSV columns with a preview of the
first rows, the size limit in words, a refused file clearing the selection, and how "users" were formed.

Streamlit refuses a file over ``server.maxUploadSize`` in the browser, before the server sees it; AppTest
cannot produce that. What is tested here is what the server sees: the limit said next to the uploader (and
pinned to .streamlit/config.toml), and dpcore's own refusal of a file over the limit clearing the selection.
"""

from __future__ import annotations

import json
import re

import pytest

from dpcore.data import upload as upload_mod
from dpcore.data.upload import MAX_UPLOAD_BYTES
from dpcore.runs.uploads import grouping_sentences, upload_limit
from tests.apptest_support import ROOT, app_env_for, executor_of, texts


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    yield from app_env_for(tmp_path, monkeypatch)


PAGE = "pages/screens/new_run.py"
TXT = ("\n".join(f"line {i}: the quick brown fox jumps over the lazy dog number {i}" for i in range(300))).encode()
# The text is in the second column, after numeric ids; the users are a column with no telling name. 30 users:
# each validates on their own (a keyed hash, issue 28), and at split seed 0 two of them do.
CSV = ("id,note,who_wrote\n" + "\n".join(f"{5000 + i},note {i} about the weather and the trains today,p{i % 30:02d}"
                                         for i in range(300))).encode()


def _no_crash(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _labels(table) -> dict[str, str]:
    """The dataframe's column labels that its column config sets (the marked columns)."""
    return {name: c["label"] for name, c in json.loads(table.proto.columns).items() if "label" in c}


def _upload(app_env, name: str, data: bytes, mime: str = "text/plain"):
    at = app_env.app(page=PAGE).run()
    at.radio(key="nr_source").set_value("upload").run()
    at.file_uploader(key="nr_file").set_value((name, data, mime)).run()
    _no_crash(at)
    return at


# ------------------------------------------------------------------------------ 8: suggested columns
def test_csv_columns_are_suggested_from_the_content_and_previewed(app_env):
    at = _upload(app_env, "notes.csv", CSV, "text/csv")
    assert at.selectbox(key="nr_text_col").value == "note", "not the first column, which holds ids"
    assert at.selectbox(key="nr_user_col").value == "who_wrote", "short values repeated over many rows"
    assert at.query_params["text_column"] == "note" and at.query_params["user_column"] == "who_wrote"
    table = at.dataframe[0]
    assert list(table.value.columns) == ["id", "note", "who_wrote"] and len(table.value) == 5
    assert table.value.iloc[0, 0] == "5000"
    labels = _labels(table)
    assert labels == {"note": "note ← text", "who_wrote": "who_wrote ← user"}, "only the columns used are marked"
    assert any("first 5 rows of your file (only you can see them)" in c for c in texts(at.caption))
    assert not at.button(key="launch").disabled
    at.button(key="launch").click().run()
    (_, config), = executor_of(at).submitted
    assert config.text_column == "note" and config.user_column == "who_wrote"


def test_changing_the_text_column_moves_the_marks(app_env):
    at = _upload(app_env, "notes.csv", CSV, "text/csv")
    at.selectbox(key="nr_user_col").set_value("(no user column)").run()
    _no_crash(at)
    assert _labels(at.dataframe[0]) == {"note": "note ← text"}
    assert at.selectbox(key="nr_user_col").value == "(no user column)", "an explicit choice is kept"


# ------------------------------------------------------------------------------ 9: the size limit
def test_the_limit_is_said_in_words_next_to_the_uploader(app_env):
    at = app_env.app(page=PAGE).run()
    at.radio(key="nr_source").set_value("upload").run()
    _no_crash(at)
    assert any("at most 20 mb" in c.lower() for c in texts(at.caption))


def test_the_limit_in_words_is_streamlits_limit():
    toml = (ROOT / ".streamlit" / "config.toml").read_text()  # tomllib is 3.11+; the project supports 3.10
    (megabytes,) = re.findall(r"(?m)^maxUploadSize\s*=\s*(\d+)\s*$", toml)
    assert int(megabytes) * 1024 * 1024 == MAX_UPLOAD_BYTES, "Streamlit's limit and dpcore's must agree"
    assert upload_limit() == f"{megabytes} MB"


@pytest.mark.parametrize(("name", "data", "reason"), [
    ("big.txt", b"a" * (MAX_UPLOAD_BYTES + 1), "over the 20.0 MB upload limit"),
    ("binary.txt", b"\x00\x01\x02binary", "binary"),
])
def test_a_refused_file_clears_the_selection(app_env, name, data, reason):
    at = _upload(app_env, "corpus.txt", TXT)
    (first,) = app_env.store.list_uploads(app_env.owner())
    assert at.selectbox(key="nr_upload").value == first.id and not at.button(key="launch").disabled
    at.file_uploader(key="nr_file").set_value((name, data, "text/plain")).run()
    _no_crash(at)
    errors = " ".join(texts(at.error))
    assert "This file cannot be used" in errors and reason in errors and "No file is selected now" in errors
    assert at.selectbox(key="nr_upload").value is None, "falls back to 'Choose a file', not the older upload"
    assert at.button(key="launch").disabled
    assert [u.id for u in app_env.store.list_uploads(app_env.owner())] == [first.id], "nothing stored"
    at.run()  # a rerun with the refused file still in the uploader keeps the selection empty
    assert at.selectbox(key="nr_upload").value is None and at.button(key="launch").disabled
    at.selectbox(key="nr_upload").set_value(first.id).run()  # choosing the older file on purpose works
    _no_crash(at)
    assert not at.button(key="launch").disabled


# ------------------------------------------------------------------------------ 10: what a user is
def test_a_txt_upload_says_how_users_were_formed(app_env):
    at = _upload(app_env, "corpus.txt", TXT)
    notes = " ".join(texts(at.caption))
    assert "a .txt has no users, so each line counts as one user (300 users)" in notes
    assert "With the privacy unit 'user', ε protects each line as a whole" in notes  # the default unit
    assert "someone who wrote k lines is protected only at about k·ε" in notes
    assert "left out" not in notes
    at.segmented_control(key="nr_unit").set_value("sequence").run()
    notes = " ".join(texts(at.caption))
    assert "With the privacy unit 'sequence', ε protects one training sequence, a window of one line" in notes


def test_a_csv_upload_says_which_column_made_the_users(app_env):
    at = _upload(app_env, "notes.csv", CSV, "text/csv")
    notes = " ".join(texts(at.caption))
    assert "each distinct value of the 'who_wrote' column is one user (30 users)" in notes
    at.selectbox(key="nr_user_col").set_value("(no user column)").run()
    notes = " ".join(texts(at.caption))
    assert "no user column is chosen, so each row counts as one user (300 users)" in notes


def test_a_file_past_max_records_is_refused_not_cut(app_env, monkeypatch):
    monkeypatch.setattr(upload_mod, "MAX_RECORDS", 250)
    at = _upload(app_env, "corpus.txt", TXT)
    errors = " ".join(texts(at.error))
    assert "This file cannot be used" in errors and "more than 250 lines of text" in errors
    assert not app_env.store.list_uploads(app_env.owner()), "nothing stored"


def test_grouping_sentences_cover_every_grouping():
    rows = grouping_sentences({"format": "csv", "user_grouping": "user column", "user_column": "author",
                               "num_users": 1, "rows_without_user": 3, "num_records": 100, "max_records": 100})
    assert rows[0].endswith("'author' column is one user (1 user).")
    assert rows[1].startswith("3 rows with an empty 'author' cell count together as one user")
    assert "everything one user wrote, all of their rows together (at most 2 of their sequences" in rows[2]
    assert "not everything one user wrote" in grouping_sentences(
        {"format": "csv", "user_grouping": "user column", "user_column": "a"}, unit="sequence")[1]
    single = grouping_sentences({"format": "txt", "user_grouping": "each line", "num_users": 12})
    assert single[0] == "How users are formed: a .txt has no users, so each line counts as one user (12 users)."
    assert grouping_sentences({"format": "builtin"}) == []

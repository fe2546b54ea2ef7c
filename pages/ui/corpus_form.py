"""The New run form's data section: the built-in corpus, or one of this browser's uploads.

An upload is checked before it is stored (a bad file, or one past the visitor's disk quota or a
full disk, is explained right under the uploader and nothing is kept), stored privately for this
browser's owner key, and offered by file name. A refused file also clears the selection ("Choose a
file"), so Launch is never enabled on an older upload the visitor did not mean. The size limit is
said in words next to the uploader (Streamlit itself refuses larger files in the browser, before
the server sees them, and says so only on hover).

A CSV gets pickers for its text and user columns, pre-set from its first rows
(:func:`dpcore.runs.uploads.upload_sample`), and a preview of those rows with the chosen columns
marked: the only place an upload's content is shown, to the browser that uploaded it. It is never
logged. Under the file, a few sentences say how its "users" were formed and what that means for
the privacy unit (:func:`dpcore.runs.uploads.upload_notes`). The selected file can be deleted,
with the runs trained on it if asked (:func:`pages.ui.data_controls.upload_delete`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dpcore.config.presets import crowd_choices, crowd_label
from dpcore.errors import DPCoreError
from dpcore.runs.store import DiskFull, QuotaExceeded, RunStore
from dpcore.runs.uploads import (
    accept_upload,
    preview_header,
    upload_columns,
    upload_limit,
    upload_notes,
    upload_sample,
)
from pages.ui.data_controls import show_upload_flash, upload_delete
from pages.ui.run_form import NO_USER_COLUMN, PERSIST, locked

_CLEARED = "_nr_upload_cleared"  # a refused file emptied the selection: do not pick the newest upload again


def corpus_widgets(store: RunStore, owner: str) -> dict[str, Any]:
    """Built-in corpus or one of this browser's uploads (with CSV column pickers)."""
    slots: dict[str, Any] = {}
    s = st.session_state
    st.radio("Training text", ["builtin", "upload"], key="nr_source", horizontal=True, persist_state=PERSIST,
             format_func=lambda v: {"builtin": "Built-in corpus (synthetic chat messages)",
                                    "upload": "My own text (.txt or .csv)"}[v])
    show_upload_flash()  # the outcome of deleting an upload (the form is back on the built-in corpus)
    if s["nr_source"] != "upload":
        st.select_slider("How many people contributed?", options=crowd_choices(s.get("nr_people")), key="nr_people",
                         format_func=crowd_label, persist_state=PERSIST, disabled=locked("nr_people"),
                         help="The built-in corpus's crowd. DP-SGD's noise is shared by everyone in a batch, so the "
                              "same ε costs less accuracy when more people contributed: try 400 against 10,000.")
        st.caption(f"{s['nr_people']:,} synthetic people writing short messages, with names, numbers and places: "
                   "no real person's data.")
        slots["corpus"] = st.empty()
        return slots
    st.file_uploader(
        "Upload a UTF-8 .txt (one record per line) or .csv (a text column, optionally a user column)",
        type=["txt", "csv"], key="nr_file",
        help=f"Stored privately for this browser only; other visitors never see it. At most {upload_limit()}.",
    )
    st.caption(f"At most {upload_limit()} per file. Stored for this browser only.")
    _take_upload(store, owner)
    uploads = store.list_uploads(owner)
    if not uploads:
        st.caption("You have not uploaded any text yet.")
        slots["corpus"] = st.empty()
        return slots
    by_id = {u.id: u for u in uploads}
    if s.get("nr_upload") not in by_id and not (s.get("nr_upload") is None and s.get(_CLEARED)):
        s["nr_upload"] = uploads[0].id
    st.selectbox("Uploaded file", list(by_id), key="nr_upload", persist_state=PERSIST, index=None,
                 placeholder="Choose a file",
                 format_func=lambda i: f"{by_id[i].filename} ({by_id[i].size / 1024:,.0f} KB)")
    chosen = by_id.get(s["nr_upload"])
    if chosen is None:  # a refused file cleared the selection: nothing is launchable until one is chosen
        slots["corpus"] = st.empty()
        return slots
    s.pop(_CLEARED, None)  # a file is chosen again: later visits may default to the newest upload
    upload_delete(store, owner, chosen)
    text_col = user_col = None
    if chosen.filename.lower().endswith(".csv"):
        text_col, user_col = _column_widgets(chosen.path)
        if text_col is None:
            slots["corpus"] = st.empty()
            return slots
    notes = upload_notes(chosen.path, text_col, user_col, s.get("nr_unit", "user"), int(s.get("nr_user_cap", 2)))
    if notes:
        st.caption(" ".join(notes))
    slots["corpus"] = st.empty()
    return slots


def _column_widgets(path: str) -> tuple[str | None, str | None]:
    """Text and user column pickers (pre-set from the file's first rows) and a preview of those rows."""
    s = st.session_state
    try:
        columns = upload_columns(path)
        sample = upload_sample(path)
    except DPCoreError as err:
        st.error(f"This file cannot be used: {err}.")
        return None, None
    if not columns:
        return None, None
    if s.get("nr_text_col") not in columns:  # a new file (or a link's stale column): take the suggestion
        s["nr_text_col"] = sample.text_column if sample.text_column in columns else columns[0]
        if s.get("nr_user_col") not in columns:  # keep a user column a link named; else suggest one
            s["nr_user_col"] = sample.user_column if sample.user_column in columns else NO_USER_COLUMN
    users = [NO_USER_COLUMN] + [c for c in columns if c != s["nr_text_col"]]
    if s.get("nr_user_col") not in users:
        s["nr_user_col"] = NO_USER_COLUMN
    cols = st.columns(2)
    cols[0].selectbox("Text column", columns, key="nr_text_col", persist_state=PERSIST,
                      help="The column to train on. Suggested from the first rows: the one with the longest, "
                           "mostly non-numeric values.")
    cols[1].selectbox("User column", users, key="nr_user_col", persist_state=PERSIST,
                      help="Rows of one user stay together on one side of the train/validation split. "
                           "Without it, each row counts as its own user. Suggested from the first "
                           "rows: short values that repeat, like a user id or an author's name.")
    text_col = s["nr_text_col"]
    user_col = None if s["nr_user_col"] == NO_USER_COLUMN else s["nr_user_col"]
    _preview_table(columns, sample.preview_rows, text_col, user_col)
    return text_col, user_col


def _preview_table(columns: list[str], rows: list[list[str]], text_col: str, user_col: str | None) -> None:
    """The file's first rows with the text and user columns marked (shown to the file's owner only)."""
    if not rows:
        return
    names = preview_header(columns)
    frame = pd.DataFrame(rows, columns=names)
    marked = {names[columns.index(text_col)]: ("text", "#DCEBF7")}
    if user_col is not None:
        marked[names[columns.index(user_col)]] = ("user", "#FCEBD9")
    styled = frame.style
    for name, (_, colour) in marked.items():
        styled = styled.set_properties(subset=[name], **{"background-color": colour})
    config = {name: st.column_config.TextColumn(f"{name} ← {role}", help=f"The {role} column")
              for name, (role, _) in marked.items()}
    st.caption(f"The first {len(rows)} rows of your file (only you can see them), with the columns used marked:")
    st.dataframe(styled, column_config=config, hide_index=True)


def _take_upload(store: RunStore, owner: str) -> None:
    """Check and store a newly dropped file once; explain a bad one right under the uploader."""
    s = st.session_state
    file = s.get("nr_file")
    if file is None:
        return
    done: dict[str, str] = s.setdefault("_nr_taken_files", {})
    if file.file_id in done:
        if done[file.file_id].startswith("error:"):
            st.error(done[file.file_id][len("error:"):], icon=":material/error:")
        return
    try:
        upload = accept_upload(store, owner, file.name, file.getvalue())
    except (QuotaExceeded, DiskFull) as err:  # the file is fine; the server has no room for it
        _refused(store, owner, file.file_id, f"This file could not be stored: {err}.")
        return
    except DPCoreError as err:
        _refused(store, owner, file.file_id, f"This file cannot be used: {err}.")
        return
    done[file.file_id] = upload.id
    s["nr_upload"] = upload.id
    s.pop(_CLEARED, None)
    s["nr_text_col"], s["nr_user_col"] = None, NO_USER_COLUMN
    st.success(f"Stored {upload.filename} for this browser only.", icon=":material/check_circle:")


def _refused(store: RunStore, owner: str, file_id: str, message: str) -> None:
    """Explain a refused file, and drop the selection: the visitor meant this file, not an older one."""
    s = st.session_state
    s["_nr_taken_files"][file_id] = "error:" + message
    s["nr_upload"], s[_CLEARED] = None, True
    if store.list_uploads(owner):
        message += " No file is selected now: choose one of your earlier files below, or upload another."
    st.error(message, icon=":material/error:")

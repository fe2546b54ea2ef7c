"""The New run form's data section: the built-in corpus, or one of this browser's uploads.

An upload is checked before it is stored (a bad file, or one past the visitor's disk quota or a
full disk, is explained right under the uploader and nothing is kept), stored privately for this
browser's owner key, and offered by file name; a CSV gets pickers for its text and user columns.
The selected file can be deleted, with the runs trained on it if asked
(:func:`pages.ui.data_controls.upload_delete`). The file's content is never shown or logged.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dpcore.errors import DPCoreError
from dpcore.runs.store import DiskFull, QuotaExceeded, RunStore
from dpcore.views.preview import accept_upload, upload_columns
from pages.ui.data_controls import show_upload_flash, upload_delete
from pages.ui.run_form import NO_USER_COLUMN, PERSIST


def corpus_widgets(store: RunStore, owner: str) -> dict[str, Any]:
    """Built-in corpus or one of this browser's uploads (with CSV column pickers)."""
    slots: dict[str, Any] = {}
    s = st.session_state
    st.radio("Training text", ["builtin", "upload"], key="nr_source", horizontal=True, persist_state=PERSIST,
             format_func=lambda v: {"builtin": "Built-in corpus (synthetic chat messages)",
                                    "upload": "My own text (.txt or .csv)"}[v])
    show_upload_flash()  # the outcome of deleting an upload (the form is back on the built-in corpus)
    if s["nr_source"] != "upload":
        st.caption("400 synthetic users writing short messages, with names, numbers and places: no real person's "
                   "data.")
        slots["corpus"] = st.empty()
        return slots
    st.file_uploader(
        "Upload a UTF-8 .txt (one record per line) or .csv (a text column, optionally a user column)",
        type=["txt", "csv"], key="nr_file",
        help="Stored privately for this browser only; other visitors never see it. At most 20 MB.",
    )
    _take_upload(store, owner)
    uploads = store.list_uploads(owner)
    if not uploads:
        st.caption("You have not uploaded any text yet.")
        slots["corpus"] = st.empty()
        return slots
    by_id = {u.id: u for u in uploads}
    if s.get("nr_upload") not in by_id:
        s["nr_upload"] = uploads[0].id
    st.selectbox("Uploaded file", list(by_id), key="nr_upload", persist_state=PERSIST,
                 format_func=lambda i: f"{by_id[i].filename} ({by_id[i].size / 1024:,.0f} KB)")
    chosen = by_id[s["nr_upload"]]
    upload_delete(store, owner, chosen)
    if chosen.filename.lower().endswith(".csv"):
        try:
            columns = upload_columns(chosen.path)
        except DPCoreError as err:
            st.error(f"This file cannot be used: {err}.")
            columns = []
        if columns:
            if s.get("nr_text_col") not in columns:
                lowered = [c.lower() for c in columns]
                s["nr_text_col"] = columns[lowered.index("text")] if "text" in lowered else columns[0]
            users = [NO_USER_COLUMN] + [c for c in columns if c != s["nr_text_col"]]
            if s.get("nr_user_col") not in users:
                s["nr_user_col"] = NO_USER_COLUMN
            cols = st.columns(2)
            cols[0].selectbox("Text column", columns, key="nr_text_col", persist_state=PERSIST)
            cols[1].selectbox("User column", users, key="nr_user_col", persist_state=PERSIST,
                              help="Rows of one user stay together on one side of the train/validation split. "
                                   "Without it, blocks of consecutive rows are grouped instead.")
    slots["corpus"] = st.empty()
    return slots


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
        message = f"This file could not be stored: {err}."
        done[file.file_id] = "error:" + message
        st.error(message, icon=":material/error:")
        return
    except DPCoreError as err:
        message = f"This file cannot be used: {err}."
        done[file.file_id] = "error:" + message
        st.error(message, icon=":material/error:")
        return
    done[file.file_id] = upload.id
    s["nr_upload"] = upload.id
    s["nr_text_col"], s["nr_user_col"] = None, NO_USER_COLUMN
    st.success(f"Stored {upload.filename} for this browser only.", icon=":material/check_circle:")

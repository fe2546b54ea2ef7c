"""What a visitor keeps on the server, and how they delete it: runs, uploads, the browser's identity.

* Home's "Your data" (:func:`your_data`): disk used against the quota, each own run with a Delete
  button (a second click confirms). A queued or running run must be cancelled first (the store
  refuses to delete a running run). Runs opened by link that belong to someone else can only be
  taken off this browser's list.
* The New run form's upload picker (:func:`upload_delete`): delete the selected file, optionally
  with the runs trained on it (with their checkpoints); the form falls back to the built-in corpus.
* The sidebar's "Forget this browser" (:func:`forget_controls`): a new identity for this browser,
  optionally deleting everything of the old one first. Runs still running are cancelled and the
  forgetting waits until they have stopped (the button says so), so nothing is left behind that
  nobody could delete any more.

Every change happens in a button callback (before the page draws), so the page that follows
already shows the result; the one-sentence outcome is kept in session state and shown once.
"""

from __future__ import annotations

import contextlib

import streamlit as st

from dpcore.errors import DPCoreError
from dpcore.runs.executors.base import Executor
from dpcore.runs.store import Run, RunNotFound, RunStore, Upload, UploadNotFound
from dpcore.views.meaning import run_label
from pages.ui import session
from pages.ui.widgets import MONITOR_PAGE, status_text

_HOME_FLASH = "_home_data_flash"
_HOME_CONFIRM = "_home_delete_confirm"
_FORM_FLASH = "_nr_upload_flash"
_FORM_CONFIRM = "_nr_upload_delete_confirm"
_FORGET_FLASH = "_forget_flash"
ACTIVE = ("queued", "running")


def _mb(n: float) -> str:
    return f"{n / 2**20:,.1f} MB"


def _flash(key: str, kind: str, text: str) -> None:
    st.session_state[key] = (kind, text)


def show_flash(key: str) -> None:
    """Show (once) the outcome a callback left under ``key``."""
    kind, text = st.session_state.pop(key, (None, None))
    if kind == "error":
        st.error(text, icon=":material/error:")
    elif kind == "warning":
        st.warning(text, icon=":material/hourglass_top:")
    elif kind:
        st.success(text, icon=":material/check_circle:")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


# ------------------------------------------------------------------------------ Home: your data
def disk_caption(store: RunStore, owner: str) -> None:
    """"You keep 1.2 MB of the 200 MB this server allows you", with a bar when there is a quota."""
    used, quota = store.disk_usage(owner), store.limits.disk_quota_bytes
    if quota is None:
        st.caption(f"You keep {_mb(used)} on this server (uploads and runs); it sets no limit.")
        return
    st.progress(min(1.0, used / quota), text=f"You keep {_mb(used)} of the {_mb(quota)} this server allows "
                                             "you (uploads and runs).")


def _confirm_run(run_id: str) -> None:
    st.session_state[_HOME_CONFIRM] = run_id


def _keep_run() -> None:
    st.session_state.pop(_HOME_CONFIRM, None)


def _delete_run(run_id: str, label: str) -> None:
    st.session_state.pop(_HOME_CONFIRM, None)
    try:
        session.store().delete_run(run_id, session.owner())
    except DPCoreError as err:
        _flash(_HOME_FLASH, "error", f"Run {label} was not deleted: {err}.")
        return
    session.unremember(run_id)
    _flash(_HOME_FLASH, "success", f"Deleted run {label}, with its curves, samples and checkpoint.")


def _unlist_run(run_id: str) -> None:
    session.unremember(run_id)


def _own_run_row(run: Run) -> None:
    label = run_label(run)
    cols = st.columns([3, 2], vertical_alignment="center")
    cols[0].markdown(f"{label} — {status_text(run)}")
    with cols[1]:
        if run.status in ACTIVE:
            st.page_link(MONITOR_PAGE, label="Cancel it first on the Run monitor", icon=":material/cancel:",
                         query_params={"run": run.id}, help="A run can be deleted once it has stopped.")
        elif st.session_state.get(_HOME_CONFIRM) == run.id:
            yes, keep = st.columns(2)
            yes.button("Delete for good", key=f"home_del_yes_{run.id}", type="primary", icon=":material/delete:",
                       on_click=_delete_run, args=(run.id, label), width="stretch")
            keep.button("Keep", key=f"home_del_no_{run.id}", on_click=_keep_run, width="stretch")
        else:
            st.button("Delete", key=f"home_del_{run.id}", icon=":material/delete:", on_click=_confirm_run,
                      args=(run.id,), help="Deletes the run, its curves, samples and checkpoint, and frees its "
                                           "disk space. Asks once more.")


def your_data(store: RunStore, owner: str) -> None:
    """Home's "Your data": disk used against the quota, own runs to delete, others' to unlist."""
    show_flash(_HOME_FLASH)
    own = store.list_runs(owner)
    others = [r for rid in session.visited_runs() if (r := session.find_run(rid)) is not None and r.owner != owner]
    with st.expander(f"Your data: {_plural(len(own), 'run')} on this server", icon=":material/storage:"):
        disk_caption(store, owner)
        if not own:
            st.caption("No runs of yours are stored. Uploads are deleted on the New run page, under Data.")
        for run in own:
            _own_run_row(run)
        if own:
            st.caption("Uploaded files are deleted on the New run page, under Data; the sidebar's "
                       "\"Forget this browser\" can delete everything at once.")
        if others:
            st.markdown("**Runs you opened by link** (they belong to someone else: you can only take them off "
                        "your list)")
            for run in others:
                cols = st.columns([3, 2], vertical_alignment="center")
                cols[0].markdown(f"{run_label(run)} — {status_text(run)}")
                cols[1].button("Remove from my list", key=f"home_unlist_{run.id}", icon=":material/visibility_off:",
                               on_click=_unlist_run, args=(run.id,))


# ------------------------------------------------------------------------------ New run: delete an upload
def _confirm_upload(upload_id: str) -> None:
    st.session_state[_FORM_CONFIRM] = upload_id
    st.session_state["nr_upload_delete_runs"] = False


def _keep_upload() -> None:
    st.session_state.pop(_FORM_CONFIRM, None)


def _delete_upload(upload_id: str, filename: str) -> None:
    s = st.session_state
    s.pop(_FORM_CONFIRM, None)
    with_runs = bool(s.get("nr_upload_delete_runs"))
    try:
        deleted = session.store().delete_upload(session.owner(), upload_id, delete_runs=with_runs)
    except UploadNotFound:
        deleted = []  # already gone (another tab): the outcome is the same
    except DPCoreError as err:
        _flash(_FORM_FLASH, "error", f"{filename} was not deleted: {err}.")
        return
    for run_id in deleted:
        session.unremember(run_id)
    s["nr_source"], s["nr_upload"] = "builtin", None
    s["nr_text_col"] = None
    also = f", and the {_plural(len(deleted), 'run')} trained on it" if deleted else ""
    _flash(_FORM_FLASH, "success", f"Deleted {filename}{also}. The form uses the built-in corpus again.")


def upload_delete(store: RunStore, owner: str, upload: Upload) -> None:
    """A Delete button under the upload picker; its confirm step offers the runs trained on the file."""
    if st.session_state.get(_FORM_CONFIRM) != upload.id:
        st.button("Delete this file", key="nr_upload_delete", icon=":material/delete:", on_click=_confirm_upload,
                  args=(upload.id,), help="Deletes the file from the server. Asks once more.")
        return
    runs = store.runs_using_upload(owner, upload.id)
    with st.container(border=True):
        st.markdown(f"Delete **{upload.filename}** from the server?")
        if runs:
            st.checkbox(f"also delete the {_plural(len(runs), 'run')} trained on this file (with "
                        f"{'its' if len(runs) == 1 else 'their'} checkpoints)", key="nr_upload_delete_runs")
            if not st.session_state.get("nr_upload_delete_runs"):
                st.caption("Unticked, those runs stay (curves, samples, checkpoints) but cannot be trained again "
                           "from this file.")
            if any(r.status == "running" for r in runs):
                st.caption("A run is still training on this file: cancel it on the Run monitor first.")
        yes, keep = st.columns(2)
        yes.button("Delete for good", key="nr_upload_delete_yes", type="primary", icon=":material/delete:",
                   on_click=_delete_upload, args=(upload.id, upload.filename), width="stretch")
        keep.button("Keep", key="nr_upload_delete_no", on_click=_keep_upload, width="stretch")


def show_upload_flash() -> None:
    show_flash(_FORM_FLASH)


# ------------------------------------------------------------------------------ sidebar: forget this browser
def delete_everything(store: RunStore, executor: Executor, owner: str) -> tuple[int, int, list[Run]]:
    """Cancel ``owner``'s active runs, delete every stopped run and every upload no running run needs.

    Returns (runs deleted, uploads deleted, runs still stopping). Idempotent: call it again once the
    stopping runs have ended to finish the job.
    """
    for run in store.list_runs(owner, status=ACTIVE):
        with contextlib.suppress(RunNotFound):
            executor.cancel(run.id, owner)  # queued: cancelled at once; running: signalled
    runs_deleted = 0
    for run in store.list_runs(owner):
        if run.status in ACTIVE:
            continue
        try:
            store.delete_run(run.id, owner)
            runs_deleted += 1
        except RunNotFound:
            pass
        except DPCoreError:  # it started running in between: it stays for the next try
            pass
    uploads_deleted = 0
    for upload in store.list_uploads(owner):
        try:
            runs_deleted += len(store.delete_upload(owner, upload.id, delete_runs=True))
            uploads_deleted += 1
        except DPCoreError:  # a running run still reads it
            pass
    return runs_deleted, uploads_deleted, store.list_runs(owner, status=ACTIVE)


def _forget() -> None:
    s = st.session_state
    delete = bool(s.get("forget_delete"))
    done = ""
    if delete:
        runs, uploads, stopping = delete_everything(session.store(), session.executor(), session.owner())
        if stopping:
            one = len(stopping) == 1
            _flash(_FORGET_FLASH, "warning",
                   f"{_plural(len(stopping), 'run')} of yours {'was' if one else 'were'} still running and "
                   f"{'has' if one else 'have'} been cancelled; stopping takes a few seconds. Everything not in "
                   "use is deleted. Click Forget again then to finish: this browser is not forgotten yet.")
            return
        done = f" Deleted {_plural(runs, 'run')} and {_plural(uploads, 'upload')}."
    kept = "" if delete else " Your old runs and uploads stay on the server under the old key."
    session.forget_browser(keep={_FORGET_FLASH: (
        "success", f"This browser was forgotten: it has a new key and no runs.{done}{kept}")})


def forget_controls() -> None:
    """The sidebar's "Forget this browser": a new identity, optionally deleting the old one's data."""
    show_flash(_FORGET_FLASH)
    with st.expander("Forget this browser", icon=":material/person_remove:"):
        st.caption("Your runs are tied to a key kept in this browser's cookie. Forgetting removes the key and "
                   "starts a new one: this browser then shows no runs. Do it before leaving a shared computer.")
        st.checkbox("also delete my runs and uploads", key="forget_delete",
                    help="Running runs are cancelled first; everything is deleted once they have stopped. "
                         "Unticked, your runs and uploads stay on the server where no browser can list or "
                         "delete them (run links still open the runs): the runs until the server's retention "
                         "removes them, the uploads until its operator does.")
        st.button("Forget this browser", key="forget_browser", icon=":material/logout:", on_click=_forget,
                  width="stretch")

"""Who this browser is, and the process-wide handles (run store, executor).

Owner identity, the choice and why:

* Each browser gets a random 128-bit secret kept in a first-party cookie (:data:`COOKIE`).
  Streamlit 1.67 can read cookies (``st.context.cookies``, sent with every new session's
  websocket request) but has no API to set one, so a one-line script sets it once through
  ``st.html(..., unsafe_allow_javascript=True)`` (``st.html`` is not iframed, so the cookie lands on
  the app's own origin). A page reload starts a new session that reads the same cookie: same
  owner. Another browser or browser context has its own cookie jar: another owner.
* The store never holds the secret: the owner key is ``browser:`` + a SHA-256 prefix of it, so the
  database file contains no bearer credentials.
* Share links carry only the run id (``?run=<id>``): a capability URL. Anyone holding it can view
  that run read-only; only its owner can cancel it or see their uploads. The secret never
  appears in a URL.
* Without cookies or JavaScript the secret lives in ``st.session_state`` only: the visitor's own
  list of runs then lasts until the tab reloads (each run stays reachable by its link).
* "Forget this browser" (:func:`forget_browser`) expires the cookie (the same one-line script with
  ``max-age=0``), clears this session and starts a new identity, whose cookie is set as above.
  The secret travels in a cookie on every request, so a public server belongs behind TLS.

The store and executor are ``st.cache_resource`` singletons: one per server process, shared by
all sessions (both are thread-safe). Tests replace :func:`build_executor`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from typing import Any

import streamlit as st

from dpcore.runs.executors.base import Executor
from dpcore.runs.executors.registry import make_executor
from dpcore.runs.store import Run, RunNotFound, RunStore
from pages.ui.live import RunTicker

COOKIE = "dprnn_owner"
COOKIE_MAX_AGE_S = 365 * 24 * 3600
_SECRET_RE = re.compile(r"^[0-9a-f]{32}$")
_COOKIE_NAME_RE = re.compile(r"^dprnn_[A-Za-z0-9_]{1,60}$")
_COOKIE_VALUE_RE = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
_SECRET_KEY = "_owner_secret"
_COOKIE_SET_KEY = "_owner_cookie_set"
_VISITED_KEY = "_visited_runs"
_FORGET_KEY = "_owner_forget"


# ------------------------------------------------------------------------------ handles
def build_executor(store: RunStore) -> Executor:
    """The executor the app uses: ``$DPCORE_EXECUTOR`` (local processes, or Ray; tests monkeypatch this)."""
    return make_executor(store)


@st.cache_resource(show_spinner=False)
def _store() -> RunStore:
    return RunStore()  # DPCORE_DATA_DIR, else the per-user data folder


@st.cache_resource(show_spinner=False)
def _executor() -> Executor:
    return build_executor(_store())  # apart from the store: an unreachable Ray is not an unreadable store


@st.cache_resource(show_spinner=False)
def _ticker() -> RunTicker:
    return RunTicker(_store())  # one per process: every tab watching a run shares its reads


def store() -> RunStore:
    return _store()


def ticker() -> RunTicker:
    return _ticker()


def executor() -> Executor:
    return _executor()


def executor_label() -> str:
    """Where runs train, in a few words, for the sidebar (the executor's own ``describe``)."""
    return executor().describe()


# ------------------------------------------------------------------------------ identity
def _secret() -> str:
    state = st.session_state
    if _SECRET_KEY not in state:
        cookie = st.context.cookies.get(COOKIE)
        if isinstance(cookie, str) and _SECRET_RE.match(cookie):
            state[_SECRET_KEY], state[_COOKIE_SET_KEY] = cookie, True
        else:
            state[_SECRET_KEY], state[_COOKIE_SET_KEY] = secrets.token_hex(16), False
    return state[_SECRET_KEY]


def owner_key(secret: str) -> str:
    """The store's owner key for a browser secret (a one-way hash: the store holds no secrets)."""
    return "browser:" + hashlib.sha256(secret.encode()).hexdigest()[:32]


def owner() -> str:
    """This browser's owner key for the store (never shown, never put in a URL)."""
    return owner_key(_secret())


def ensure_cookie() -> None:
    """Set the identity cookie once per new browser (call from the router on every run, first).

    After :func:`forget_browser` this run starts from a cleared session with a new secret, and the
    one script first expires the old cookie (``max-age=0``), then sets the new identity's cookie.
    """
    forget = _apply_forget()
    secret = _secret()
    if st.session_state.get(_COOKIE_SET_KEY):
        return
    expire = "".join(f"document.cookie = '{name}=; path=/; max-age=0; SameSite=Lax';"  # rooms' tokens too
                     for name in {COOKIE, *st.context.cookies} if _COOKIE_NAME_RE.match(name)) if forget else ""
    st.html(
        f"<script>{expire}"
        f"document.cookie = '{COOKIE}={secret}; path=/; max-age={COOKIE_MAX_AGE_S}; SameSite=Lax';"
        "</script>",
        unsafe_allow_javascript=True,
    )
    st.session_state[_COOKIE_SET_KEY] = True


def set_cookie(name: str, value: str, max_age_s: int = COOKIE_MAX_AGE_S) -> None:
    """Keep a small secret (a room's instructor token) in a first-party cookie of this browser.

    The same one-line script as the identity cookie; "Forget this browser" expires it too (every
    cookie named ``dprnn_…``). Names and values are URL-safe tokens only.
    """
    if not _COOKIE_NAME_RE.match(name) or not _COOKIE_VALUE_RE.match(value):
        raise ValueError("a cookie name and value must be URL-safe tokens")
    st.html(f"<script>document.cookie = '{name}={value}; path=/; max-age={int(max_age_s)}; SameSite=Lax';</script>",
            unsafe_allow_javascript=True)


def cookie(name: str) -> str | None:
    """A cookie this browser sent when the session started (None if absent or not a URL-safe token)."""
    value = st.context.cookies.get(name)
    return value if isinstance(value, str) and _COOKIE_VALUE_RE.match(value) else None


def forget_browser(keep: dict[str, Any] | None = None) -> str:
    """Forget this browser's identity from the next script run on; returns the old owner key.

    Meant for a widget callback. The next run (:func:`ensure_cookie`) clears the whole session
    (visited runs, the form's uploads, every widget), expires the cookie and starts a new owner
    key; ``keep`` (say a message to show) is put back into the cleared session. The old owner's
    runs and uploads are untouched here: delete them first if asked.
    """
    old = owner()
    st.session_state[_FORGET_KEY] = dict(keep or {})
    return old


def _apply_forget() -> bool:
    state = st.session_state
    if _FORGET_KEY not in state:
        return False
    keep = state[_FORGET_KEY]
    for key in list(state.keys()):
        del state[key]
    state[_SECRET_KEY], state[_COOKIE_SET_KEY] = secrets.token_hex(16), False
    for key, value in keep.items():
        state[key] = value
    return True


# ------------------------------------------------------------------------------ runs
def is_owner(run: Run) -> bool:
    return run.owner == owner()


def remember(run_id: str) -> None:
    """Note a run this session opened by link, so compare and samples can offer it too."""
    visited = st.session_state.setdefault(_VISITED_KEY, [])
    if run_id not in visited:
        visited.append(run_id)


def unremember(run_id: str) -> None:
    """Take a run opened by link off this session's list (the run itself is untouched)."""
    visited = st.session_state.get(_VISITED_KEY, [])
    if run_id in visited:
        visited.remove(run_id)


def visited_runs() -> list[str]:
    """Ids of runs this session opened by link (any owner's, this one's included)."""
    return list(st.session_state.get(_VISITED_KEY, []))


def find_run(run_id: str) -> Run | None:
    """Any run by id (a capability: knowing the id is permission to view), None if unknown."""
    try:
        return store().get_run(run_id)
    except RunNotFound:
        return None


def my_runs(limit: int | None = None) -> list[Run]:
    """This browser's runs plus the runs it opened by link this session, newest first."""
    own = store().list_runs(owner(), limit=limit)
    seen = {r.id for r in own}
    extra = []
    for run_id in st.session_state.get(_VISITED_KEY, []):
        if run_id not in seen and (run := find_run(run_id)) is not None:
            extra.append(run)
    runs = sorted(own + extra, key=lambda r: r.created_at, reverse=True)
    return runs[:limit] if limit else runs


# ------------------------------------------------------------------------------ live refresh
#: Monitors watched at once before the refresh slows down: the server redraws every watcher's live
#: view on its own (bench/load_ws.py: 30 watchers at one refresh a second fill a core).
WATCHERS_PER_SECOND = 10
_WATCH_WINDOW_S = 10.0


@st.cache_resource(show_spinner=False)
def _watchers() -> tuple[dict[str, float], threading.Lock]:
    return {}, threading.Lock()


def live_interval(base_s: float = 1.0, *, now: float | None = None) -> float:
    """Seconds between live refreshes for this session: ``base_s``, longer when many people watch.

    Every session that asks counts as a watcher for a few seconds; the interval grows with the number
    of watchers (one more second per :data:`WATCHERS_PER_SECOND`), so a room of 30 shares the server's
    core instead of queueing behind each other, and a lone watcher keeps the one-second refresh.
    """
    now = time.monotonic() if now is None else now
    seen, lock = _watchers()
    key = str(st.session_state.setdefault("_watcher_id", secrets.token_hex(8)))
    with lock:
        seen[key] = now
        for other, at in list(seen.items()):
            if now - at > _WATCH_WINDOW_S:
                del seen[other]
        watchers = len(seen)
    return base_s * max(1.0, watchers / WATCHERS_PER_SECOND)

"""Workshop rooms in the dashboard: the room store handle, instructor tokens, the New run hook, the nudge banner.

* The room a browser launches in is the open room it joined most recently (its owner key is a
  participant there), unless this session chose "launch outside the room".
* The New run form, inside a room, shows only the room's presets and keeps every control the room
  locks at the preset's value, drawn disabled (:func:`form_hook`); Launch goes through
  :meth:`RoomStore.launch <dpcore.runs.rooms.RoomStore.launch>`, which checks the same rules again
  on the server.
* The instructor token lives in this session and in a first-party cookie ``dprnn_room_<id>``
  (set by :func:`pages.ui.session.set_cookie`), so a reload keeps the instructor's controls. It comes
  from creating the room, or from the instructor link (``?room=<id>&key=<token>``), whose key is
  taken out of the address bar at once.
"""

from __future__ import annotations

import streamlit as st

from dpcore.config.presets import PRESETS, Preset
from dpcore.errors import DPCoreError
from dpcore.runs.rooms import CONTROLS, Room, RoomNotFound, RoomStore
from pages.ui import routes, session

ROOM_COOKIE_PREFIX = "dprnn_room_"
_TOKENS_KEY = "_room_tokens"
_OUTSIDE_KEY = "_room_outside"
_DISMISSED_KEY = "_room_nudge_seen"
CORPUS_FORM_KEYS = frozenset({"nr_source", "nr_upload", "nr_text_col", "nr_user_col"})
NUDGE_POLL_S = 3.0


@st.cache_resource(show_spinner=False)
def _rooms() -> RoomStore:
    return RoomStore(session.store(), {p.name: p.config for p in PRESETS})


def rooms() -> RoomStore:
    """The process-wide room store (beside the run store, in the same data folder)."""
    return _rooms()


def app_base() -> str:
    """The app's root address as this browser sees it (for join links)."""
    base = (st.context.url or "http://localhost:8501").split("?")[0].rstrip("/")
    if base.rsplit("/", 1)[-1] in routes.URL_PATHS:
        base = base.rsplit("/", 1)[0]
    return base


def join_link(room_id: str) -> str:
    return f"{app_base()}/{routes.ROOM.url_path}?room={room_id}"


# ------------------------------------------------------------------------------ instructor tokens
def remember_token(room_id: str, token: str) -> None:
    """Keep the instructor token for this session and, through a cookie, for this browser."""
    st.session_state.setdefault(_TOKENS_KEY, {})[room_id] = token
    session.set_cookie(ROOM_COOKIE_PREFIX + room_id, token)


def token_for(room_id: str) -> str | None:
    """This browser's instructor token for the room, if it holds one (session first, then the cookie)."""
    token = st.session_state.get(_TOKENS_KEY, {}).get(room_id)
    if token is None:
        token = session.cookie(ROOM_COOKIE_PREFIX + room_id)
        if token:
            st.session_state.setdefault(_TOKENS_KEY, {})[room_id] = token
    return token


def instructor_rooms() -> list[Room]:
    """Rooms this browser is instructor of (its tokens that still open a room)."""
    ids = set(st.session_state.get(_TOKENS_KEY, {}))
    ids |= {name[len(ROOM_COOKIE_PREFIX):] for name in st.context.cookies if name.startswith(ROOM_COOKIE_PREFIX)}
    found = []
    for room_id in sorted(ids):
        try:
            if rooms().is_instructor(room_id, token_for(room_id)):
                found.append(rooms().get_room(room_id))
        except RoomNotFound:
            continue
    return sorted(found, key=lambda r: r.created_at, reverse=True)


# ------------------------------------------------------------------------------ the active room
def active_room() -> Room | None:
    """The open room this browser launches in, or None."""
    if st.session_state.get(_OUTSIDE_KEY):
        return None
    joined = rooms().rooms_of(session.owner())
    return joined[0] if joined else None


def launch_outside() -> None:
    st.session_state[_OUTSIDE_KEY] = True


def launch_inside() -> None:
    st.session_state.pop(_OUTSIDE_KEY, None)


def presets(all_presets: tuple[Preset, ...] = PRESETS) -> list[Preset]:
    """The preset buttons the New run form shows: the room's, or all of them outside a room."""
    room = active_room()
    if room is None:
        return list(all_presets)
    return [p for p in all_presets if p.name in room.settings.presets]


def form_hook(run_form) -> Room | None:
    """Before the New run widgets are drawn: inside a room, start from an allowed preset and lock the rest.

    Shows what the room allows, with a button to launch outside it. Returns the room (None outside).
    """
    room = active_room()
    if room is None:
        run_form.unlock()
        return None
    allowed = room.settings.presets
    if run_form.current_preset() not in allowed:
        run_form.apply_preset(allowed[0])
    unlocked = {k for c in CONTROLS if c.name in room.settings.unlocked for k in c.form_keys}
    run_form.lock(run_form.form_keys() - unlocked - CORPUS_FORM_KEYS)
    me = rooms().participant(room.id, session.owner())
    used = rooms().runs_used(room.id, session.owner())
    free = [c.label for c in CONTROLS if c.name in room.settings.unlocked]
    with st.container(border=True):
        cols = st.columns([4, 1])
        cols[0].markdown(
            f":material/groups: **Room “{room.name}”** as **{me.display_name if me else '?'}** — "
            f"{used} of {room.settings.quota} runs used. You can change: "
            f"{', '.join(free) if free else 'nothing but the preset'}; the other settings stay the preset's."
            + (" Corpus: the built-in one." if room.settings.corpus == "builtin" else "")
        )
        cols[0].page_link(routes.ROOM.path, label="Room page", icon=":material/groups:",
                          query_params={"room": room.id})
        cols[1].button("Launch outside the room", key="room_outside", on_click=launch_outside,
                       help="Your next runs are yours alone, with every control and preset; rejoin from the room page.")
    return room


def submit(owner: str, config) -> str:
    """Launch from the New run form: through the room's checks inside a room, else straight to the executor."""
    room = active_room()
    if room is None:
        return session.executor().submit(owner, config)
    return rooms().launch(room.id, owner, config, session.executor())


# ------------------------------------------------------------------------------ the nudge banner
def nudge_banner() -> None:
    """A banner with the instructor's latest nudge on every page, polled live, for participants of an open room."""
    try:
        joined = rooms().rooms_of(session.owner())
    except DPCoreError:
        return
    if not joined:
        return
    room_id = joined[0].id

    @st.fragment(run_every=session.live_interval(NUDGE_POLL_S))
    def banner() -> None:
        try:
            room = rooms().get_room(room_id)
        except DPCoreError:
            return
        seen = st.session_state.get(_DISMISSED_KEY, {}).get(room.id, 0)
        if room.nudge and room.is_open and room.nudge_seq > seen:
            cols = st.columns([12, 1])
            cols[0].info(f"**{room.name}** — {room.nudge}", icon=":material/campaign:")
            cols[1].button("OK", key=f"room_nudge_ok_{room.nudge_seq}", on_click=_dismiss,
                           args=(room.id, room.nudge_seq), help="Hide this message")

    banner()


def _dismiss(room_id: str, seq: int) -> None:
    st.session_state.setdefault(_DISMISSED_KEY, {})[room_id] = seq

"""Workshop room: a class explores ε together. Create a room, join it by link, see everyone's runs.

Without ``?room=`` the page creates a room (the creator's browser becomes its instructor); with it,
participants join under a display name, and everyone sees the room's live frontier, its table and
the challenge. The instructor (holding the room's token) gets the join link and QR code, nudges,
locks and unlocks controls, and closes the room; a closed room offers the class report.
"""

import io

import segno
import streamlit as st

from dpcore.config.presets import PRESETS, get_preset, workshop_presets
from dpcore.errors import DPCoreError
from dpcore.runs.rooms import (
    CHALLENGES,
    CONTROLS,
    CONTROLS_BY_NAME,
    CORPUS_MODES,
    DEFAULT_QUOTA,
    MAX_QUOTA,
    Challenge,
    RoomNotFound,
    RoomSettings,
)
from dpcore.views import roomview
from dpcore.views.auditview import load_audit
from dpcore.views.report import privacy_statement
from pages.ui import present, room_ui, routes, session
from pages.ui.widgets import CHART_CONFIG, NEW_RUN_PAGE

rooms, store, owner = room_ui.rooms(), session.store(), session.owner()
big = present.active()


def _flash(kind: str, text: str) -> None:
    st.session_state["_room_flash"] = (kind, text)


def _show_flash() -> None:
    kind, text = st.session_state.pop("_room_flash", (None, None))
    if kind == "error":
        st.error(text, icon=":material/error:")
    elif kind:
        st.success(text, icon=":material/check_circle:")


# ------------------------------------------------------------------------------ the instructor link
room_id = st.query_params.get("room")
link_key = st.query_params.get("key")
if room_id and link_key:
    if rooms.is_instructor(room_id, link_key):
        room_ui.remember_token(room_id, link_key)
    else:
        _flash("error", "This instructor link's key does not open this room: you see it as a participant.")
    del st.query_params["key"]  # the key never stays in the address bar


# ------------------------------------------------------------------------------ creating a room
def create_room() -> None:
    s = st.session_state
    challenge = None
    if s["room_new_challenge"] != "none":
        challenge = Challenge(s["room_new_challenge"], float(s["room_new_challenge_value"]))
    settings = RoomSettings(presets=tuple(s["room_new_presets"]), unlocked=tuple(s["room_new_unlocked"]),
                            quota=int(s["room_new_quota"]), corpus=s["room_new_corpus"])
    try:
        created = rooms.create_room(s["room_new_name"], settings, challenge)
    except DPCoreError as err:
        _flash("error", f"The room could not be created: {err}.")
        return
    room_ui.remember_token(created.room.id, created.token)
    st.session_state["_room_created_token"] = (created.room.id, created.token)
    st.query_params["room"] = created.room.id


if not room_id:
    st.title("Workshop room")
    st.markdown("A room lets a class explore ε together: participants join with a link or QR code, launch runs "
                "within the limits you set, and every run appears on one live privacy–utility frontier.")
    _show_flash()
    mine = room_ui.instructor_rooms()
    if mine:
        st.markdown("**Your rooms**")
        for r in mine:
            st.page_link(routes.ROOM.path, label=f"{r.name} — {'open' if r.is_open else 'closed'}",
                         icon=":material/groups:", query_params={"room": r.id})
    with st.form("room_create", border=True):
        st.subheader("Create a room")
        st.text_input("Room name", key="room_new_name", max_chars=60, placeholder="DP workshop, Tuesday")
        st.multiselect("Presets participants may start from", [p.name for p in PRESETS], key="room_new_presets",
                       default=[p.name for p in workshop_presets()], format_func=lambda n: get_preset(n).title)
        st.multiselect("Controls participants may change (you can lock or unlock them later)",
                       [c.name for c in CONTROLS], key="room_new_unlocked", default=["epsilon"],
                       format_func=lambda n: CONTROLS_BY_NAME[n].label)
        cols = st.columns(2)
        cols[0].number_input("Runs per participant", min_value=1, max_value=MAX_QUOTA, value=DEFAULT_QUOTA, step=1,
                             key="room_new_quota")
        cols[1].radio("Corpus", list(CORPUS_MODES), key="room_new_corpus", format_func=lambda m: CORPUS_MODES[m])
        cols = st.columns(2)
        cols[0].selectbox("Challenge", ["none", *CHALLENGES], key="room_new_challenge",
                          format_func=lambda k: "no challenge" if k == "none" else
                          CHALLENGES[k][0].format(value=CHALLENGES[k][2]).replace(f"{CHALLENGES[k][2]:g}", "…"))
        cols[1].number_input("The challenge's number (the ε limit, or how often the canary was planted: 1, 3, 10, 30)",
                             min_value=0.1, max_value=1000.0, value=3.0, step=1.0, key="room_new_challenge_value")
        st.form_submit_button("Create room", type="primary", icon=":material/add:", on_click=create_room)
    st.stop()


# ------------------------------------------------------------------------------ the room
try:
    room = rooms.get_room(room_id)
except RoomNotFound as err:
    st.error(f"{str(err)[0].upper()}{str(err)[1:]}.", icon=":material/error:")
    st.stop()
token = room_ui.token_for(room.id)
instructor = rooms.is_instructor(room.id, token)
me = rooms.participant(room.id, owner)

st.title(room.name)
st.caption(("Open: participants can join and launch runs." if room.is_open else
            "Closed: its runs stay, and the class report below covers them all.")
           + (" You are its instructor." if instructor else ""))
_show_flash()


def _act(action, done: str) -> None:
    try:
        action()
    except DPCoreError as err:
        _flash("error", f"{str(err)[0].upper()}{str(err)[1:]}.")
    else:
        _flash("success", done)


def send_nudge() -> None:
    _act(lambda: rooms.nudge(room.id, token, st.session_state["room_nudge_text"]), "Nudge sent to every participant.")


def apply_locks() -> None:
    _act(lambda: rooms.set_unlocked(room.id, token, st.session_state["room_unlocked"]),
         "Controls updated: participants' forms follow at their next click.")


def set_challenge() -> None:
    kind = st.session_state["room_challenge"]
    challenge = None if kind == "none" else Challenge(kind, float(st.session_state["room_challenge_value"]))
    _act(lambda: rooms.set_challenge(room.id, token, challenge), "Challenge set.")


def close_room() -> None:
    _act(lambda: rooms.close_room(room.id, token), "Room closed: its runs are kept, and the class report is ready.")


def join_room() -> None:
    def do() -> None:
        rooms.join(room.id, owner, st.session_state["room_display_name"])
        room_ui.launch_inside()
    _act(do, "Welcome! Launch runs from New run: they appear here under your name.")


# ------------------------------------------------------------------------------ instructor panel
if instructor:
    link = room_ui.join_link(room.id)
    with st.container(border=True):
        cols = st.columns([1, 2] if not big else [1, 1])
        qr = io.BytesIO()
        segno.make(link, error="m").save(qr, kind="png", scale=10 if big else 6, border=2)
        cols[0].image(qr.getvalue(), caption="Scan to join", width="content")
        with cols[1]:
            st.markdown("**Join link** (put it on a slide with the QR code)")
            st.code(link, language=None)
            if not big:
                st.download_button("Download the QR code (PNG)", data=qr.getvalue(), file_name=f"room-{room.id}.png",
                                   mime="image/png", icon=":material/qr_code_2:", on_click="ignore", key="room_qr_dl")
                created = st.session_state.get("_room_created_token")
                with st.expander("Your instructor link (keep it secret)"):
                    st.caption("It gives the instructor's controls in any browser: open it on the projector's laptop "
                               "or your phone. This browser remembers them already.")
                    if created and created[0] == room.id:
                        st.code(f"{link}&key={created[1]}", language=None)
                    else:
                        st.code(f"{link}&key={token}", language=None)
    if room.is_open and not big:
        with st.expander("Instructor controls", expanded=True, icon=":material/school:"):
            cols = st.columns(2)
            with cols[0]:
                st.text_input("Nudge every participant", key="room_nudge_text", max_chars=300,
                              placeholder="Now try ε = 1")
                st.button("Send nudge", on_click=send_nudge, icon=":material/campaign:", key="room_nudge_send")
            with cols[1]:
                if "room_unlocked" not in st.session_state:
                    st.session_state["room_unlocked"] = list(room.settings.unlocked)
                st.multiselect("Controls participants may change", [c.name for c in CONTROLS], key="room_unlocked",
                               format_func=lambda n: CONTROLS_BY_NAME[n].label)
                st.button("Apply locks", on_click=apply_locks, icon=":material/lock:", key="room_lock_apply")
            cols = st.columns(2)
            with cols[0]:
                if "room_challenge" not in st.session_state:
                    st.session_state["room_challenge"] = room.challenge.kind if room.challenge else "none"
                    st.session_state["room_challenge_value"] = float(room.challenge.value if room.challenge else 3.0)
                st.selectbox("Challenge", ["none", *CHALLENGES], key="room_challenge",
                             format_func=lambda k: "no challenge" if k == "none" else CHALLENGES[k][0].split(" ≤")[0]
                             .split(" at which")[0])
                st.number_input("The challenge's number (ε limit, or canary insertions)", min_value=0.1,
                                max_value=1000.0, step=1.0, key="room_challenge_value")
                st.button("Set challenge", on_click=set_challenge, icon=":material/emoji_events:", key="room_chal_set")
            with cols[1]:
                st.markdown("**Close the room**")
                st.caption("No more joins or launches; every run stays, and everyone gets the class report.")
                sure = st.checkbox("Yes, close it", key="room_close_sure")
                st.button("Close the room", on_click=close_room, disabled=not sure, icon=":material/lock_clock:",
                          key="room_close", type="primary")


# ------------------------------------------------------------------------------ participant
if room.is_open and not big:
    if me is None:
        with st.container(border=True):
            st.markdown("**Join this room** — no account: pick the name the room sees next to your runs.")
            st.text_input("Your display name", key="room_display_name", max_chars=40)
            st.button("Join", type="primary", on_click=join_room, icon=":material/login:", key="room_join")
    else:
        used = rooms.runs_used(room.id, owner)
        active = room_ui.active_room()
        cols = st.columns([3, 1])
        cols[0].markdown(f"You are **{me.display_name}** — {used} of {room.settings.quota} runs used.")
        if active is not None and active.id == room.id:
            cols[0].page_link(NEW_RUN_PAGE, label="Launch a run in this room", icon=":material/rocket_launch:",
                              query_params={"preset": room.settings.presets[0]})
            cols[0].page_link(routes.ATTACK_LAB.path, label="Play the attacker with the room (Attack lab)",
                              icon=":material/sports_esports:")
        else:
            cols[1].button("Launch in this room again", on_click=room_ui.launch_inside, key="room_inside")


# ------------------------------------------------------------------------------ everyone: live view
def _audits(entries) -> dict:
    """Audits of finished built-in runs (immutable once written: cached for the session)."""
    cache = st.session_state.setdefault("_room_audits", {})
    for entry in entries:
        run = session.find_run(entry.run_id)
        if run is not None and run.status == "finished" and run.config.get("audit") and entry.run_id not in cache:
            cache[entry.run_id] = load_audit(store, run)
    return cache


@st.fragment(run_every=session.live_interval(3.0) if room.is_open else None)
def live() -> None:
    entries = rooms.room_runs(room.id)
    runs = {e.run_id: r for e in entries if (r := session.find_run(e.run_id)) is not None}
    rows = roomview.room_rows(entries, runs, viewer=owner, audits=_audits(entries))
    result = roomview.evaluate_challenge(room.challenge, rows)
    if result is not None:
        with st.container(border=True):
            st.markdown(f"#### :material/emoji_events: Challenge: {result.title}")
            st.caption(result.rule)
            if result.leader is not None:
                lead = result.leader
                ppl = f", validation perplexity {lead.val_perplexity:.3g}" if lead.val_perplexity is not None else ""
                st.success(f"Leader: **{lead.name}** — {lead.label}: ε = {lead.epsilon:.3g}{ppl}",
                           icon=":material/star:")
            else:
                st.info("Nobody qualifies yet.")
    points, baselines, others = roomview.frontier_points(rows)
    st.plotly_chart(roomview.frontier_scatter_figure(points, baselines, others, big=big), key="room_frontier",
                    config=CHART_CONFIG)
    people = len({r.name for r in rows})
    st.caption(f"{len(rows)} runs from {people} participant{'s' if people != 1 else ''}; the frontier fills in as "
               "runs finish. Runs on uploaded text show numbers only if their owner shares them, and never samples.")
    if big:
        return
    cols = st.columns([2, 1, 3])
    by = cols[0].segmented_control("Sort by", list(roomview.SORT_KEYS), key="room_sort", default="epsilon",
                                   format_func=lambda k: roomview.SORT_KEYS[k]) or "epsilon"
    descending = cols[1].toggle("Descending", key="room_desc")
    ordered = roomview.sort_rows(rows, by, descending=descending)
    table = roomview.rows_table(ordered)
    base = room_ui.app_base()
    table["open"] = [f"{base}/{routes.MONITOR.url_path}?run={r.run_id}" if r.run_id else None for r in ordered]
    st.dataframe(table, hide_index=True, key="room_table", placeholder="—",
                 column_config={"ε spent": st.column_config.NumberColumn(format="%.3f"),
                                "val perplexity": st.column_config.NumberColumn(format="%.2f"),
                                "open": st.column_config.LinkColumn("open", display_text="monitor")})


live()

# ------------------------------------------------------------------------------ sharing one's upload runs
my_uploads = [e for e in rooms.room_runs(room.id) if e.owner == owner
              and (r := session.find_run(e.run_id)) is not None and r.config.get("corpus") != "builtin"]
if my_uploads and not big:
    with st.expander("Your runs on uploaded text"):
        st.caption("The room sees only that you ran them. Tick a run to show its ε and validation perplexity (never "
                   "its samples, file name or link) to everyone in the room and in the class report.")
        for entry in my_uploads:
            run = session.find_run(entry.run_id)
            value = st.checkbox(f"Share the numbers of {roomview.short_label(run)} ({run.id[:6]})",
                                value=entry.share_numbers, key=f"room_share_{entry.run_id}")
            if value != entry.share_numbers:
                rooms.set_share_numbers(room.id, entry.run_id, owner, value)
                st.rerun()

# ------------------------------------------------------------------------------ the class report
@st.cache_data(ttl=30, max_entries=16, show_spinner="Building the class report…")
def _class_report(room_id: str, run_ids: tuple[str, ...], is_open: bool) -> str:
    """The class report's HTML, built once per room state (the key) and at most every 30 s.

    Built before the button is drawn rather than on click: a click-time callable is lost when the
    nudge fragment reruns between drawing the button and the click, and the download never starts.
    """
    del run_ids, is_open  # cache key only
    entries = rooms.room_runs(room_id)
    runs = {e.run_id: r for e in entries if (r := session.find_run(e.run_id)) is not None}
    rows = roomview.room_rows(entries, runs, viewer=None, audits=_audits(entries))  # an export: no viewer
    statements = {r.run_id: privacy_statement(runs[r.run_id]) for r in rows if r.run_id and not r.on_upload}
    return roomview.class_report_html(room, rows, statements)


if (not room.is_open or instructor) and not big:
    report_key = tuple(e.run_id for e in rooms.room_runs(room.id))
    st.download_button("Download the class report (HTML)", data=_class_report(room.id, report_key, room.is_open),
                       file_name=f"class-report-{room.id}.html", mime="text/html", icon=":material/download:",
                       on_click="ignore", key="room_report", type="primary" if not room.is_open else "secondary")

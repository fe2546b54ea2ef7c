"""Attack lab: the visitor plays the attacker against an audited model and sees whether the guarantee holds.

Membership game over the audit's own canaries (never anyone's text): each round shows a canary, its loss
and its loss rank; the visitor guesses "trained on" or not, and only then learns the secret coin
(:mod:`dpcore.runs.lab_games`). The scoreboard turns the pool's guesses into ε lower bounds with the
audit's theorem (:mod:`dpcore.audit.lab`), beside the accountant's ε and the audit's own attack.
"""

import streamlit as st

from dpcore.audit.lab import MAX_TRIES, ROUNDS
from dpcore.errors import DPCoreError
from dpcore.runs.gallery import GALLERY_OWNER, gallery_state
from dpcore.runs.lab_games import LabGames, lab_of, may_play, pool_of
from dpcore.views import charts
from dpcore.views.auditview import load_audit
from dpcore.views.labview import (
    bound_points,
    candidate_caption,
    extraction_sentence,
    game_line,
    hint_line,
    pool_score,
    prediction_rows,
    target_label,
    verdict,
)
from dpcore.views.meaning import run_label
from pages.ui import room_ui, session
from pages.ui.widgets import CHART_CONFIG, NEW_RUN_PAGE, privacy_badge, run_picker, share_caption

REVEAL = "lab_reveal"
store = session.store()
games = LabGames(store)
player = session.owner()

st.title("Attack lab")
st.caption("Play the attacker. Each model below was audited with 1,000 random canary texts, and a secret coin flip "
           "decided for each whether the model trained on it. Guess which ones it did: your score becomes a proven "
           "lower bound on ε, with the same theorem the audit uses, next to the ε the accountant promises.")

linked = session.find_run(st.query_params.get("run", "")) if st.query_params.get("run") else None
if linked is not None:
    session.remember(linked.id)  # a shared lab link opens that model, as every page's run link does
candidates = [*gallery_state(store).finished, *session.my_runs(), *([linked] if linked else [])]
labs = {run.id: (run, lab) for run in candidates
        if may_play(run, player) and (lab := lab_of(store, run)) is not None}
if not labs:
    st.info("No model here has an audit to attack yet. The demo gallery brings some, or train your own with "
            "**Audit privacy at the end** ticked on the New run form.")
    st.page_link(NEW_RUN_PAGE, label="Configure a run", icon=":material/tune:")
    st.stop()
run = run_picker([r for r, _ in labs.values()], key="lab_pick", label="Model to attack",
                 current=st.query_params.get("run"))
_, lab = labs[run.id]
audit = load_audit(store, run) or {}
claimed, delta = audit.get("claimed_epsilon"), float(audit.get("delta") or 0.0)
room = room_ui.active_room()
room_id = room.id if room is not None else None
privacy_badge(str(run.config.get("mechanism")))
share_caption("attack_lab", run.id)
if run.owner == GALLERY_OWNER:
    st.caption("This gallery model ships trained with the project, and its answers with it: anyone who reads the "
               "project's files could look them up. Nobody in a workshop will, but for a test nobody could have "
               "looked up, attack a model trained on this server with **Audit privacy at the end** ticked.")
if room is not None:
    st.caption(f"You play in room **{room.name}**: everyone's guesses there count together on the room's "
               "scoreboard, and nobody is dealt a canary someone in the room has already played. Keep the answers "
               "to yourself: the room's bound counts on guesses made without them.")


def _guess(game_id: int, canary: int, value: bool | None) -> None:
    try:
        reveal = games.guess(game_id, player, canary, value, lab)
    except DPCoreError as err:
        st.session_state[REVEAL] = {"error": str(err)}
        return
    st.session_state[REVEAL] = {"run": run.id, "canary": canary, "guess": value, "truth": reveal.truth,
                                "correct": reveal.record.correct}


game = games.current(run.id, player, room=room_id)
shown = st.session_state.get(REVEAL)
if shown and shown.get("error"):
    st.error(shown["error"])
elif shown and shown.get("run") == run.id:
    truth = "WAS trained on" if shown["truth"] else "was NOT trained on"
    if shown["guess"] is None:
        st.info(f"You skipped canary #{shown['canary']}: it {truth}.")
    elif shown["correct"]:
        st.success(f"Right: canary #{shown['canary']} {truth}.")
    else:
        st.warning(f"Wrong: canary #{shown['canary']} {truth}.")

if game is None or game.finished:
    st.subheader("Predict, then play")
    with st.form("lab_start"):
        prediction = st.slider("Before you play: how often do you expect to guess right on this model?",
                               min_value=50, max_value=100, value=60, step=5, format="%d%%", key="lab_prediction")
        start = st.form_submit_button(f"Start a game of {ROUNDS} rounds", type="primary")
    if start:
        try:
            games.start(run.id, player, lab, room=room_id, prediction=prediction / 100)
        except DPCoreError as err:
            st.error(str(err))
        else:
            st.session_state.pop(REVEAL, None)
            st.rerun()
else:
    canary = game.next_canary
    c = lab.candidate(canary)
    st.subheader(f"Canary #{canary}")
    st.caption(game_line(game))
    st.code(c.text, language=None)
    st.markdown(candidate_caption(c))
    cols = st.columns(3)
    cols[0].button("Trained on it", on_click=_guess, args=(game.id, canary, True), key="lab_in", type="primary")
    cols[1].button("Not trained on it", on_click=_guess, args=(game.id, canary, False), key="lab_out")
    cols[2].button("Skip", on_click=_guess, args=(game.id, canary, None), key="lab_skip")

st.subheader("Scoreboard: the room's guesses" if room is not None else "Scoreboard: your guesses")
pool = games.pool_games(run.id, pool_of(player, room_id))
score = pool_score(pool, lab.m, delta)
who = "the room's guesses" if room is not None else "your guesses"
said = verdict(score, claimed, delta, who=who)
{"alarm": st.error, "held": st.success}.get(said.level, st.info)(said.sentence)
if score is not None:
    st.caption(f"{score.correct} right of {score.made} guessed over {score.games} game(s) of {ROUNDS}; a coin gets "
               f"half right. Bounds at 95 % confidence (each pool size tested at α = {score.alpha:.2g}, so playing "
               "on cannot fish for a bigger number).")
points = bound_points(score, audit, claimed, m=lab.m, delta=delta)
st.plotly_chart(charts.lab_bounds_figure(points), key="lab_bounds", config=CHART_CONFIG)

if lab.extraction:
    st.subheader("Extraction game: find a planted PIN")
    st.caption("The built-in corpus hides 4-digit PINs after known prefixes, each planted a few times. Given the "
               "prefix, find the PIN. The hint is the model's own ranking of all 10,000 PINs, as an attacker with "
               "the weights computes it; the audit measured how far down the true one sits.")
    targets = {t.canary_id: t for t in lab.extraction}
    target = targets[st.selectbox("Secret to extract", list(targets), format_func=lambda i: target_label(targets[i]),
                                  key="lab_target")]
    state = games.extraction(run.id, player, target)
    st.markdown(f"**The model's first {len(target.guesses)} guesses:** {hint_line(target)}")
    if not state.over:
        with st.form("lab_try", clear_on_submit=True):
            attempt = st.text_input(f"Your try ({state.tries} of {MAX_TRIES} used)", placeholder="e.g. 4 9 1 7",
                                    key="lab_attempt")
            cols = st.columns(2)
            tried = cols[0].form_submit_button("Try", type="primary")
            gave_up = cols[1].form_submit_button("Give up and show the PIN")
        if tried or gave_up:
            try:
                games.try_secret(run.id, player, target, None if gave_up else attempt)
            except DPCoreError as err:
                st.error(str(err))
            else:
                st.rerun()
    if state.attempts:
        st.caption("Tried: " + ", ".join(f"`{a}`" for a in state.attempts))
    if state.over:
        (st.success if state.found else st.info)(extraction_sentence(target, state))

mine = games.player_games(player)
models = {}
for run_id in dict.fromkeys(g.run_id for g in mine):
    other = run if run_id == run.id else session.find_run(run_id)
    other_audit = audit if run_id == run.id else (load_audit(store, other) or {} if other else {})
    if other is not None:
        models[run_id] = (run_label(other), other_audit.get("claimed_epsilon"), float(other_audit.get("delta") or 0.0))
rows = prediction_rows(mine, models)
if rows:
    st.subheader("Your predictions, revealed")
    st.dataframe(rows, hide_index=True, key="lab_predictions")
    st.caption("The last column is what ε itself allows: at ε = 8 an attacker may in principle be right almost "
               "always; at ε = 1, at most 73 % of the time. The audit's attack, and most people, do far worse.")

"""AppTest: the Attack lab deals a canary, shows nothing of its coin before the guess, reveals it after, and
scores the guesses beside the audit and the claimed ε."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dpcore.audit.lab import ExtractionTarget, save_lab_canaries
from dpcore.audit.one_run import one_run_bound
from tests.apptest_support import TINY, app_env_for, texts, write_run

PAGE = "pages/screens/attack_lab.py"


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    yield from app_env_for(tmp_path, monkeypatch)


def _lab_run(env, coins: np.ndarray, *, epsilon: float | None = 2.5):
    store = env.store
    config = TINY.replace(audit=True) if epsilon is not None else TINY.replace(audit=True, mechanism="none")
    run = write_run(store, env.owner(), config, epsilon=epsilon)
    m = len(coins)
    scores = np.linspace(-3.0, -2.0, m)
    save_lab_canaries(store.run_dir(run.id), [f"canary text {i:04d}" for i in range(m)], scores, coins)
    one = one_run_bound(scores, coins, delta=1e-5)
    path = store.run_dir(run.id) / "audit.json"
    path.write_text(json.dumps({"claimed_epsilon": epsilon, "delta": 1e-5, "one_run": one}), encoding="utf-8")
    store.add_artifact(run.id, "audit", path)
    return run


def _everything(at) -> list[str]:
    out = []
    for kind in ("markdown", "caption", "code", "success", "warning", "info", "error", "subheader", "title"):
        out += texts(getattr(at, kind))
    return out


def test_the_page_before_a_guess_is_the_same_whatever_the_coins(app_env):
    """The same model with its secret coins flipped draws the same page until a guess is made."""
    rng = np.random.default_rng(3)
    coins = rng.random(200) < 0.5
    run = _lab_run(app_env, coins)
    at = app_env.app(page=PAGE, run=run.id).run()
    assert not at.exception, [e.value for e in at.exception]
    at.button(key="FormSubmitter:lab_start-Start a game of 20 rounds").click().run()
    assert not at.exception, [e.value for e in at.exception]
    before = _everything(at)
    assert any(t.startswith("Canary #") for t in texts(at.subheader))
    assert not any("trained on" in t and ("WAS" in t or "NOT" in t) for t in before)
    assert {k: at.query_params[k] for k in at.query_params} in ({"run": [run.id]}, {"run": run.id})
    lab_dir = app_env.store.run_dir(run.id)
    save_lab_canaries(lab_dir, [f"canary text {i:04d}" for i in range(200)], np.linspace(-3.0, -2.0, 200), ~coins)
    again = app_env.app(page=PAGE, run=run.id).run()  # the same browser, its game in progress
    assert not again.exception, [e.value for e in again.exception]
    assert _everything(again) == before


def test_a_guess_reveals_the_coin_and_the_scoreboard_speaks(app_env):
    coins = np.array([True, False] * 100)
    run = _lab_run(app_env, coins)
    at = app_env.app(page=PAGE, run=run.id).run()
    at.button(key="FormSubmitter:lab_start-Start a game of 20 rounds").click().run()
    canary = int(next(t for t in texts(at.subheader) if t.startswith("Canary #")).split("#")[1])
    assert f"canary text {canary:04d}" in texts(at.code)
    at.button(key="lab_in").click().run()
    assert not at.exception, [e.value for e in at.exception]
    said = texts(at.success) + texts(at.warning)
    truth = "WAS trained on" if coins[canary] else "was NOT trained on"
    assert any(f"canary #{canary} {truth}" in s for s in said), said
    assert any("Round 2 of 20" in c for c in texts(at.caption))
    verdicts = texts(at.success) + texts(at.info) + texts(at.error)
    assert any("guarantee held" in v or "Make a few guesses" in v for v in verdicts)
    (chart,) = at.get("plotly_chart")
    bars = json.loads(chart.proto.spec)["data"][0]["y"]
    assert bars[:2] == ["your guesses: Steinke et al.", "your guesses: f-DP"]
    assert "the accountant's ε (an upper bound)" in bars and any(b.startswith("the audit's attack") for b in bars)
    assert "Your predictions, revealed" in texts(at.subheader)


def test_a_model_without_a_lab_is_not_offered_and_a_newcomer_is_told_why(app_env):
    write_run(app_env.store, app_env.owner(), TINY)
    at = app_env.app(page=PAGE).run()
    assert not at.exception
    assert any("No model here has an audit to attack yet" in t for t in texts(at.info))


def test_the_extraction_game_keeps_its_pin_until_found_or_given_up(app_env):
    coins = np.array([True, False] * 100)
    run = _lab_run(app_env, coins)
    target = ExtractionTarget(canary_id="canary-00", prefix="Dana Whitfield's PIN is ", secret="7 3 0 5",
                              insertions=10, alphabet="0123456789", length=4, separator=" ", rank=4321.0,
                              exposure=1.2, max_exposure=13.29, guesses=("1 1 1 1", "2 2 2 2"))
    save_lab_canaries(app_env.store.run_dir(run.id), [f"canary text {i:04d}" for i in range(200)],
                      np.linspace(-3.0, -2.0, 200), coins, extraction=[target])
    at = app_env.app(page=PAGE, run=run.id).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Extraction game: find a planted PIN" in texts(at.subheader)
    assert not any("7 3 0 5" in t or "7305" in t for t in _everything(at))
    at.text_input(key="lab_attempt").input("2 2 2 2")
    at.button(key="FormSubmitter:lab_try-Try").click().run()
    assert any("Tried: `2 2 2 2`" in c for c in texts(at.caption))
    assert not any("7 3 0 5" in t for t in _everything(at))
    at.button(key="FormSubmitter:lab_try-Give up and show the PIN").click().run()
    shown = " ".join(texts(at.info))
    assert "the PIN was `7 3 0 5`" in shown and "4,321" in shown

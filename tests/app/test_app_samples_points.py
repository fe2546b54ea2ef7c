"""AppTest: the Samples page's two private-decoding operating points ("readable", "private"), the ε each
text shows next to it, and a ledger that keeps exactly that."""

from __future__ import annotations

import re

import pytest

from dpcore.privacy.decoders import PRIVATE, READABLE
from dpcore.training.tokenfilter import REPLACEMENT_CHAR
from dpcore.views.samplesview import PER_TOKEN_WHY
from tests.apptest_support import app_env_for, texts, write_run

SAMPLES = "pages/screens/samples.py"
SHOWN = re.compile(r"^\*\*This text: ε = ([0-9.e+-]+)\*\*")


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    yield from app_env_for(tmp_path, monkeypatch)


def _no_crash(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _shown_epsilons(at) -> list[str]:
    return [m.group(1) for c in texts(at.caption) if (m := SHOWN.match(c))]


def test_the_readable_point_decodes_within_the_default_budget_and_shows_its_epsilon(app_env):
    owner = app_env.owner()
    run = write_run(app_env.store, owner, checkpoint=True)
    at = app_env.app(page=SAMPLES).run()
    _no_crash(at)
    options = at.selectbox(key="smp_decoder").options
    assert "readable (private decoding, ε ≤ 128 per text)" in options
    assert "private (private decoding, ε ≤ 1 per text)" in options
    at.number_input(key="smp_n").set_value(1).run()
    at.text_input(key="smp_prompt").input("he").run()
    at.selectbox(key="smp_decoder").set_value("readable").run()
    _no_crash(at)
    length = at.number_input(key="smp_tokens_readable")
    assert (length.value, length.disabled) == (READABLE.max_tokens, True)  # the point's, not the custom 80
    assert at.number_input(key="smp_temp_readable").value == READABLE.temperature
    captions = texts(at.caption)
    assert PER_TOKEN_WHY in captions
    assert any("ε = 8 per token" in c and "**ε ≤ 128 per text**" in c for c in captions)
    assert any(c.startswith("Each private text from this model: ε ≤ 128 ") for c in captions)
    assert not at.code and not app_env.store.ledger(run.id).entries  # nothing is decoded before the click
    at.button(key="smp_generate").click().run()
    _no_crash(at)
    (code,) = [c.value for c in at.code]
    assert code.startswith("he") and REPLACEMENT_CHAR not in code
    (entry,) = app_env.store.ledger(run.id).entries  # within the default budget: not refused
    assert not [e for e in texts(at.error) if e.startswith("Refused")]
    assert entry.decoder == "mix" and entry.epsilon <= READABLE.epsilon_per_text
    assert _shown_epsilons(at) == [f"{entry.epsilon:.3g}"]  # the ledger keeps exactly what the text shows
    assert any(f"{entry.tokens} token choice" in c for c in texts(at.caption))
    assert any("Budget ε = 160 (the default" in c for c in texts(at.caption))


def test_the_private_point_costs_at_most_one_per_text_and_each_text_says_so(app_env):
    owner = app_env.owner()
    run = write_run(app_env.store, owner, checkpoint=True)
    at = app_env.app(page=SAMPLES)
    at.session_state["smp_decoder"], at.session_state["smp_n"] = "private", 3
    at.run()
    _no_crash(at)
    assert any(c.startswith("Each private text from this model: ε ≤ 1 ") for c in texts(at.caption))
    at.button(key="smp_generate").click().run()
    _no_crash(at)
    codes = [c.value for c in at.code]
    assert len(codes) == 3 and all(REPLACEMENT_CHAR not in c for c in codes)
    entries = app_env.store.ledger(run.id).entries
    assert len(entries) == 3 and all(e.epsilon <= PRIVATE.epsilon_per_text for e in entries)
    assert _shown_epsilons(at) == [f"{e.epsilon:.3g}" for e in entries]
    # switching to a custom decoder gives back the free Length and Temperature widgets
    at.selectbox(key="smp_decoder").set_value("exponential").run()
    _no_crash(at)
    assert not at.number_input(key="smp_tokens").disabled and not at.code

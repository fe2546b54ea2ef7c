"""AppTest: the risk dial on the Mechanisms page, forward (a sentence per mechanism) and reverse (a table)."""

from __future__ import annotations

import pytest

from tests.apptest_support import app_env_for, texts


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    yield from app_env_for(tmp_path, monkeypatch)


def test_mechanisms_page_says_what_an_attacker_can_achieve(app_env):
    at = app_env.app(page="pages/screens/mechanisms.py").run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    dial = [m for m in texts(at.markdown) if "wrongly accuses 1 in 100 non-members catches at most" in m]
    assert dial and "**Gaussian**" in dial[0] and "**Laplace**" in dial[0]
    assert any("target TPR" in d.value.columns and "noise multiplier" in d.value.columns for d in at.dataframe)

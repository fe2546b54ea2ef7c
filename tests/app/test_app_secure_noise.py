"""AppTest: the New run form's secure-noise box reaches the URL and the launched config."""

from __future__ import annotations

import pytest

from dpcore.config import TrainConfig
from tests.apptest_support import app_env_for, executor_of

PAGE = "pages/screens/new_run.py"


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    yield from app_env_for(tmp_path, monkeypatch)


def test_secure_noise_box_goes_to_the_url_and_the_config(app_env):
    default = TrainConfig().secure_noise
    at = app_env.app(page=PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    box = at.checkbox(key="nr_secure_noise")
    assert box.value is default
    (box.uncheck() if default else box.check()).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.query_params["secure_noise"] == ("false" if default else "true")
    at.button(key="launch").click().run()
    (_, config), = executor_of(at).submitted
    assert config.secure_noise is (not default)
    linked = app_env.app(page=PAGE, secure_noise="false" if default else "true").run()
    assert linked.checkbox(key="nr_secure_noise").value is (not default)

"""Train, then audit: the pipeline the worker and the CLI run."""

from __future__ import annotations

import json

import pytest

from dpcore.audit.pipeline import train_and_audit


@pytest.mark.parametrize("unit", ["user", "sequence"])
def test_a_run_can_ask_for_an_audit_at_its_end(tiny_data, tiny_config, tmp_path, unit):
    result = train_and_audit(tiny_config.replace(audit=True, max_steps=4, unit=unit), tmp_path, data=tiny_data)
    audit = json.loads((tmp_path / "audit.json").read_text())
    assert audit["claimed_epsilon"] == pytest.approx(result.epsilon)
    assert result.audit["auc"] == audit["auc"]
    assert json.loads((tmp_path / "result.json").read_text())["audit"]["exposure_by_insertions"]
    # the one-run audit's canaries trained with the data; q was planned from N + m, whatever the coins
    from dpcore.audit.defaults import AUDIT_CANARIES
    from dpcore.privacy.accounting import sample_rate_for

    real = len(tiny_data.train)
    assert result.num_accounted_examples == real + AUDIT_CANARIES == result.num_train_examples + (
        AUDIT_CANARIES - audit["one_run"]["num_included"])
    # each audit canary is a user of its own at user level: N_users = training users + m, coins or not
    units = real if unit == "sequence" else len(tiny_data.train_users)
    assert result.sample_rate == sample_rate_for(units + AUDIT_CANARIES, tiny_config.batch_size)
    if unit == "user":
        assert result.num_accounted_users == len(tiny_data.train_users) + AUDIT_CANARIES
        assert any(name.startswith("user-") for name in audit["membership"]["attacks"])  # whole-user trials
    assert result.audit["one_run"]["m"] == AUDIT_CANARIES
    assert result.audit["empirical_epsilon"]["attack"].startswith("one-run")


def test_a_run_without_audit_plants_no_canaries(tiny_data, tiny_config, tmp_path):
    result = train_and_audit(tiny_config.replace(max_steps=2, num_samples=0), tmp_path, data=tiny_data)
    assert result.num_accounted_examples == result.num_train_examples == len(tiny_data.train)
    assert result.audit is None and not (tmp_path / "audit.json").exists()

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


def test_an_audited_run_keeps_the_attack_labs_secrets_beside_its_audit(tiny_data, tiny_config, tmp_path):
    """The lab file holds the same coins and scores the audit counted, and the extraction game's targets."""
    import stat

    import numpy as np

    from dpcore.audit.lab import HINTS, LAB_FILE, load_lab_canaries
    from dpcore.audit.one_run import count_correct

    train_and_audit(tiny_config.replace(audit=True, max_steps=3), tmp_path, data=tiny_data)
    audit = json.loads((tmp_path / "audit.json").read_text())
    lab = load_lab_canaries(tmp_path)
    assert stat.S_IMODE((tmp_path / LAB_FILE).stat().st_mode) == 0o600
    one = audit["one_run"]
    assert lab.m == one["m"] and int(lab.included.sum()) == one["num_included"]
    best = next(t for t in one["tried"] if t["guesses"] == one["guesses"])
    assert count_correct(lab.scores, lab.included, best["k_plus"], best["k_minus"]) == best["correct"]
    assert len(lab.extraction) == len(audit["exposure"]) and all(len(t.guesses) == HINTS for t in lab.extraction)
    for target, exposure in zip(lab.extraction, audit["exposure"], strict=True):
        assert (target.prefix, target.rank, target.secret) == (exposure["prefix"], exposure["rank"], exposure["secret"])
        if exposure["rank"] <= HINTS:  # the hint is the model's own ranking: the secret sits at its rank
            assert target.guesses[int(exposure["rank"]) - 1] == target.secret
    assert all(len(t) == tiny_config.seq_len for t in lab.texts) and not np.isnan(lab.scores).any()

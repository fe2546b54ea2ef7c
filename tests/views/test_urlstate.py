"""A config in the URL: round trips, presets as a base, and bad values that never break the page."""

from __future__ import annotations

import pytest

from dpcore.config import TrainConfig
from dpcore.views.presets import PRESETS, get_preset
from dpcore.views.urlstate import (
    config_to_params,
    corpus_ref_is_valid,
    field_problem,
    format_value,
    params_to_config,
    upload_id_of,
    upload_ref,
)


def test_default_config_is_an_empty_query():
    assert config_to_params(TrainConfig()) == {}
    parsed = params_to_config({})
    assert parsed.config == TrainConfig() and parsed.messages == [] and parsed.preset is None


@pytest.mark.parametrize("config", [
    TrainConfig(mechanism="laplace", accountant="pld", epsilon=0.5, clip=0.1, lr=0.003, seed=7, engine="opacus"),
    TrainConfig(mechanism="none", epochs=2.5, max_steps=None, batch_size=64, tokenizer="word"),
    TrainConfig(delta=1e-7, sample_prompt="my number is ", sample_temperature=1.3, engine="fast"),
    TrainConfig(corpus="upload:0123456789abcdef", text_column="body", user_column="author"),
])
def test_round_trip(config):
    params = config_to_params(config)
    assert all(isinstance(v, str) for v in params.values())
    parsed = params_to_config(params)
    assert parsed.messages == [] and parsed.config == config


def test_preset_is_the_base_and_only_changes_are_listed():
    config = get_preset("workshop-eps3").config.replace(epsilon=5.0)
    params = config_to_params(config, "workshop-eps3")
    assert params == {"preset": "workshop-eps3", "epsilon": "5"}
    parsed = params_to_config(params)
    assert parsed.preset == "workshop-eps3" and parsed.config == config


@pytest.mark.parametrize("preset", [p.name for p in PRESETS])
def test_every_preset_link_opens_that_preset(preset):
    parsed = params_to_config({"preset": preset})
    assert parsed.config == get_preset(preset).config and parsed.messages == []


def test_bad_values_fall_back_with_one_message_each():
    parsed = params_to_config({"preset": "workshop-eps1", "epsilon": "lots", "batch_size": "-3",
                               "mechanism": "magic", "seed": "1.5", "lr": "nan", "colour": "red"})
    assert parsed.config == get_preset("workshop-eps1").config
    text = " ".join(parsed.messages)
    assert len(parsed.messages) == 6
    for key in ("epsilon='lots'", "batch_size='-3'", "mechanism='magic'", "seed='1.5'", "lr='nan'", "'colour'"):
        assert key in text


def test_unknown_preset_is_reported_and_defaults_used():
    parsed = params_to_config({"preset": "nope", "epsilon": "2"})
    assert parsed.preset is None and parsed.config == TrainConfig(epsilon=2.0)
    assert "no preset named 'nope'" in parsed.messages[0]


def test_corpus_must_be_builtin_or_an_upload_id_never_a_path():
    parsed = params_to_config({"corpus": "/etc/passwd"})
    assert parsed.config.corpus == "builtin"
    assert "built-in corpus or one of your uploads" in parsed.messages[0]
    assert corpus_ref_is_valid("upload:abcdef0123456789") and not corpus_ref_is_valid("upload:../x")
    assert upload_id_of(upload_ref("abcdef0123456789")) == "abcdef0123456789"
    assert upload_id_of("builtin") is None


def test_laplace_link_is_repaired_to_pld_and_opacus():
    parsed = params_to_config({"mechanism": "laplace", "accountant": "rdp", "engine": "fast"})
    assert parsed.config.accountant == "pld" and parsed.config.engine == "opacus"
    assert len(parsed.messages) == 2
    quiet = params_to_config({"mechanism": "laplace"})
    assert quiet.config.accountant == "pld" and quiet.messages == []


def test_epochs_replace_steps_and_both_at_once_are_refused():
    assert params_to_config({"epochs": "3"}).config.max_steps is None
    parsed = params_to_config({"epochs": "3", "max_steps": "10"})
    assert parsed.config.max_steps == TrainConfig().max_steps and parsed.config.epochs is None
    assert "either epochs or steps" in parsed.messages[0]


def test_none_words_clear_optional_fields_and_repeated_params_take_the_last():
    parsed = params_to_config({"delta": "none", "epsilon": ["1", "2"]})
    assert parsed.config.delta is None and parsed.config.epsilon == 2.0


def test_field_problem_names_the_field_only():
    assert field_problem("epsilon", 3.0) is None
    assert "ε (epsilon) must be a positive number" in field_problem("epsilon", -1.0)
    assert field_problem("mechanism", "laplace") is None  # not a complaint about the accountant
    assert field_problem("epochs", 2.0) is None  # not "give exactly one of epochs or max steps"


def test_format_value():
    assert [format_value(v) for v in (None, 3.0, 0.5, 1e-7, 12, "x", True)] == [
        "none", "3", "0.5", "1e-07", "12", "x", "true"]

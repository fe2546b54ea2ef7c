"""A config in the URL: round trips, presets as a base, and bad values that never break the page."""

from __future__ import annotations

import pytest

from dpcore.config import TrainConfig
from dpcore.config.presets import PRESETS, get_preset
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
    TrainConfig(mechanism="none", epochs=2.5, max_steps=None, batch_size=64, tokenizer="word", engine="opacus"),
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
    assert parsed.messages == [
        "The Laplace mechanism is accounted with PLD only (Opacus's RDP and PRV accountants are Gaussian-only), "
        "so the accountant was set to pld.",
        "The Laplace mechanism needs per-example gradients (the Opacus engine), so the engine was set to opacus.",
    ]
    quiet = params_to_config({"mechanism": "laplace"})
    assert quiet.config.accountant == "pld" and quiet.messages == []


def test_only_gaussian_has_a_choice_of_engine():
    assert params_to_config({"mechanism": "none"}).config.engine == "opacus"  # the form's rule, from the config
    parsed = params_to_config({"mechanism": "naive", "engine": "fast"})
    assert parsed.config.engine == "opacus"
    assert parsed.messages == ["Only Gaussian DP-SGD has a choice of engine, so the engine was set to opacus."]


@pytest.mark.parametrize("key,text,shown", [
    ("lr", "50", "learning rate must be a number from 1e-06 to 10, got 50.0"),
    ("batch_size", "1000000", "batch size must be a whole number from 1 to 100000, got 1000000"),
    ("clip", "1e300", "clipping norm must be a number from 0.0001 to 10000, got 1e+300"),
    ("epsilon", "1e-300", "ε (epsilon) must be a number from 0.001 to 1000, got 1e-300"),
    ("seed", "2147483648", "seed must be a whole number from 0 to 2147483647, got 2147483648"),
    ("noise_multiplier", "1e308", "noise multiplier must be a number from 0.1 to 1000, got 1e+308"),
    ("seed", "1e23", "not a whole number"),
])
def test_out_of_range_values_are_reported_by_name_with_the_range(key, text, shown):
    parsed = params_to_config({"preset": "workshop-eps3", key: text})
    assert parsed.config == get_preset("workshop-eps3").config
    (message,) = parsed.messages
    assert message.startswith(f"The link's value {key}={text!r} was ignored ({shown}); using ")


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
    assert field_problem("epsilon", -1.0) == "ε (epsilon) must be a number from 0.001 to 1000, got -1.0"
    assert field_problem("mechanism", "laplace") is None  # not a complaint about the accountant
    assert field_problem("epochs", 2.0) is None  # not "give exactly one of epochs or max steps"


def test_format_value():
    assert [format_value(v) for v in (None, 3.0, 0.5, 1e-7, 12, "x", True)] == [
        "none", "3", "0.5", "1e-07", "12", "x", "true"]

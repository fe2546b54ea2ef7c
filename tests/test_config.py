"""TrainConfig is the one definition of a run: metadata on every field, and everything generated from it."""

from __future__ import annotations

import argparse
import dataclasses
import math

import pytest

from dpcore.cli.args import Parser, add_train_arguments, config_from_args
from dpcore.config import (
    MECHANISM_RULES,
    FieldSpec,
    TrainConfig,
    allowed_choices,
    config_field,
    field_problem,
    field_specs,
    form_range,
    parse_field,
)
from dpcore.errors import ConfigError, DPCoreError
from dpcore.views.urlstate import config_to_params, params_to_config

EXTREMES = (1e300, -1e300, 1e-300, 1e308, 1e23, -1.0, 0.0)
NUMBERS = [name for name, spec in field_specs().items() if spec.kind in ("int", "float")]


def _parser(cls: type = TrainConfig) -> argparse.ArgumentParser:
    parser = Parser(prog="test")
    add_train_arguments(parser, cls)
    return parser


def _is_sentence(text: str) -> bool:
    return bool(text) and "\n" not in text and text == text.strip() and not text[0].isupper()


# ------------------------------------------------------------------------------ metadata
def test_every_field_has_metadata():
    specs = field_specs()
    assert list(specs) == [f.name for f in dataclasses.fields(TrainConfig)]
    for name, spec in specs.items():
        assert isinstance(spec, FieldSpec) and spec.help and spec.label, name
        if spec.kind in ("int", "float"):
            assert spec.lo is not None and spec.hi is not None and math.isfinite(spec.hi), name
        if spec.kind == "choice":
            assert getattr(TrainConfig(), name) in spec.choices, name


def test_a_field_without_metadata_is_an_error():
    bare = dataclasses.make_dataclass("Bare", [("x", int, dataclasses.field(default=1))], bases=(TrainConfig,),
                                      frozen=True)
    with pytest.raises(TypeError, match="'x' has no FieldSpec"):
        field_specs(bare)


def test_defaults_and_stored_json_still_load():
    stored = TrainConfig(mechanism="laplace", accountant="pld", engine="fast", epsilon=3.0).to_dict()
    assert TrainConfig.from_dict(stored).engine == "fast"  # a run stored before the engine rule still loads
    with pytest.raises(ConfigError, match="unknown configuration field"):
        TrainConfig.from_dict({**stored, "colour": "red"})


# ------------------------------------------------------------------------------ validation
@pytest.mark.parametrize("name", NUMBERS)
@pytest.mark.parametrize("value", EXTREMES)
def test_extreme_values_are_refused_with_a_sentence(name, value):
    spec = field_specs()[name]
    harmless = spec.kind == "float" and spec.lo == 0 and not spec.lo_open and 0 <= value < 1e-100
    if harmless:  # dropout 1e-300 / 0: a valid dropout, nothing downstream divides by it
        TrainConfig().replace(**{name: value}).validate()
        return
    with pytest.raises(ConfigError) as err:  # refused as it is built
        TrainConfig().replace(**{name: value}).validate()
    message = str(err.value)
    assert _is_sentence(message) and spec.label in message, message
    assert spec.range_text() in message or "whole number" in message


@pytest.mark.parametrize("name", NUMBERS)
@pytest.mark.parametrize("text", ["1e300", "1e-300", "1e308", "1e23", "inf", "nan", "-1e300"])
def test_extreme_text_is_refused_by_the_parser(name, text):
    spec = field_specs()[name]
    try:
        value = parse_field(name, text)
    except ConfigError as err:
        assert _is_sentence(str(err))
        return
    assert spec.kind == "float" and spec.lo == 0 and 0 <= value < 1e-100  # only a harmless tiny dropout


def test_messages_keep_their_style():
    with pytest.raises(ConfigError, match=r"^batch size must be a whole number from 1 to 100000, got 0$"):
        TrainConfig(batch_size=0).validate()
    with pytest.raises(ConfigError, match=r"^seed must be a whole number from 0 to 2147483647, got 2147483648$"):
        TrainConfig(seed=2**31).validate()
    assert field_problem("dropout", 1.0) == "dropout must be a number from 0 to below 1, got 1.0"
    assert field_problem("batch_size", True) is not None  # a bool is not a number
    assert field_problem("epsilon", None) is None and field_problem("clip", None) is not None


def test_cross_field_rules_are_written_once():
    laplace, repairs = TrainConfig.repaired({"mechanism": "laplace"})
    assert (laplace.accountant, laplace.engine) == ("pld", "opacus")
    assert [r.field for r in repairs] == ["accountant", "engine"]
    with pytest.raises(ConfigError, match="PLD"):
        TrainConfig(mechanism="laplace").validate()  # building refuses; repaired() repairs
    laplace.validate()
    assert TrainConfig(mechanism="none").normalized().engine == "opacus"
    assert TrainConfig.repaired({"epochs": 2.0}, given={"epochs"})[0].max_steps is None
    assert TrainConfig.repaired({"epochs": 2.0}, given={"max_steps"})[0].epochs is None
    assert TrainConfig.repair_values({"epochs": 2.0})[0] == TrainConfig().changed(epochs=2.0)  # no side given
    with pytest.raises(ConfigError, match="exactly one of epochs or max steps"):  # ... so building refuses
        TrainConfig.repaired({"epochs": 2.0})
    assert allowed_choices("accountant", "laplace") == ("pld",)
    assert allowed_choices("engine", "gaussian") == ("fast", "opacus")
    assert {rule.field for rule in MECHANISM_RULES} == {"accountant", "engine"}


def test_form_ranges_are_the_validation_ranges():
    assert form_range("batch_size") == (1, 100_000) and form_range("seed") == (0, 2**31 - 1)
    assert form_range("lr") == (1e-6, 10.0) and isinstance(form_range("clip")[0], float)
    for name in NUMBERS:
        lo, hi = form_range(name)
        assert field_problem(name, lo) is None and field_problem(name, hi) is None, name


# ------------------------------------------------------------------------------ a new field, everywhere
def _with_extra_field() -> type:
    return dataclasses.make_dataclass(
        "ExtraConfig",
        [("warmup_steps", int, config_field(0, kind="int", label="warm-up steps", group="training", lo=0, hi=1000,
                                            help="steps before the learning rate is reached"))],
        bases=(TrainConfig,), frozen=True,
    )


def test_a_new_field_reaches_the_cli_the_url_and_validation():
    extra = _with_extra_field()
    args = _parser(extra).parse_args(["--warmup-steps", "25", "--epsilon", "3"])
    config = config_from_args(args, extra)
    assert type(config) is extra and config.warmup_steps == 25 and config.epsilon == 3.0
    assert "--warmup-steps" in _parser(extra).format_help()
    with pytest.raises(DPCoreError, match="warm-up steps must be a whole number from 0 to 1000"):
        _parser(extra).parse_args(["--warmup-steps", "5000"])

    params = config_to_params(config)
    assert params == {"epsilon": "3", "warmup_steps": "25"}
    parsed = params_to_config(params, extra)
    assert parsed.messages == [] and parsed.config == config
    bad = params_to_config({"warmup_steps": "-1"}, extra)
    assert bad.config.warmup_steps == 0 and "warm-up steps must be a whole number from 0 to 1000" in bad.messages[0]
    assert params_to_config({"preset": "workshop-eps3", "warmup_steps": "7"}, extra).config.warmup_steps == 7
    with pytest.raises(ConfigError, match="warm-up steps"):
        config.replace(warmup_steps=-3).validate()


def test_a_field_kept_off_the_cli_and_the_url():
    hidden = dataclasses.make_dataclass(
        "HiddenConfig",
        [("secret_knob", float, config_field(1.0, kind="float", label="knob", group="training", lo=0.5, hi=2.0,
                                             help="not for links", cli=False, url=False))],
        bases=(TrainConfig,), frozen=True,
    )
    assert "--secret-knob" not in _parser(hidden).format_help()
    assert "secret_knob" not in config_to_params(hidden(secret_knob=2.0))
    assert "not a setting" in params_to_config({"secret_knob": "2"}, hidden).messages[0]


# ------------------------------------------------------------------------------ the old command line
OLD_FLAGS = [
    ["--corpus", "notes.csv", "--text-column", "body", "--user-column", "author"],
    ["--tokenizer", "word"], ["--seq-len", "16"],
    ["--mechanism", "naive"], ["--epsilon", "8"], ["--delta", "1e-6"], ["--clip", "0.5"],
    ["--noise-multiplier", "1.2"], ["--accountant", "prv"], ["--engine", "opacus"],
    ["--epochs", "2.5"], ["--max-steps", "300"], ["--batch-size", "64"], ["--lr", "0.003"],
    ["--optimizer", "sgd"], ["--embed-dim", "8"], ["--hidden-size", "16"], ["--num-layers", "2"],
    ["--seed", "7"], ["--device", "cpu"], ["--eval-every", "10"], ["--num-samples", "0"],
    ["--sample-prompt", "my "], ["--audit"],
]


@pytest.mark.parametrize("argv", OLD_FLAGS, ids=lambda a: a[0])
def test_every_old_flag_still_parses(argv):
    config = config_from_args(_parser().parse_args(argv))
    dest = argv[0].removeprefix("--").replace("-", "_")
    assert getattr(config, dest) != getattr(TrainConfig(), dest) or dest == "epsilon"


def test_new_flags_and_the_rules_on_the_command_line():
    config = config_from_args(_parser().parse_args(
        ["--dropout", "0.2", "--max-vocab", "500", "--val-fraction", "0.2", "--sample-tokens", "40",
         "--sample-temperature", "1.5", "--naive-sensitivity", "2"]))
    assert (config.dropout, config.max_vocab, config.val_fraction) == (0.2, 500, 0.2)
    assert (config.sample_tokens, config.sample_temperature, config.naive_sensitivity) == (40, 1.5, 2.0)
    laplace = config_from_args(_parser().parse_args(["--mechanism", "laplace"]))
    assert (laplace.accountant, laplace.engine) == ("pld", "opacus")
    assert config_from_args(_parser().parse_args(["--epochs", "3"])).max_steps is None
    with pytest.raises(DPCoreError, match="argument --accountant: the Laplace mechanism is accounted with PLD"):
        config_from_args(_parser().parse_args(["--mechanism", "laplace", "--accountant", "rdp"]))
    with pytest.raises(DPCoreError, match="not allowed with argument"):
        _parser().parse_args(["--epochs", "3", "--max-steps", "3"])

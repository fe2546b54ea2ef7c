"""Command-line arguments shared by every ``python -m dpcore`` command (one place, no cycles).

``add_train_arguments`` / ``config_from_args`` are the training options of ``train`` and
``runs submit``, generated from :class:`~dpcore.config.TrainConfig`'s field metadata (one flag per
field). The ``type=`` parsers turn a bad value into one line, never a traceback.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from dpcore.config import FieldSpec, TrainConfig, cli_flag, field_default, field_specs, parse_field
from dpcore.errors import ConfigError, DPCoreError
from dpcore.runs.executors.registry import ENV_EXECUTOR, EXECUTOR_KINDS
from dpcore.runs.sweeps import parse_epsilons


class ArgumentError(DPCoreError):
    """A malformed command line."""


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so errors stay one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ArgumentError(message)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def unit_float(text: str) -> float:
    value = positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, got {text}")
    return value


def positive_int(text: str) -> int:
    value = nonneg_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


#: The namespace attribute naming the config fields given on the command line (not defaulted).
GIVEN = "_config_flags_given"


class _ConfigOption(argparse.Action):
    """Stores a config field's parsed value and remembers that the flag was given."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[override]
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        setattr(namespace, GIVEN, {*getattr(namespace, GIVEN, ()), self.dest})


def _field_type(name: str, cls: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return parse_field(name, text, cls)
        except ConfigError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return parse


def add_train_arguments(parser: argparse.ArgumentParser, cls: type = TrainConfig) -> None:
    """The training options, shared by ``train`` and ``runs submit``: one flag per config field.

    Generated from the fields' :class:`~dpcore.config.FieldSpec` metadata (flag, type, range,
    default, help, group); fields of one ``exclusive`` group (epochs, max steps) exclude each other.
    """
    specs = field_specs(cls)
    groups: dict[str, Any] = {}
    exclusive: dict[str, Any] = {}
    for f in fields(cls):
        spec = specs[f.name]
        if not spec.cli:
            continue
        if spec.group not in groups:
            groups[spec.group] = parser.add_argument_group(spec.group)
        group = groups[spec.group]
        if spec.exclusive:
            if spec.exclusive not in exclusive:
                exclusive[spec.exclusive] = group.add_mutually_exclusive_group()
            group = exclusive[spec.exclusive]
        default = field_default(f)
        flag = cli_flag(f.name, spec)
        kwargs: dict[str, Any] = {"dest": f.name, "default": default, "action": _ConfigOption}
        if spec.kind == "bool":
            if default:
                flag = "--no-" + flag.removeprefix("--")
            kwargs.update(nargs=0, const=not default, help=spec.help.replace("%", "%%"))
        else:
            shown = "none" if default is None else repr(default) if spec.kind == "str" else default
            kwargs["help"] = f"{spec.help} (default: {shown})".replace("%", "%%")
            if spec.kind == "choice":
                kwargs["choices"] = spec.choices
            else:
                kwargs.update(type=_field_type(f.name, cls), metavar=_metavar(spec))
        group.add_argument(flag, **kwargs)


def _metavar(spec: FieldSpec) -> str:
    if spec.kind == "str":
        return "TEXT"
    return f"{'N' if spec.kind == 'int' else 'X'}{'|none' if spec.optional else ''}"


def config_from_args(args: argparse.Namespace, cls: type = TrainConfig) -> TrainConfig:
    """A validated config from parsed ``add_train_arguments`` options.

    Flags not given keep the config's defaults and are repaired by the config's own cross-field
    rules (``--mechanism laplace`` gets the PLD accountant; ``--epochs`` drops the default max
    steps); a given flag that a rule would change is refused with the rule's reason.
    """
    given = set(getattr(args, GIVEN, ()))
    specs = field_specs(cls)
    values = {name: getattr(args, name) for name, spec in specs.items() if spec.cli and hasattr(args, name)}
    values, repairs = cls.repair_values(values, given=given)
    for repair in repairs:
        if repair.field in given:
            flag = cli_flag(repair.field, specs[repair.field])
            raise ArgumentError(f"argument {flag}: {repair.reason}: use {flag} {repair.value} or leave it out")
    return cls(**values)  # validated as it is built


def mix_weight(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (0.0 <= value < 1.0):
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def unit_or_one(text: str) -> float:
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def epsilon_list(text: str) -> list[float]:
    """``0.5,1,2,4,8`` -> the sweep's distinct ε values (:func:`dpcore.runs.sweeps.parse_epsilons`)."""
    try:
        return parse_epsilons(text)
    except DPCoreError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_executor_argument(parser: argparse.ArgumentParser) -> None:
    """``--executor local|ray``: where runs train (default ``$DPCORE_EXECUTOR``, else local)."""
    parser.add_argument(
        "--executor", choices=EXECUTOR_KINDS, default=None,
        help=f"where runs train: local processes, or a Ray cluster ($RAY_ADDRESS, else one started with "
             f"`ray start --head` here) (default: ${ENV_EXECUTOR}, else local)",
    )

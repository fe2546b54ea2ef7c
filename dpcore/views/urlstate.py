"""A :class:`~dpcore.config.TrainConfig` in a URL query string, and back.

Why: a teacher hands out a link and every laptop opens the same form; an experimenter bookmarks
a setup. The query uses the config's own field names (``?mechanism=gaussian&epsilon=3``) and
lists only the fields that differ from a base, which is ``TrainConfig()`` or the preset named by
``?preset=<name>``, so links stay short and readable.

Links are typed by hand and edited, so parsing never fails: a value that is not valid for its
field is dropped with one sentence saying so, and the field keeps the base's value. Only
cross-field rules that the form itself enforces are repaired (Laplace needs the PLD accountant
and the Opacus engine; epochs and max steps exclude each other).

The corpus is ``builtin`` or ``upload:<id>`` -- an upload id, never a server path, because a path
would reveal where files live and would let a link point at files the visitor does not own. The
dashboard resolves upload ids against the visitor's own uploads.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from dpcore.config import TrainConfig
from dpcore.errors import ConfigError
from dpcore.views.presets import get_preset

PRESET_PARAM = "preset"
UPLOAD_PREFIX = "upload:"
_UPLOAD_RE = re.compile(r"^upload:[0-9a-f]{8,64}$")
_NONE_WORDS = ("", "none", "null", "default")
#: Parameters that belong to the app's pages, not to the config (kept out of warnings).
RESERVED = frozenset({PRESET_PARAM, "run", "runs"})

_FIELDS = {f.name: f for f in fields(TrainConfig)}
_OPTIONAL = {"text_column", "user_column", "epsilon", "delta", "noise_multiplier", "epochs", "max_steps"}
_INTS = {"max_vocab", "seq_len", "max_steps", "batch_size", "embed_dim", "hidden_size", "num_layers", "seed",
         "eval_every", "num_samples", "sample_tokens"}
_BOOLS = {"audit"}
_TRUE_WORDS, _FALSE_WORDS = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")
_FLOATS = {"val_fraction", "epsilon", "delta", "clip", "noise_multiplier", "naive_sensitivity", "epochs", "lr",
           "dropout", "sample_temperature"}
#: A neutral, valid base on which one field at a time is checked (PLD accounts both mechanisms).
_PROBE = TrainConfig(accountant="pld")


@dataclass(frozen=True)
class ParsedConfig:
    """The config a query string describes, the preset it started from and what was wrong with it."""

    config: TrainConfig
    preset: str | None = None
    messages: list[str] = field(default_factory=list)


def corpus_ref_is_valid(ref: str) -> bool:
    """``builtin`` or ``upload:<hex id>``."""
    return ref == "builtin" or bool(_UPLOAD_RE.match(ref))


def upload_ref(upload_id: str) -> str:
    return f"{UPLOAD_PREFIX}{upload_id}"


def upload_id_of(ref: str) -> str | None:
    """The upload id in an ``upload:<id>`` reference, else None."""
    return ref[len(UPLOAD_PREFIX):] if _UPLOAD_RE.match(ref) else None


def format_value(value: Any) -> str:
    """One config value as it appears in a URL (``none`` for None, shortest exact float form)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if value != int(value) or abs(value) >= 1e16 else str(int(value))
    return str(value)


def config_to_params(config: TrainConfig, preset: str | None = None) -> dict[str, str]:
    """The query parameters for ``config``: the preset name plus the fields that differ from it."""
    base = _base(preset)
    params: dict[str, str] = {}
    if preset is not None:
        params[PRESET_PARAM] = preset
    for name in _FIELDS:
        value = getattr(config, name)
        if value != getattr(base, name):
            params[name] = format_value(value)
    return params


def params_to_config(params: Mapping[str, str | list[str]]) -> ParsedConfig:
    """Parse a query string into a config; never raises: bad values become messages."""
    messages: list[str] = []
    preset: str | None = None
    raw_preset = _single(params.get(PRESET_PARAM))
    if raw_preset:
        try:
            base = get_preset(raw_preset).config
            preset = raw_preset
        except ConfigError as err:
            messages.append(f"The link's preset was ignored: {err}.")
            base = TrainConfig()
    else:
        base = TrainConfig()
    changes: dict[str, Any] = {}
    for key, raw in params.items():
        if key in RESERVED:
            continue
        text = _single(raw)
        if key not in _FIELDS:
            messages.append(f"The link's parameter {key!r} is not a setting of this app and was ignored.")
            continue
        try:
            changes[key] = _parse_field(key, text)
        except ConfigError as err:
            shown = text if len(text) <= 40 else text[:37] + "..."
            messages.append(
                f"The link's value {key}={shown!r} was ignored ({err}); using {format_value(getattr(base, key))}."
            )
    config = _combine(base, changes, messages)
    return ParsedConfig(config=config, preset=preset, messages=messages)


# ---------------------------------------------------------------------------------- helpers
def _base(preset: str | None) -> TrainConfig:
    return get_preset(preset).config if preset else TrainConfig()


def _single(raw: str | list[str] | None) -> str:
    if raw is None:
        return ""
    if isinstance(raw, (list, tuple)):
        return str(raw[-1]) if raw else ""
    return str(raw)


def _parse_field(name: str, text: str) -> Any:
    """Type-convert one value and check it on its own (on a neutral, otherwise valid config)."""
    if name in _BOOLS:
        word = text.strip().lower()
        if word in _TRUE_WORDS or word in _FALSE_WORDS:
            return word in _TRUE_WORDS
        raise ConfigError("not true or false")
    if name in _INTS or name in _FLOATS or name in _OPTIONAL:
        text = text.strip()  # free text (the sample prompt) keeps its spaces
    if name in _OPTIONAL and text.lower() in _NONE_WORDS:
        return None
    if name in _INTS:
        try:
            value: Any = int(text)
        except ValueError:
            raise ConfigError("not a whole number") from None
    elif name in _FLOATS:
        try:
            value = float(text)
        except ValueError:
            raise ConfigError("not a number") from None
        if not math.isfinite(value):
            raise ConfigError("not a finite number")
    else:
        value = text
    if name == "corpus":
        if not corpus_ref_is_valid(value):
            raise ConfigError("a link can name the built-in corpus or one of your uploads only")
        return value
    problem = field_problem(name, value)
    if problem:
        raise ConfigError(problem)
    return value


def field_problem(name: str, value: Any) -> str | None:
    """Why ``value`` is not valid for the config field ``name`` on its own, or None if it is.

    Checked on a neutral config that is valid with any single change (PLD accounts both
    mechanisms), so the message is the field's own, never a cross-field complaint.
    """
    probe = _PROBE.replace(**{name: value})
    if name == "epochs":
        probe = probe.replace(max_steps=None)
    if name == "mechanism" and value == "laplace":
        probe = probe.replace(engine="opacus")
    if name == "engine" and value == "fast":
        probe = probe.replace(mechanism="gaussian")
    try:
        probe.validate()
    except ConfigError as err:
        return str(err)
    return None


def _combine(base: TrainConfig, changes: dict[str, Any], messages: list[str]) -> TrainConfig:
    """Apply parsed fields to the base, repairing the cross-field rules the form enforces."""
    if "epochs" in changes and changes["epochs"] is not None and "max_steps" not in changes:
        changes["max_steps"] = None
    if "max_steps" in changes and changes["max_steps"] is not None and "epochs" not in changes:
        changes["epochs"] = None
    config = base.replace(**changes)
    if config.mechanism == "laplace":
        if config.accountant != "pld":
            if "accountant" in changes:
                messages.append("Laplace is accounted with PLD only, so the accountant was set to PLD.")
            config = config.replace(accountant="pld")
        if config.engine != "opacus":
            if "engine" in changes:
                messages.append("Laplace needs per-example gradients, so the engine was set to Opacus.")
            config = config.replace(engine="opacus")
    if (config.epochs is None) == (config.max_steps is None):
        messages.append("A link must give either epochs or steps; the preset's training length is used.")
        config = config.replace(epochs=base.epochs, max_steps=base.max_steps)
    try:
        config.validate()
    except ConfigError as err:
        messages.append(f"The link's settings do not fit together ({err}); the defaults are used instead.")
        return base
    return config

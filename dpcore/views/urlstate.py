"""A :class:`~dpcore.config.TrainConfig` in a URL query string, and back.

Why: a teacher hands out a link and every laptop opens the same form; an experimenter bookmarks
a setup. The query uses the config's own field names (``?mechanism=gaussian&epsilon=3``) and
lists only the fields that differ from a base, which is ``TrainConfig()`` or the preset named by
``?preset=<name>``, so links stay short and readable.

Links are typed by hand and edited, so parsing never fails: a value that is not valid for its
field (not a number, or outside the field's range) is dropped with one sentence that names the
field and its allowed range, and the field keeps the base's value. Keys, types and ranges come
from the fields' :class:`~dpcore.config.FieldSpec` metadata; the cross-field rules are
:meth:`TrainConfig.consistent <dpcore.config.TrainConfig.consistent>`'s (Laplace needs the PLD
accountant and the Opacus engine; epochs and max steps exclude each other), and a link is told
when one of its own values was repaired.

The corpus is ``builtin`` or ``upload:<id>`` -- an upload id, never a server path, because a path
would reveal where files live and would let a link point at files the visitor does not own. The
dashboard resolves upload ids against the visitor's own uploads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dpcore.config import TrainConfig, field_specs, parse_field, url_key
from dpcore.config import field_problem as _config_field_problem
from dpcore.config.presets import get_preset
from dpcore.errors import ConfigError

PRESET_PARAM = "preset"
UPLOAD_PREFIX = "upload:"
_UPLOAD_RE = re.compile(r"^upload:[0-9a-f]{8,64}$")
#: Parameters that belong to the app's pages, not to the config (kept out of warnings).
RESERVED = frozenset({PRESET_PARAM, "run", "runs"})


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


def url_fields(cls: type = TrainConfig) -> dict[str, str]:
    """URL key -> field name, for the fields a link may set (from the fields' metadata)."""
    return {url_key(name, spec): name for name, spec in field_specs(cls).items() if spec.url}


def config_to_params(config: TrainConfig, preset: str | None = None, cls: type | None = None) -> dict[str, str]:
    """The query parameters for ``config``: the preset name plus the fields that differ from it."""
    cls = cls or type(config)
    base = _base(preset, cls)
    params: dict[str, str] = {}
    if preset is not None:
        params[PRESET_PARAM] = preset
    for key, name in url_fields(cls).items():
        value = getattr(config, name)
        if value != getattr(base, name):
            params[key] = format_value(value)
    return params


def params_to_config(params: Mapping[str, str | list[str]], cls: type = TrainConfig) -> ParsedConfig:
    """Parse a query string into a config; never raises: bad values become messages."""
    messages: list[str] = []
    preset: str | None = None
    raw_preset = _single(params.get(PRESET_PARAM))
    base = cls()
    if raw_preset:
        try:
            base = _base(raw_preset, cls)
            preset = raw_preset
        except ConfigError as err:
            messages.append(f"The link's preset was ignored: {err}.")
    keys = url_fields(cls)
    changes: dict[str, Any] = {}
    for key, raw in params.items():
        if key in RESERVED:
            continue
        text = _single(raw)
        name = keys.get(key)
        if name is None:
            messages.append(f"The link's parameter {key!r} is not a setting of this app and was ignored.")
            continue
        try:
            changes[name] = _parse_field(name, text, cls)
        except ConfigError as err:
            shown = text if len(text) <= 40 else text[:37] + "..."
            messages.append(
                f"The link's value {key}={shown!r} was ignored ({err}); using {format_value(getattr(base, name))}."
            )
    config = _combine(base, changes, messages)
    return ParsedConfig(config=config, preset=preset, messages=messages)


def field_problem(name: str, value: Any, cls: type = TrainConfig) -> str | None:
    """Why ``value`` is not valid for the config field ``name`` on its own, or None if it is.

    Generated from the field's metadata (:func:`dpcore.config.field_problem`), so the message
    names the field and its allowed range, never a cross-field rule.
    """
    return _config_field_problem(name, value, cls)


# ---------------------------------------------------------------------------------- helpers
def _base(preset: str | None, cls: type = TrainConfig) -> TrainConfig:
    if not preset:
        return cls()
    config = get_preset(preset).config
    return config if type(config) is cls else cls(**config.to_dict())


def _single(raw: str | list[str] | None) -> str:
    if raw is None:
        return ""
    if isinstance(raw, (list, tuple)):
        return str(raw[-1]) if raw else ""
    return str(raw)


def _parse_field(name: str, text: str, cls: type = TrainConfig) -> Any:
    """Type-convert one value and check it on its own; a link's corpus is never a server path."""
    value = parse_field(name, text, cls)
    if name == "corpus" and not corpus_ref_is_valid(value):
        raise ConfigError("a link can name the built-in corpus or one of your uploads only")
    return value


def _combine(base: TrainConfig, changes: dict[str, Any], messages: list[str]) -> TrainConfig:
    """Apply parsed fields to the base, repairing the cross-field rules (TrainConfig.repair_values)."""
    values, repairs = type(base).repair_values({**base.to_dict(), **changes}, given=changes)
    specs = field_specs(type(base))
    for repair in repairs:
        if repair.field in changes:
            reason = repair.reason[0].upper() + repair.reason[1:]
            messages.append(f"{reason}, so the {specs[repair.field].label} was set to {format_value(repair.value)}.")
    if (values["epochs"] is None) == (values["max_steps"] is None):
        messages.append("A link must give either epochs or steps; the preset's training length is used.")
        values.update(epochs=base.epochs, max_steps=base.max_steps)
    try:
        return type(base)(**values)  # validated as it is built
    except ConfigError as err:
        messages.append(f"The link's settings do not fit together ({err}); the defaults are used instead.")
        return base

"""Typed records that round-trip through JSON exactly, today's files and older ones alike.

A :class:`JsonRecord` is a frozen dataclass whose fields are the keys of one JSON object (a run's
``result.json``, its stored RunInfo). :meth:`JsonRecord.from_dict` reads any version of that object:
a key an older file lacks becomes None and is remembered as missing (and written back only once it is
given a value, ``dataclasses.replace``), a key this version does not know is kept in ``extra``;
:meth:`JsonRecord.to_dict` writes back exactly what was read (same keys, same values), and for a record
built in code, every field (those in ``OMIT_WHEN_NONE`` only when set).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import field, fields
from typing import Any, ClassVar, TypeVar

R = TypeVar("R", bound="JsonRecord")

#: The bookkeeping fields every record has; never keys of its JSON object.
_OWN = ("extra", "missing")


def extra_field() -> Any:
    """Keys of the JSON object that this version does not know (kept, so nothing is lost on a round trip)."""
    return field(default_factory=dict, compare=True)


def missing_field() -> Any:
    """Fields the JSON object did not have (an older file): read as None, not written back until given a value."""
    return field(default=frozenset(), compare=False, repr=False)


class JsonRecord:
    """Mixin for a frozen dataclass with ``extra`` (:func:`extra_field`) and ``missing`` (:func:`missing_field`)."""

    #: Optional keys that today's writer leaves out unless they have a value.
    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ()

    extra: Mapping[str, Any]
    missing: frozenset[str]

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The JSON keys this version knows, in the order they are written."""
        return tuple(f.name for f in fields(cls) if f.name not in _OWN)  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any] | None) -> R:
        """A record from any version of its JSON object (None or {} gives an empty record)."""
        data = dict(data or {})
        known = cls.keys()
        values: dict[str, Any] = {}
        for name in known:
            values[name] = data.get(name)
        missing = frozenset(n for n in known if n not in data and n not in cls.OMIT_WHEN_NONE)
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**values, extra=extra, missing=missing)  # type: ignore[call-arg]

    @classmethod
    def empty(cls: type[R]) -> R:
        """The record of an empty object: every field None (a run that has not reported yet)."""
        return cls.from_dict({})

    def has(self, name: str) -> bool:
        """Whether the JSON object had the field ``name`` (an older file may lack it; an empty record has none)."""
        return name not in self.missing or getattr(self, name) is not None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: exactly the keys and values it was read from, or every field when built in code."""
        out: dict[str, Any] = {}
        for name in self.keys():
            value = getattr(self, name)
            if name in self.missing and value is None:  # an older file's absent key stays absent
                continue
            if value is None and name in self.OMIT_WHEN_NONE:
                continue
            out[name] = copy.deepcopy(value)
        out.update(copy.deepcopy(dict(self.extra)))
        return out

"""Which engine trains a run: each registered mechanism's table from engine choice to an engine class.

A registry rather than a factory inside :mod:`dpcore.training.engines.base`, so that the base class never
imports its own subclasses (they import it). Classes are named, not imported, in the table and
loaded on first use: Opacus (about a second of start-up) is imported only by the runs that train
on it, not by every fast-engine or baseline worker.
"""

from __future__ import annotations

import importlib

from dpcore.privacy.registry import mechanism_of
from dpcore.training.engines.base import Engine, EngineSetup


def engine_class(mechanism: str, engine: str) -> type[Engine]:
    """The class that trains ``mechanism`` with the ``engine`` choice ("fast" or "opacus").

    Each mechanism names its engines (``Mechanism.engines`` in :mod:`dpcore.privacy.registry`); an
    unknown mechanism raises :class:`~dpcore.errors.ConfigError` (a ``ValueError``).
    """
    module, name = mechanism_of(mechanism).engine_target(engine).split(":")
    return getattr(importlib.import_module(module), name)


def build_engine(mechanism: str, engine: str, setup: EngineSetup) -> Engine:
    """The engine for a registered mechanism and engine choice."""
    return engine_class(mechanism, engine)(setup)

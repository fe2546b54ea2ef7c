"""Which engine trains a run: one table from (mechanism, engine choice) to an engine class.

A registry rather than a factory inside :mod:`dpcore.engines.base`, so that the base class never
imports its own subclasses (they import it). Classes are named, not imported, in the table and
loaded on first use: Opacus (about a second of start-up) is imported only by the runs that train
on it, not by every fast-engine or baseline worker.
"""

from __future__ import annotations

import importlib

from dpcore.engines.base import Engine, EngineSetup

#: (mechanism, engine choice) -> "module:Class"; ``None`` matches any engine choice (it has only one).
ENGINES: dict[tuple[str, str | None], str] = {
    ("gaussian", "fast"): "dpcore.engines.fast_gaussian:FastGaussianEngine",
    ("gaussian", "opacus"): "dpcore.engines.opacus_gaussian:OpacusGaussianEngine",
    ("laplace", None): "dpcore.engines.opacus_laplace:OpacusLaplaceEngine",
    ("none", None): "dpcore.engines.nonprivate:NonPrivateEngine",
    ("naive", None): "dpcore.engines.nonprivate:NaiveNoiseEngine",
}


def engine_class(mechanism: str, engine: str) -> type[Engine]:
    """The class that trains ``mechanism`` with the ``engine`` choice ("fast" or "opacus")."""
    target = ENGINES.get((mechanism, engine)) or ENGINES.get((mechanism, None))
    if target is None:
        raise ValueError(f"unknown mechanism {mechanism!r}")
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def build_engine(mechanism: str, engine: str, setup: EngineSetup) -> Engine:
    """The engine for a mechanism ("gaussian", "laplace", "naive", "none") and engine choice."""
    return engine_class(mechanism, engine)(setup)

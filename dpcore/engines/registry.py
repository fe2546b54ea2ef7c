"""Which engine trains a run: one table from (mechanism, engine choice) to an engine class.

A registry rather than a factory inside :mod:`dpcore.engines.base`, so that the base class never
imports its own subclasses (they import it).
"""

from __future__ import annotations

from dpcore.engines.base import Engine, EngineSetup
from dpcore.engines.fast_gaussian import FastGaussianEngine
from dpcore.engines.nonprivate import NaiveNoiseEngine, NonPrivateEngine
from dpcore.engines.opacus_gaussian import OpacusGaussianEngine
from dpcore.engines.opacus_laplace import OpacusLaplaceEngine

#: (mechanism, engine choice) -> class; ``None`` matches any engine choice (it has only one).
ENGINES: dict[tuple[str, str | None], type[Engine]] = {
    ("gaussian", "fast"): FastGaussianEngine,
    ("gaussian", "opacus"): OpacusGaussianEngine,
    ("laplace", None): OpacusLaplaceEngine,
    ("none", None): NonPrivateEngine,
    ("naive", None): NaiveNoiseEngine,
}


def engine_class(mechanism: str, engine: str) -> type[Engine]:
    """The class that trains ``mechanism`` with the ``engine`` choice ("fast" or "opacus")."""
    cls = ENGINES.get((mechanism, engine)) or ENGINES.get((mechanism, None))
    if cls is None:
        raise ValueError(f"unknown mechanism {mechanism!r}")
    return cls


def build_engine(mechanism: str, engine: str, setup: EngineSetup) -> Engine:
    """The engine for a mechanism ("gaussian", "laplace", "naive", "none") and engine choice."""
    return engine_class(mechanism, engine)(setup)

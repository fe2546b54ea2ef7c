"""The δ rules: a default far below 1/N, and a refusal of any δ that would let one unit leak outright.

Here, beneath the configuration, so that the plan and the configuration both read one rule.
"""

from __future__ import annotations

from dpcore.errors import ConfigError


def default_delta(num_examples: int) -> float:
    """δ far below 1/N for every N: min(1e-5, 1/(10·N)), i.e. at most a tenth of 1/N.

    The common 1/N^1.1 is not "far below" for the sizes uploads reach: at N = 30,000 it is 0.36/N.
    """
    if num_examples <= 1:
        raise ConfigError("need at least two training examples to define δ")
    return min(1e-5, 0.1 / num_examples)


def check_delta(delta: float, num_examples: int, units: str = "training examples") -> None:
    """Refuse δ ≥ 1/N: such a δ allows leaking one whole unit (example, or user) outright."""
    if not (0.0 < delta < 1.0):
        raise ConfigError(f"δ (delta) must be between 0 and 1 exclusive, got {delta}")
    if delta >= 1.0 / num_examples:
        one = "one user's data" if units == "users" else "one example"
        raise ConfigError(
            f"δ = {delta:g} is not below 1/N = {1.0 / num_examples:.3g} (N = {num_examples} "
            f"{units}): the guarantee would allow publishing {one} outright; "
            f"use δ ≤ {default_delta(num_examples):.3g}"
        )

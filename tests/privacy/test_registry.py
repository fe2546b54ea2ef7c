"""A throwaway mechanism and accountant, registered once, are picked up everywhere; unknown names raise.

Before the registry, a mechanism added to the list of private ones was accounted as Laplace (the
``else`` of ``mechanism == "gaussian"``): these tests pin that it now uses its own DP event, or
raises, and that config, CLI and engines follow the registry without any other edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from dpcore.cli.main import build_parser, main
from dpcore.config import ACCOUNTANTS, MECHANISMS, PRIVATE_MECHANISMS, TrainConfig, allowed_choices, field_problem
from dpcore.errors import ConfigError
from dpcore.privacy import registry
from dpcore.privacy.accounting import EpsilonCurve, compute_epsilon, epsilon_spent
from dpcore.privacy.registry import Accountant, GaussianMechanism, Guarantee, Mechanism
from dpcore.training.engines.registry import engine_class

Q, STEPS, DELTA = 0.05, 200, 1e-5


@dataclass(frozen=True)
class DoubledGaussian(GaussianMechanism):
    """A throwaway mechanism: Gaussian noise at twice the stated multiplier (its own event, not Laplace's)."""

    def dp_event(self, noise: float) -> Any:
        return super().dp_event(2 * noise)

    def sampled_pld(self, noise: float, sample_rate: float, interval: float) -> Any:
        return super().sampled_pld(2 * noise, sample_rate, interval)


@pytest.fixture
def throwaway():
    doubled = registry.register_mechanism(DoubledGaussian(
        "doubled", "Doubled Gaussian", "Doubled", Guarantee.DP,
        engines={"opacus": "dpcore.training.engines.opacus_gaussian:OpacusGaussianEngine"},
        engine_reason="the doubled mechanism runs on Opacus", accountants=("pld",),
        accountant_why="a test mechanism", noise_symbol="σ"))
    eventless = registry.register_mechanism(Mechanism(
        "eventless", "No event", "No event", Guarantee.DP,
        engines={"opacus": "dpcore.training.engines.opacus_gaussian:OpacusGaussianEngine"}, accountants=("pld",)))
    quick = registry.register_accountant(Accountant(
        "rdp-copy", "RDP again", "RDP2", "a copy", "dpcore.privacy.accounting:RdpMath",
        tight=False, instant=True, curve_points=5))
    yield doubled, eventless, quick
    registry.unregister_mechanism("doubled")
    registry.unregister_mechanism("eventless")
    registry.unregister_accountant("rdp-copy")


def test_a_new_private_mechanism_is_accounted_by_its_own_event_never_laplaces(throwaway):
    own = compute_epsilon("doubled", 1.0, Q, STEPS, DELTA, "pld")
    assert own == pytest.approx(compute_epsilon("gaussian", 2.0, Q, STEPS, DELTA, "pld"))
    assert own != pytest.approx(compute_epsilon("laplace", 1.0, Q, STEPS, DELTA, "pld"), rel=1e-3)
    curve = EpsilonCurve("doubled", 1.0, Q, DELTA, "pld", STEPS, grid_points=2)
    assert curve.at(STEPS) == pytest.approx(own)


def test_a_mechanism_without_an_event_raises_instead_of_falling_through(throwaway):
    with pytest.raises(ConfigError, match="no DP guarantee"):
        compute_epsilon("eventless", 1.0, Q, STEPS, DELTA, "pld")
    with pytest.raises(ConfigError, match="PLD only"):  # its own accountant rule, from the registry
        compute_epsilon("doubled", 1.0, Q, STEPS, DELTA, "rdp")


def test_config_and_engines_pick_the_new_mechanism_up(throwaway):
    assert "doubled" in MECHANISMS and "doubled" in PRIVATE_MECHANISMS
    assert field_problem("mechanism", "doubled") is None and field_problem("mechanism", "nope") is not None
    config, repairs = TrainConfig.repaired({"mechanism": "doubled"})
    assert (config.accountant, config.engine) == ("pld", "opacus") and {r.field for r in repairs} == {
        "accountant", "engine"}
    assert config.validate().is_private
    with pytest.raises(ConfigError, match="PLD"):
        TrainConfig(mechanism="doubled").validate()  # refused as it is built
    assert allowed_choices("accountant", "doubled") == ("pld",)
    assert engine_class("doubled", "fast").__name__ == "OpacusGaussianEngine"  # its one engine


def test_the_cli_offers_the_new_mechanism_and_accountant(throwaway, capsys):
    calibrate = build_parser()._subparsers._group_actions[0].choices["calibrate"]  # type: ignore[union-attr]
    flags = {a.dest: a for a in calibrate._actions}
    assert "doubled" in flags["mechanism"].choices and "rdp-copy" in flags["accountant"].choices
    assert main(["epsilon", "--mechanism", "doubled", "--noise-multiplier", "1", "--sample-rate", str(Q),
                 "--steps", str(STEPS), "--delta", str(DELTA)]) == 0
    assert float(capsys.readouterr().out.split()[-1]) == pytest.approx(
        compute_epsilon("gaussian", 2.0, Q, STEPS, DELTA, "pld"), rel=1e-5)
    assert main(["epsilon", "--mechanism", "doubled", "--noise-multiplier", "1", "--sample-rate", str(Q),
                 "--steps", str(STEPS), "--delta", str(DELTA), "--accountant", "rdp"]) == 2
    assert "PLD" in capsys.readouterr().err


def test_a_new_accountant_is_a_choice_and_computes_through_its_implementation(throwaway):
    assert "rdp-copy" in ACCOUNTANTS
    assert compute_epsilon("gaussian", 1.0, Q, STEPS, DELTA, "rdp-copy") == compute_epsilon(
        "gaussian", 1.0, Q, STEPS, DELTA, "rdp")
    assert TrainConfig(accountant="rdp-copy").validate().accountant == "rdp-copy"


def test_unknown_names_raise_everywhere():
    with pytest.raises(ConfigError, match="unknown mechanism"):
        compute_epsilon("gausian", 1.0, Q, STEPS, DELTA)
    with pytest.raises(ConfigError, match="accountant must be one of"):
        epsilon_spent("gaussian", 1.0, Q, STEPS, DELTA, "gdp")
    with pytest.raises(ConfigError, match="accountant must be one of"):
        EpsilonCurve("gaussian", 1.0, Q, DELTA, "gdp", STEPS)
    with pytest.raises(ConfigError):
        TrainConfig(mechanism="gausian").validate()
    with pytest.raises(ConfigError, match="unknown mechanism"):
        engine_class("gausian", "fast")
    with pytest.raises(ConfigError, match="unknown mechanism"):
        registry.mechanism_of("gausian")
    with pytest.raises(ValueError, match="already registered"):
        registry.register_mechanism(registry.GAUSSIAN)

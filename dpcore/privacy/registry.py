"""Every privacy mechanism and every accountant, each one object registered once by name.

Why a registry (as Opacus keeps ``create_accountant``'s table and ``GradSampleModule.GRAD_SAMPLERS``):
what a mechanism is — its DP event, the accountants that can bound it, its engines, the norm it
clips in, the name of its noise — used to be ``if mechanism == "laplace"`` chains in a dozen files,
where a mechanism added to the list fell silently into Laplace's branch of the accounting. Here each
concept is an object; config choices, CLI flags, URL keys, form options and labels are derived from
these tables, and an unknown name raises :class:`~dpcore.errors.ConfigError` everywhere.

Adding a mechanism: a :class:`PrivateMechanism` (or :class:`Mechanism`) subclass here and a
:func:`register_mechanism` line, plus its engine class in ``dpcore/training/engines/``. Adding an accountant: a
class in :mod:`dpcore.privacy.accounting` and an :class:`Accountant` line here.

This module is light on purpose (``dpcore.config`` imports it): dp-accounting is imported inside the
methods that build events, and accountants name their implementation as ``"module:Class"``, loaded
on first use, as the engine registry does (numpy, scipy and Opacus cost seconds to import).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar, overload

from dpcore.errors import ConfigError

T = TypeVar("T")


class Guarantee(str, Enum):
    """What a run's numbers promise: an ε bound, nothing (the baseline), or a recipe that claims one falsely.

    A ``str`` enum, so it compares equal to the strings stored in results and the run store.
    """

    DP = "dp"
    NONE = "none"
    NO_GUARANTEE = "no-guarantee"

    def __str__(self) -> str:  # the stored word, as str() and f-strings of a str read it ("dp", not "Guarantee.DP")
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class ClipNorm(str, Enum):
    """The norm a mechanism's per-unit gradients are clipped in: its sensitivity's norm."""

    L1 = "L1"
    L2 = "L2"


# ------------------------------------------------------------------------------- mechanisms
@dataclass(frozen=True)
class Mechanism:
    """A way of turning a batch into an update, as the accountant, the engines and the pages see it.

    ``engines`` maps an engine choice (``"fast"``, ``"opacus"``) to ``"module:Class"``; a mechanism with
    one engine trains on it whatever the choice (its key is the choice a form repairs to).
    ``accountants`` lists the accountants that can bound its ε (empty: every registered one); the first
    is the one a form switches to.
    """

    name: str
    label: str  # for forms and reports: "Gaussian DP-SGD"
    short_label: str  # for legends: "Gaussian"
    guarantee: Guarantee
    engines: Mapping[str, str]
    engine_reason: str = ""  # why other engine choices do not apply (shown when one is repaired)
    accountants: tuple[str, ...] = ()
    accountant_why: str = ""  # why only ``accountants`` can bound it ("Opacus's RDP and PRV ... Gaussian-only")
    clip_norm: ClipNorm | None = None
    noise_symbol: str = ""  # "σ", "λ": the noise multiplier's letter
    noise_name: str = ""  # the noise multiplier in words, for a metric's help

    @property
    def accountant_reason(self) -> str:
        """The rule on accountants as one clause (config's repair message and the accounting's refusal)."""
        if not self.accountants:
            return ""
        why = f" ({self.accountant_why})" if self.accountant_why else ""
        return f"the {self.short_label} mechanism is accounted with {self.accountants_in_words()} only{why}"

    def accountants_in_words(self) -> str:
        """``accountants`` as a page writes them: "PLD", "RDP or PLD"."""
        return " or ".join(a.upper() for a in self.accountants)

    @property
    def private(self) -> bool:
        """Whether an accountant bounds this mechanism's ε."""
        return self.guarantee is Guarantee.DP

    def allowed_accountants(self) -> tuple[str, ...]:
        """The accountants that can bound this mechanism (none without a guarantee)."""
        if not self.private:
            return ()
        return self.accountants or accountant_names()

    def engine_target(self, engine: str) -> str:
        """``"module:Class"`` of the engine that trains this mechanism with the ``engine`` choice."""
        target = self.engines.get(engine)
        if target is None and len(self.engines) == 1:
            target = next(iter(self.engines.values()))
        if target is None:
            raise ConfigError(f"the {self.name} mechanism has no {engine!r} engine; choose one of "
                              f"{', '.join(self.engine_choices())}")
        return target

    def engine_choices(self) -> tuple[str, ...]:
        """The engine choices that mean something for this mechanism (the first is a form's repair)."""
        return tuple(self.engines)

    def dp_event(self, noise: float) -> Any:
        """dp-accounting's event of one un-sampled step with noise multiplier ``noise``."""
        raise ConfigError(f"no ε can be computed for mechanism {self.name!r}: it carries no DP guarantee")

    def sampled_pld(self, noise: float, sample_rate: float, interval: float) -> Any:
        """The privacy loss distribution of one Poisson-sampled step, as ``PLDAccountant`` builds it."""
        raise ConfigError(f"no ε can be computed for mechanism {self.name!r}: it carries no DP guarantee")

    #: Whether dp-accounting's PLD supports replace-one neighbours for this mechanism when Poisson-sampled
    #: (otherwise :func:`dpcore.privacy.accounting.epsilon_replace_one` uses group privacy).
    replace_one_pld: bool = field(default=False, repr=False)


@dataclass(frozen=True)
class GaussianMechanism(Mechanism):
    """DP-SGD with L2 clipping and Gaussian noise N(0, (σC)²) per coordinate."""

    replace_one_pld: bool = field(default=True, repr=False)

    def dp_event(self, noise: float) -> Any:
        import dp_accounting as dpa  # scipy underneath: only when an event is built

        return dpa.GaussianDpEvent(noise)

    def sampled_pld(self, noise: float, sample_rate: float, interval: float) -> Any:
        import dp_accounting as dpa  # scipy underneath: only when a PLD is built
        from dp_accounting.pld import privacy_loss_distribution as pld_lib

        return pld_lib.from_gaussian_mechanism(
            standard_deviation=noise, value_discretization_interval=interval, sampling_prob=sample_rate,
            neighboring_relation=dpa.NeighboringRelation.ADD_OR_REMOVE_ONE)


@dataclass(frozen=True)
class LaplaceMechanism(Mechanism):
    """DP-SGD with L1 clipping and Laplace(λC₁) noise per coordinate: a pure-ε mechanism."""

    def dp_event(self, noise: float) -> Any:
        import dp_accounting as dpa  # scipy underneath: only when an event is built

        return dpa.LaplaceDpEvent(noise)

    def sampled_pld(self, noise: float, sample_rate: float, interval: float) -> Any:
        from dp_accounting.pld import privacy_loss_distribution as pld_lib  # scipy: only when a PLD is built

        return pld_lib.from_laplace_mechanism(parameter=noise, value_discretization_interval=interval,
                                              sampling_prob=sample_rate)


_MECHANISMS: dict[str, Mechanism] = {}


def register_mechanism(mechanism: Mechanism, *, force: bool = False) -> Mechanism:
    """Add ``mechanism`` to the registry (``force``: replace one of the same name); returns it."""
    if mechanism.name in _MECHANISMS and not force:
        raise ValueError(f"mechanism {mechanism.name!r} is already registered")
    _MECHANISMS[mechanism.name] = mechanism
    return mechanism


def unregister_mechanism(name: str) -> None:
    """Remove a mechanism (tests that register a throwaway one)."""
    _MECHANISMS.pop(name, None)


def mechanism_of(name: str) -> Mechanism:
    """The registered mechanism called ``name``; :class:`ConfigError` for an unknown one."""
    try:
        return _MECHANISMS[str(name)]
    except KeyError:
        raise ConfigError(f"unknown mechanism {name!r}; choose one of {', '.join(_MECHANISMS)}") from None


def private_mechanism_of(name: str) -> Mechanism:
    """:func:`mechanism_of`, refusing a mechanism without a guarantee (no ε can be computed for it)."""
    mechanism = mechanism_of(name)
    if not mechanism.private:
        raise ConfigError(f"no ε can be computed for mechanism {name!r}: it carries no DP guarantee")
    return mechanism


def mechanisms() -> tuple[Mechanism, ...]:
    """Every registered mechanism, in registration order (the order forms and legends use)."""
    return tuple(_MECHANISMS.values())


def mechanism_names() -> tuple[str, ...]:
    return tuple(_MECHANISMS)


def private_mechanism_names() -> tuple[str, ...]:
    return tuple(m.name for m in _MECHANISMS.values() if m.private)


# ------------------------------------------------------------------------------- accountants
@dataclass(frozen=True)
class Accountant:
    """An accountant: what the pages say about it, and where its arithmetic lives.

    ``implementation`` is ``"module:Class"`` of an :class:`dpcore.privacy.accounting.AccountantMath`
    subclass, loaded on first use (its imports are slow). ``instant``: milliseconds at any σ, so the
    form computes it while a slider moves; the others are computed in the background. ``tight``: not
    looser than necessary (an instant, looser accountant then brackets its calibration from above).
    """

    name: str
    label: str  # "Rényi-DP (RDP) accountant"
    short_label: str  # "RDP"
    hint: str  # "fast, looser": what choosing it means, for the form
    implementation: str
    tight: bool
    instant: bool
    curve_points: int  # points on a predicted-ε chart (each costs a full evaluation unless instant)
    package: str | None = None  # the distribution whose version a stored σ depends on

    def math(self) -> Any:
        """The implementation object (one per process)."""
        found = _LOADED.get(self.implementation)
        if found is None:
            module, name = self.implementation.split(":")
            found = _LOADED[self.implementation] = getattr(importlib.import_module(module), name)()
        return found


_LOADED: dict[str, Any] = {}
_ACCOUNTANTS: dict[str, Accountant] = {}


def register_accountant(accountant: Accountant, *, force: bool = False) -> Accountant:
    """Add ``accountant`` to the registry (``force``: replace one of the same name); returns it."""
    if accountant.name in _ACCOUNTANTS and not force:
        raise ValueError(f"accountant {accountant.name!r} is already registered")
    _ACCOUNTANTS[accountant.name] = accountant
    return accountant


def unregister_accountant(name: str) -> None:
    """Remove an accountant (tests that register a throwaway one)."""
    _ACCOUNTANTS.pop(name, None)


def accountant_of(name: str) -> Accountant:
    """The registered accountant called ``name``; :class:`ConfigError` for an unknown one."""
    try:
        return _ACCOUNTANTS[str(name)]
    except KeyError:
        raise ConfigError(f"accountant must be one of {', '.join(_ACCOUNTANTS)}; got {name!r}") from None


def accountants() -> tuple[Accountant, ...]:
    return tuple(_ACCOUNTANTS.values())


def accountant_names() -> tuple[str, ...]:
    return tuple(_ACCOUNTANTS)


def accountant_for(mechanism: str, accountant: str | None = None) -> str:
    """The accountant a request for ``mechanism`` gets: ``accountant`` if it can bound it, else refused.

    ``None`` picks the first allowed one. One rule for the CLI, the form and :func:`check` below.
    """
    mech = private_mechanism_of(mechanism)
    allowed = mech.allowed_accountants()
    if accountant is None:
        return allowed[0]
    accountant_of(accountant)
    if accountant not in allowed:
        raise ConfigError(f"{mech.accountant_reason}; choose the accountant {allowed[0]}")
    return accountant


def looser_instant_accountant(mechanism: str, accountant: str) -> str | None:
    """An instant, looser accountant that bounds ``mechanism`` when ``accountant`` is a tight slow one.

    Its σ for a target ε is an upper end for the tight accountant's: calibration brackets from it and
    the form shows it at once as a bound. None when there is none (Laplace: PLD only) or no need.
    """
    mech = mechanism_of(mechanism)
    wanted = accountant_of(accountant)
    if not mech.private or not wanted.tight or wanted.instant:
        return None
    return next((a for a in mech.allowed_accountants()
                 if accountant_of(a).instant and not accountant_of(a).tight), None)


# ------------------------------------------------------------------------------- live name lists
class Live(Sequence[T]):
    """A tuple-like view of what a registry holds now, following later registrations.

    Config choices, cross-field rules and CLI flags hold one of these, so a mechanism or accountant
    registered after :mod:`dpcore.config` was imported is offered (and validated) everywhere at once.
    """

    def __init__(self, items: Callable[[], tuple[T, ...]]) -> None:
        self._items = items

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[T, ...]: ...
    def __getitem__(self, index: int | slice) -> T | tuple[T, ...]:
        return self._items()[index]

    def __len__(self) -> int:
        return len(self._items())

    def __iter__(self) -> Iterator[T]:
        return iter(self._items())

    def __contains__(self, value: object) -> bool:
        return value in self._items()

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, (tuple, list, Live)) else other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


def engine_names() -> tuple[str, ...]:
    """Every engine choice some mechanism offers ("fast", "opacus"), in registration order."""
    return tuple(dict.fromkeys(e for m in _MECHANISMS.values() for e in m.engines))


def mechanism_help() -> str:
    """The mechanism field's one-line help, from the registry."""
    return "; ".join(f"{m.name}: {m.label}" for m in _MECHANISMS.values())


def accountant_help() -> str:
    """The accountant field's one-line help: each accountant, and which mechanisms are restricted."""
    parts = ", ".join(f"{a.name} ({a.hint})" for a in _ACCOUNTANTS.values())
    limits = "; ".join(f"{m.name}: {', '.join(m.accountants)} only" for m in _MECHANISMS.values() if m.accountants)
    return f"{parts}; {limits}" if limits else parts


MECHANISMS: Live[str] = Live(mechanism_names)
PRIVATE_MECHANISMS: Live[str] = Live(private_mechanism_names)
ACCOUNTANTS: Live[str] = Live(accountant_names)
ENGINES: Live[str] = Live(engine_names)


# ------------------------------------------------------------------------------- the built-in ones
GAUSSIAN = register_mechanism(GaussianMechanism(
    "gaussian", "Gaussian DP-SGD", "Gaussian", Guarantee.DP,
    engines={"fast": "dpcore.training.engines.fast_gaussian:FastGaussianEngine",
             "opacus": "dpcore.training.engines.opacus_gaussian:OpacusGaussianEngine"},
    clip_norm=ClipNorm.L2, noise_symbol="σ",
    noise_name="The noise multiplier σ: the noise's standard deviation in units of the clipping norm C"))
LAPLACE = register_mechanism(LaplaceMechanism(
    "laplace", "Laplace DP-SGD (L1 clipping)", "Laplace", Guarantee.DP,
    engines={"opacus": "dpcore.training.engines.opacus_laplace:OpacusLaplaceEngine"},
    engine_reason="the Laplace mechanism needs per-example gradients (the Opacus engine)",
    accountants=("pld",),
    accountant_why="Opacus's RDP and PRV accountants are Gaussian-only",
    clip_norm=ClipNorm.L1, noise_symbol="λ",
    noise_name="The Laplace scale λ, in units of the L1 clipping norm C"))
NAIVE = register_mechanism(Mechanism(
    "naive", "no privacy guarantee (naive recipe)", "naive (no privacy guarantee)", Guarantee.NO_GUARANTEE,
    engines={"opacus": "dpcore.training.engines.nonprivate:NaiveNoiseEngine"},
    engine_reason="only Gaussian DP-SGD has a choice of engine"))
NONE = register_mechanism(Mechanism(
    "none", "no privacy (baseline)", "no privacy (baseline)", Guarantee.NONE,
    engines={"opacus": "dpcore.training.engines.nonprivate:NonPrivateEngine"},
    engine_reason="only Gaussian DP-SGD has a choice of engine"))

RDP = register_accountant(Accountant(
    "rdp", "Rényi-DP (RDP) accountant", "RDP", "fast, looser", "dpcore.privacy.accounting:RdpMath",
    tight=False, instant=True, curve_points=40))
PRV = register_accountant(Accountant(
    "prv", "PRV accountant", "PRV", "tight", "dpcore.privacy.accounting:PrvMath",
    tight=True, instant=False, curve_points=12, package="opacus"))
PLD = register_accountant(Accountant(
    "pld", "privacy-loss-distribution (PLD) accountant", "PLD", "tight", "dpcore.privacy.accounting:PldMath",
    tight=True, instant=False, curve_points=10, package="dp-accounting"))

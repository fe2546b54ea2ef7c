"""The one description of a training run, shared by the CLI, the worker and the dashboard.

A :class:`TrainConfig` is plain data (JSON round-trips through :meth:`to_dict` /
:meth:`from_dict`), so a run can be stored, put in a URL and reproduced.

Every field carries a :class:`FieldSpec` in its ``dataclasses`` metadata: its kind, range or
choices, whether ``None`` is allowed, a one-line help text, its command-line flag, its URL key and
its form group. Everything else is generated from that one place:

* the validation every config passes when it is built (``TrainConfig.__post_init__``: a
  :class:`ConfigError` with one lower-case sentence for the first problem found),
  :func:`field_problem` (one field on its own) and :func:`parse_field` (text to a typed value);
* the command line (:mod:`dpcore.cli.args`), the URL query string (:mod:`dpcore.views.urlstate`)
  and the New run form's ranges and option lists (:func:`form_range`, :func:`allowed_choices`).

The rules that tie fields together are written once, here: :data:`MECHANISM_RULES` (Laplace is
accounted with PLD and runs on Opacus's per-example gradients; only Gaussian DP-SGD has a choice
of engine) and the training length (exactly one of epochs and max steps).
:meth:`TrainConfig.repair_values` applies the repairs a form, a link or the command line needs to
their values before a config is built (:meth:`~TrainConfig.repaired`,
:meth:`~TrainConfig.replace_consistent`, :meth:`~TrainConfig.consistent`); building refuses what
must not be repaired silently. :func:`check_delta` checks δ against the number of training
examples once it is known.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import MISSING, Field, asdict, dataclass, field, fields, replace
from typing import Any

from dpcore.errors import ConfigError
from dpcore.privacy.registry import (
    ACCOUNTANTS,
    ENGINES,
    MECHANISMS,
    PRIVATE_MECHANISMS,
    Live,
    accountant_help,
    mechanism_help,
    mechanisms,
)

# MECHANISMS, ACCOUNTANTS, ENGINES and PRIVATE_MECHANISMS (those with an ε) are the registry's live lists
# (dpcore.privacy.registry): a mechanism or accountant registered there is a choice here at once.
DEVICES = ("auto", "cpu", "cuda", "mps")
TOKENIZERS = ("char", "word")
#: What one "person" of the guarantee is: one training sequence (example-level DP-SGD) or one user
#: with all of their sequences (user-level DP-SGD: users are sampled, each user's contribution is
#: clipped as a whole).
UNITS = ("user", "sequence")
OPTIMIZERS = ("adam", "sgd")
#: Where training starts: random weights, or the public model (pre-trained without privacy on public
#: text, see dpcore.training.pretrain).
INITS = ("scratch", "public")

KINDS = ("int", "float", "str", "bool", "choice")
GROUPS = ("data", "privacy", "training", "monitoring")
#: Words that mean None for an optional field (in a link or on the command line).
NONE_WORDS = ("", "none", "null", "default")
TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")
SPEC_KEY = "spec"  # the key of a field's FieldSpec in its dataclasses metadata


# ---------------------------------------------------------------------------------- metadata
@dataclass(frozen=True)
class FieldSpec:
    """What one config field accepts and how it is shown; the single source of every check.

    ``lo``/``hi`` bound a number (both ends are always given for numbers, so no value can reach an
    overflow or a division by zero downstream); ``lo_open``/``hi_open`` exclude that end.
    ``cli_flag`` defaults to ``--field-name`` and ``url_key`` to the field name. ``cli``/``url``
    say whether the command line / a link may set the field: every field of :class:`TrainConfig`
    is exposed (none is secret -- the noise seed of a private run is never part of the config),
    so they only exist for fields a future version must keep off one surface.
    ``exclusive`` names a group of fields of which at most one may be set (a CLI
    mutually-exclusive group).
    """

    kind: str
    label: str  # how messages name the field: "batch size", "ε (epsilon)"
    help: str
    group: str
    choices: tuple[str, ...] = ()
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    optional: bool = False
    cli_flag: str | None = None
    url_key: str | None = None
    cli: bool = True
    url: bool = True
    exclusive: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.group not in GROUPS:
            raise ValueError(f"group must be one of {GROUPS}, got {self.group!r}")
        if self.kind in ("int", "float") and (self.lo is None or self.hi is None):
            raise ValueError("a number field needs both ends of its range")
        if self.kind == "choice" and not self.choices:
            raise ValueError("a choice field needs its choices")

    def range_text(self) -> str:
        """``from 1 to 100000``, ``from 0 to below 1``, ``between 0 and 1 exclusive``."""
        lo, hi = _num(self.lo), _num(self.hi)
        if self.lo_open and self.hi_open:
            return f"between {lo} and {hi} exclusive"
        if self.lo_open:
            return f"above {lo} and at most {hi}"
        if self.hi_open:
            return f"from {lo} to below {hi}"
        return f"from {lo} to {hi}"


def config_field(default: Any, *, kind: str, label: str, help: str, group: str, **spec: Any) -> Any:
    """A dataclass field carrying its :class:`FieldSpec` (``help`` shadows the builtin on purpose)."""
    return field(default=default, metadata={SPEC_KEY: FieldSpec(kind=kind, label=label, help=help, group=group,
                                                                **spec)})


def _num(value: float | None) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


# ---------------------------------------------------------------------------------- the config
@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run. The same config and seed give the same curve on CPU."""

    # data
    corpus: str = config_field(
        "builtin", kind="str", label="corpus", group="data",
        help="'builtin' or a path to a UTF-8 .txt or .csv file ('builtin' or 'upload:<id>' in a link)")
    text_column: str | None = config_field(
        None, kind="str", label="text column", group="data", optional=True, help="CSV column holding the text")
    user_column: str | None = config_field(
        None, kind="str", label="user column", group="data", optional=True,
        help="CSV column holding a user id (optional)")
    tokenizer: str = config_field(
        "char", kind="choice", label="tokenizer", group="data", choices=TOKENIZERS,
        help="tokens: characters or words")
    max_vocab: int = config_field(
        2000, kind="int", label="max vocabulary", group="data", lo=10, hi=50_000,
        help="most tokens in a word vocabulary")
    seq_len: int = config_field(
        32, kind="int", label="sequence length", group="data", lo=4, hi=1024,
        help="tokens per training sequence (a longer record becomes several sequences)")
    val_fraction: float = config_field(
        0.1, kind="float", label="validation fraction", group="data", lo=0.01, hi=0.9, hi_open=True,
        help="share of users held out for validation")
    builtin_users: int = config_field(
        4000, kind="int", label="people in the built-in corpus", group="data", lo=20, hi=10_000,
        help="how many people wrote the built-in corpus: with more, the same ε costs less accuracy "
             "(uploads ignore it)")
    # privacy
    mechanism: str = config_field(
        "gaussian", kind="choice", label="mechanism", group="privacy", choices=MECHANISMS,
        help=mechanism_help())
    epsilon: float | None = config_field(
        8.0, kind="float", label="ε (epsilon)", group="privacy", lo=0.001, hi=1000.0, optional=True,
        help="target ε (above 1000 the guarantee says nothing)")
    delta: float | None = config_field(
        None, kind="float", label="δ (delta)", group="privacy", lo=1e-20, hi=1.0, hi_open=True, optional=True,
        help="δ; none: min(1e-5, 1/(10·N)), at most a tenth of 1/N")  # see default_delta
    unit: str = config_field(
        "user", kind="choice", label="privacy unit", group="privacy", choices=UNITS,
        help="what ε protects: a user with all of their text, or one training sequence")
    # k = 2 with B = 256 users (~512 sequences a step, the old default's compute) trained best at ε = 8 of
    # k = 1/2/4/8 at equal compute on the built-in corpus (200 steps, 4,000 people; val ppl 7.04 / 6.97 /
    # 7.55 / 9.74): more users per step shrink the shared noise, more sequences per user sharpen each one.
    user_cap: int = config_field(
        2, kind="int", label="sequences per user per step", group="privacy", lo=1, hi=256,
        help="user-level only: at most this many of a sampled user's sequences count in one step (k)")
    clip: float = config_field(
        1.0, kind="float", label="clipping norm", group="privacy", lo=1e-4, hi=1e4,
        help="clipping norm C of each privacy unit's gradient")
    noise_multiplier: float | None = config_field(
        None, kind="float", label="noise multiplier", group="privacy", lo=0.1, hi=1000.0, optional=True,
        help="use this noise multiplier instead of calibrating it to the target ε (ε is still accounted)")
    accountant: str = config_field(
        "rdp", kind="choice", label="accountant", group="privacy", choices=ACCOUNTANTS,
        help=accountant_help())
    engine: str = config_field(
        "fast", kind="choice", label="engine", group="privacy", choices=ENGINES,
        help="Gaussian DP-SGD implementation (Laplace always runs on Opacus's per-example path)")
    # On by default: its measured cost on a default step is within the 1.05x rule (README, engine bench).
    secure_noise: bool = config_field(
        True, kind="bool", label="secure noise", group="privacy",
        help="draw DP noise and sampling from the OS's CSPRNG (as Opacus's secure_mode), noise in float64 rounded "
             "once; off: a torch generator with a secret 63-bit seed")
    naive_sensitivity: float = config_field(
        1.0, kind="float", label="naive sensitivity", group="privacy", lo=1e-4, hi=1e4,
        help="the naive recipe's *assumed* sensitivity (no guarantee)")
    # training
    epochs: float | None = config_field(
        None, kind="float", label="epochs", group="training", lo=0.01, hi=1000.0, optional=True,
        exclusive="length", help="training length in epochs (instead of max steps)")
    max_steps: int | None = config_field(
        500, kind="int", label="max steps", group="training", lo=1, hi=1_000_000, optional=True,
        exclusive="length", help="training length in steps (instead of epochs)")
    batch_size: int = config_field(
        256, kind="int", label="batch size", group="training", lo=1, hi=100_000,
        help="expected privacy units (users or sequences) per step B; the sample rate is q = 1/ceil(N/B)")
    lr: float = config_field(
        0.01, kind="float", label="learning rate", group="training", lo=1e-6, hi=10.0,
        help="the optimizer's step size")
    optimizer: str = config_field(
        "adam", kind="choice", label="optimizer", group="training", choices=OPTIMIZERS, help="adam or sgd")
    embed_dim: int = config_field(
        32, kind="int", label="embedding size", group="training", lo=1, hi=4096, help="embedding size")
    hidden_size: int = config_field(
        128, kind="int", label="hidden size", group="training", lo=1, hi=4096, help="GRU hidden units")
    num_layers: int = config_field(
        1, kind="int", label="number of GRU layers", group="training", lo=1, hi=2, help="GRU layers")
    dropout: float = config_field(
        0.0, kind="float", label="dropout", group="training", lo=0.0, hi=1.0, hi_open=True,
        help="dropout probability")
    seed: int = config_field(
        0, kind="int", label="seed", group="training", lo=0, hi=2**31 - 1,
        help="fixes initialisation, the split and dropout (a private run's noise is secret)")
    device: str = config_field(
        "auto", kind="choice", label="device", group="training", choices=DEVICES,
        help="auto: a GPU if there is one, else the CPU")
    init: str = config_field(
        "scratch", kind="choice", label="starting weights", group="training", choices=INITS,
        help="scratch (random) or public: a model pre-trained without privacy on public text, at no ε "
             "(python -m dpcore pretrain; built on first use)")
    public_lr_scale: float = config_field(
        0.1, kind="float", label="learning-rate factor from the public model", group="training", lo=0.001, hi=1.0,
        help="from the public model (init public) the step size is lr × this: full-size noisy steps undo what it "
             "learned; 1 = the same lr as from scratch")
    ema: float | None = config_field(
        None, kind="float", label="weight averaging (EMA decay)", group="training", lo=0.0, hi=1.0, hi_open=True,
        optional=True,
        help="evaluate, sample and save an exponential moving average of the weights with this decay (e.g. 0.99; "
             "less during the first steps); post-processing, so it costs no ε; none: the last weights")
    # monitoring
    eval_every: int = config_field(
        50, kind="int", label="eval interval", group="monitoring", lo=1, hi=1_000_000,
        help="evaluate every this many steps")
    num_samples: int = config_field(
        3, kind="int", label="number of samples", group="monitoring", lo=0, hi=20,
        help="text samples per evaluation")
    sample_tokens: int = config_field(
        80, kind="int", label="sample length", group="monitoring", lo=1, hi=2000, help="tokens per sample")
    sample_prompt: str = config_field(
        "", kind="str", label="sample prompt", group="monitoring", help="text the samples start from")
    sample_temperature: float = config_field(
        0.8, kind="float", label="sampling temperature", group="monitoring", lo=0.01, hi=100.0,
        help="sampling temperature")
    # privacy audit (canary exposure + membership inference) once training ends
    audit: bool = config_field(
        False, kind="bool", label="audit", group="monitoring",
        help="audit the model when training ends (canary exposure, membership inference)")

    def __post_init__(self) -> None:
        """Validated once, here: a config that breaks a rule cannot exist (:meth:`validate` says why)."""
        self._check()

    # ------------------------------------------------------------------ helpers
    @property
    def is_private(self) -> bool:
        return self.mechanism in PRIVATE_MECHANISMS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def effective_lr(self) -> float:
        """The step size the optimizer uses: lr, times public_lr_scale when starting from the public model."""
        return self.lr * self.public_lr_scale if self.init == "public" else self.lr

    @property
    def user_level(self) -> bool:
        """Whether a user (all of their sequences) is the privacy unit of this private run."""
        return self.is_private and self.unit == "user"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """A config from its :meth:`to_dict`; fields a stored config predates take their legacy value.

        :data:`LEGACY_DEFAULTS` keeps old runs what they were: a config written before privacy units
        existed was trained sequence-level, whatever the default is now; one written before the
        built-in corpus's size was a choice trained on its 400 people.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown configuration field(s): {', '.join(unknown)}")
        return cls(**{**{k: v for k, v in LEGACY_DEFAULTS.items() if k not in data}, **data})

    def replace(self, **changes: Any) -> TrainConfig:
        """This config with ``changes`` (validated: see :meth:`replace_consistent` to apply the repairs too)."""
        return replace(self, **changes)

    def changed(self, **changes: Any) -> dict[str, Any]:
        """This config's values with ``changes``, not yet checked: what a form holds before it is a config
        (:func:`dpcore.runs.preview.check` puts each problem at its field)."""
        return {**self.to_dict(), **changes}

    # ----------------------------------------------------------- cross-field rules
    @classmethod
    def repair_values(cls, values: Mapping[str, Any], given: Collection[str] = ()) -> tuple[dict[str, Any],
                                                                                             list[Repair]]:
        """Field values (missing ones at their defaults) with the cross-field rules applied, and what was changed.

        Works on plain values, so a form's, a link's or the command line's choices are repaired
        before a config is built from them (a config that breaks a binding rule cannot exist).
        ``given``: the fields set on purpose (a link's parameters, the command line's flags); when
        epochs and max steps are both set and only one of them was given, that one wins. Callers
        decide what a repair of a given field means: a link reports it, the CLI refuses it.
        """
        out = {**{f.name: field_default(f) for f in fields(cls)}, **values}
        repairs = []
        for rule in MECHANISM_RULES:
            if out["mechanism"] in rule.mechanisms and out[rule.field] not in rule.allowed:
                repairs.append(Repair(rule.field, rule.allowed[0], rule.reason))
                out[rule.field] = rule.allowed[0]
        if out["epochs"] is not None and out["max_steps"] is not None:
            drop = ("max_steps" if "epochs" in given and "max_steps" not in given
                    else "epochs" if "max_steps" in given and "epochs" not in given else None)
            if drop is not None:
                repairs.append(Repair(drop, None, "epochs and max steps exclude each other"))
                out[drop] = None
        return out, repairs

    @classmethod
    def repaired(cls, values: Mapping[str, Any], given: Collection[str] = ()) -> tuple[TrainConfig, list[Repair]]:
        """A config from field values after :meth:`repair_values`, and the repairs (ConfigError if still invalid)."""
        out, repairs = cls.repair_values(values, given)
        return cls(**out), repairs

    def consistent(self, given: Collection[str] = ()) -> tuple[TrainConfig, list[Repair]]:
        """This config with the cross-field rules applied, and what was changed (see :meth:`repair_values`)."""
        return type(self).repaired(self.to_dict(), given)

    def normalized(self, given: Collection[str] = ()) -> TrainConfig:
        """:meth:`consistent` without the list of repairs."""
        return self.consistent(given)[0]

    def replace_consistent(self, given: Collection[str] = (), **changes: Any) -> TrainConfig:
        """This config with ``changes``, the cross-field rules applied (what ``replace(...).normalized(given)``
        meant, without an invalid config in between: ``mechanism="laplace"`` brings its PLD accountant)."""
        return type(self).repaired({**self.to_dict(), **changes}, given)[0]

    # --------------------------------------------------------------- validation
    def validate(self) -> TrainConfig:
        """This config, which is valid: every config is validated when it is built (``__post_init__``).

        Kept so that callers that validate what they are given keep working; the checks and their
        messages are :meth:`_check`'s (a :class:`ConfigError` with one sentence for the first problem).
        """
        return self

    def _check(self) -> None:
        """Raise :class:`ConfigError` with one clear sentence for the first problem found."""
        for name, spec in field_specs(type(self)).items():  # the specs once: every config built passes here
            problem = _spec_problem(spec, getattr(self, name))
            if problem:
                raise ConfigError(problem)
        for rule in MECHANISM_RULES:
            if rule.binding and self.mechanism in rule.mechanisms and getattr(self, rule.field) not in rule.allowed:
                raise ConfigError(f"{rule.reason}; choose the {rule.field} {rule.allowed[0]}")
        if self.is_private and self.noise_multiplier is None and self.epsilon is None:
            raise ConfigError(f"{self.mechanism} training needs a target ε (--epsilon) or a noise multiplier")
        if (self.epochs is None) == (self.max_steps is None):
            raise ConfigError("give exactly one of epochs or max steps")


def unit_phrase(config: TrainConfig) -> str:
    """The privacy unit in a few words, for a run's info and result ("one training sequence (example-level)")."""
    if not config.is_private:
        return "none (no privacy guarantee)"
    if config.user_level:
        return f"one user with all of their text (user-level; at most {config.user_cap} sequences per step)"
    return "one training sequence (example-level)"


#: Values of fields added after configs were first stored, for stored configs that lack them.
LEGACY_DEFAULTS: dict[str, Any] = {"unit": "sequence", "builtin_users": 400, "public_lr_scale": 1.0, "ema": None,
                                   "secure_noise": False}


@dataclass(frozen=True)
class MechanismRule:
    """For these mechanisms, ``field`` must be one of ``allowed`` (the first is the repair).

    ``binding``: validate() refuses a stored or given config that breaks the rule (the reported ε
    would be wrong); otherwise the field is ignored by those mechanisms and only repaired.
    """

    mechanisms: tuple[str, ...]
    field: str
    allowed: tuple[str, ...]
    reason: str
    binding: bool


@dataclass(frozen=True)
class Repair:
    """One change :meth:`TrainConfig.consistent` made: the field, its new value and why."""

    field: str
    value: Any
    reason: str


def _mechanism_rules() -> tuple[MechanismRule, ...]:
    """The rules each registered mechanism implies: its accountants (binding) and its engines (repaired only)."""
    rules = []
    for m in mechanisms():
        if m.private and m.accountants:
            rules.append(MechanismRule((m.name,), "accountant", m.accountants, m.accountant_reason, binding=True))
        if set(m.engine_choices()) != set(ENGINES):
            rules.append(MechanismRule((m.name,), "engine", m.engine_choices(), m.engine_reason, binding=False))
    return tuple(rules)


#: The cross-field rules between the mechanism and the other choices, derived from the mechanism registry
#: (dpcore.privacy.registry: each mechanism's accountants and engines), the one place they live.
MECHANISM_RULES: Live[MechanismRule] = Live(_mechanism_rules)


# ---------------------------------------------------------------------------------- per field
def field_specs(cls: type = TrainConfig) -> dict[str, FieldSpec]:
    """Every field's :class:`FieldSpec`, in declaration order; a field without one is an error."""
    out: dict[str, FieldSpec] = {}
    for f in fields(cls):
        spec = f.metadata.get(SPEC_KEY)
        if not isinstance(spec, FieldSpec):
            raise TypeError(f"config field {f.name!r} has no FieldSpec metadata")
        out[f.name] = spec
    return out


def field_spec(name: str, cls: type = TrainConfig) -> FieldSpec:
    try:
        return field_specs(cls)[name]
    except KeyError:
        raise ConfigError(f"there is no setting called {name!r}") from None


def field_default(f: Field) -> Any:
    return f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]


def cli_flag(name: str, spec: FieldSpec) -> str:
    return spec.cli_flag or "--" + name.replace("_", "-")


def url_key(name: str, spec: FieldSpec) -> str:
    return spec.url_key or name


def field_problem(name: str, value: Any, cls: type = TrainConfig) -> str | None:
    """Why ``value`` is not valid for the field ``name`` on its own, or None if it is.

    Only the field's own metadata is used, so the message names this field and never a
    cross-field rule.
    """
    return _spec_problem(field_spec(name, cls), value)


def _spec_problem(spec: FieldSpec, value: Any) -> str | None:
    """:func:`field_problem` for a field whose spec is known."""
    label = spec.label
    if value is None:
        return None if spec.optional else f"{label} must be given"
    if spec.kind == "bool":
        return None if isinstance(value, bool) else f"{label} must be true or false, got {value!r}"
    if spec.kind == "str":
        return None if isinstance(value, str) else f"{label} must be text, got {value!r}"
    if spec.kind == "choice":
        if value in spec.choices:
            return None
        return f"{label} must be one of {', '.join(spec.choices)}; got {value!r}"
    if spec.kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        noun = "a whole number"
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        noun = "a number"
    if ok:
        lo, hi = spec.lo, spec.hi
        above = value > lo if spec.lo_open else value >= lo  # type: ignore[operator]
        below = value < hi if spec.hi_open else value <= hi  # type: ignore[operator]
        if above and below:
            return None
    return f"{label} must be {noun} {spec.range_text()}, got {value!r}"


def parse_field(name: str, text: str, cls: type = TrainConfig) -> Any:
    """Text (a link's value, a command-line argument) as a valid value for ``name``.

    Raises :class:`ConfigError` with a short reason: "not a whole number", or the field's own
    problem with its allowed range. ``none`` (see :data:`NONE_WORDS`) clears an optional field.
    """
    spec = field_spec(name, cls)
    if spec.kind != "str" or spec.optional:  # free text (the sample prompt) keeps its spaces
        text = text.strip()
    if spec.optional and text.lower() in NONE_WORDS:
        return None
    value: Any
    if spec.kind == "bool":
        word = text.lower()
        if word not in TRUE_WORDS and word not in FALSE_WORDS:
            raise ConfigError("not true or false")
        value = word in TRUE_WORDS
    elif spec.kind == "int":
        try:
            value = int(text)
        except ValueError:
            raise ConfigError("not a whole number") from None
    elif spec.kind == "float":
        try:
            value = float(text)
        except ValueError:
            raise ConfigError("not a number") from None
        if not math.isfinite(value):
            raise ConfigError("not a finite number")
    else:
        value = text
    problem = field_problem(name, value, cls)
    if problem:
        raise ConfigError(problem)
    return value


def allowed_choices(name: str, mechanism: str | None = None, cls: type = TrainConfig) -> tuple[str, ...]:
    """The options a choice field offers; with ``mechanism``, only those its rules allow."""
    spec = field_spec(name, cls)
    if spec.kind != "choice":
        raise ValueError(f"{name} is not a choice field")
    options = tuple(spec.choices)
    for rule in MECHANISM_RULES:
        if rule.field == name and mechanism in rule.mechanisms:
            options = tuple(o for o in options if o in rule.allowed)
    return options


def form_range(name: str, cls: type = TrainConfig) -> tuple[Any, Any]:
    """The closed (min, max) a number input offers for ``name``: ints for int fields, else floats.

    An excluded end is moved to the nearest float inside the range.
    """
    spec = field_spec(name, cls)
    if spec.kind not in ("int", "float"):
        raise ValueError(f"{name} is not a number field")
    if spec.kind == "int":
        lo, hi = int(spec.lo), int(spec.hi)  # type: ignore[arg-type]
        return (lo + 1 if spec.lo_open else lo), (hi - 1 if spec.hi_open else hi)
    lo_f, hi_f = float(spec.lo), float(spec.hi)  # type: ignore[arg-type]
    return (math.nextafter(lo_f, hi_f) if spec.lo_open else lo_f), (math.nextafter(hi_f, lo_f) if spec.hi_open
                                                                    else hi_f)


# ---------------------------------------------------------------------------------- δ
#: The default δ in words, wherever it is explained (one wording for the form, statement and CLI).
DEFAULT_DELTA_RULE = "min(10⁻⁵, 1/(10·N))"

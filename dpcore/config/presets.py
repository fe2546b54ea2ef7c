"""Named configurations a teacher can hand out as a link (``?preset=workshop-eps3-person``).

Presets live in the core, not in the dashboard, so the CLI and the tests see the same ones. The
workshop presets share everything except the privacy setting, so their curves are comparable
side by side ("predict, then reveal"): same corpus, model, steps, about the same 256 sequences a
step, and seed. They come per person (the default unit) and, as a lesson, per sequence.

The workshop presets are sized to finish well within a minute on a 2-core laptop CPU, worker start-up
included: 8-12 s each with one math thread on the project's 2-core machine; they start from the
public model of their size, which the first of them builds once (about 20 s) and every later run
reuses. Bigger models or more steps were tried and make the private runs *worse* at these ε (more
steps at a fixed ε means more noise per step), so the headroom is left for slower laptops and busy
rooms. The Gaussian presets use the fast engine (ghost clipping), which takes the same steps as
Opacus at a fraction of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass

from dpcore.config import TrainConfig
from dpcore.errors import ConfigError
from dpcore.privacy.registry import LAPLACE

#: The engine used by the Gaussian presets (ghost clipping: the same steps as Opacus, faster).
PRESET_ENGINE = "fast"

#: The shared shape of the workshop runs: a small character-level GRU on the built-in corpus, per person.
#: 128 users a step, at most 2 sequences each: about the 256 sequences a step of the per-sequence
#: presets, so both kinds take the same time and differ only in what ε protects. (At equal compute,
#: k = 2 trained best of k = 1, 2, 4, 8 on the built-in corpus: see the user_cap default.)
#: They start from the public model (at lr × public_lr_scale): 300 steps, validation perplexity at
#: ε = 1 / 3 / 8 per person 2.47 / 2.36 / 2.32 against 14.7 / 10.1 / 8.05 from random weights, and 2.14
#: against 2.78 without privacy; the lesson "ε = 8 from random weights" keeps the other picture.
WORKSHOP = TrainConfig(
    corpus="builtin", tokenizer="char", seq_len=32, embed_dim=16, hidden_size=64, num_layers=1,
    batch_size=128, unit="user", user_cap=2, lr=0.02, max_steps=300, epochs=None, eval_every=50, num_samples=3,
    sample_tokens=60, seed=0, device="cpu", clip=1.0, accountant="rdp", engine=PRESET_ENGINE, init="public",
)
#: The same runs with one training sequence as the privacy unit (256 sequences a step).
PER_SEQUENCE = WORKSHOP.replace(unit="sequence", batch_size=256)


@dataclass(frozen=True)
class Preset:
    """A named, validated configuration with a one-line description for the preset buttons."""

    name: str  # the URL value: ?preset=<name>
    title: str  # the button label
    description: str
    config: TrainConfig
    group: str = "workshop"


def _workshop(eps: float) -> Preset:
    return Preset(
        name=f"workshop-eps{eps:g}-person",
        title=f"ε = {eps:g} per person",
        description=f"User-level DP-SGD at ε = {eps:g}: protects each person with all of their messages; "
                    "under a minute on a laptop CPU.",
        config=WORKSHOP.replace(mechanism="gaussian", epsilon=eps),
    )


def _per_sequence(eps: float) -> Preset:
    return Preset(
        name=f"workshop-eps{eps:g}",
        title=f"ε = {eps:g} per sequence",
        description=f"Example-level DP-SGD at ε = {eps:g}: protects one 32-character snippet, so someone who "
                    "wrote many is covered only at a multiple of ε. Compare with the per-person run.",
        config=PER_SEQUENCE.replace(mechanism="gaussian", epsilon=eps),
        group="per-sequence",
    )


PRESETS: tuple[Preset, ...] = (
    _workshop(1.0),
    _workshop(3.0),
    _workshop(8.0),
    _per_sequence(1.0),
    _per_sequence(3.0),
    _per_sequence(8.0),
    Preset(
        name="workshop-none",
        title="No privacy",
        description="The non-private baseline with the same model, data and steps; under a minute.",
        config=PER_SEQUENCE.replace(mechanism="none", engine="opacus"),  # 256 sequences a step, like the others
    ),
    Preset(
        name="workshop-naive",
        title="Naive recipe",
        description="Noise without per-example clipping: looks private, guarantees nothing. A counterexample.",
        config=PER_SEQUENCE.replace(mechanism="naive", epsilon=1.0, engine="opacus"),
        group="lesson",
    ),
    Preset(
        name="workshop-laplace",
        title="Laplace, ε = 8",
        description="Laplace DP-SGD (L1 clipping, PLD accountant) at ε = 8: far noisier than Gaussian at the "
        "same ε. Fewer, slower steps (per-example gradients); under a minute.",
        # the mechanism's own rules pick its accountant (PLD) and engine (Opacus): dpcore.privacy.registry
        config=WORKSHOP.replace_consistent(mechanism=LAPLACE.name, epsilon=8.0, max_steps=150, eval_every=50),
        group="lesson",
    ),
    Preset(
        name="lesson-eps8-400",
        title="ε = 8, 400 people",
        description="The ε = 8 per-person run with a tenth of the people: the noise is shared by fewer, so the same "
        "ε costs more accuracy. Compare with ε = 8 per person (4,000 people).",
        config=WORKSHOP.replace(mechanism="gaussian", epsilon=8.0, builtin_users=400),
        group="lesson",
    ),
    Preset(
        name="lesson-eps8-scratch",
        title="ε = 8 from random weights",
        description="The ε = 8 per-person run without the public model: random weights must learn spelling from "
        "noisy steps alone. Compare with ε = 8 per person, which starts from a model pre-trained without privacy "
        "on other people's public posts (at no ε).",
        # only the start changes (and so the step: from the public model it is lr × public_lr_scale)
        config=WORKSHOP.replace(mechanism="gaussian", epsilon=8.0, init="scratch"),
        group="lesson",
    ),
    Preset(
        name="study-eps8",
        title="Study, ε = 8",
        description="The full-size model (128 hidden units, 64-character windows) for 300 steps; "
        "a minute or two on a laptop CPU, seconds on a GPU.",
        config=TrainConfig(mechanism="gaussian", epsilon=8.0, engine=PRESET_ENGINE, device="auto", batch_size=128),
        group="study",
    ),
)

_BY_NAME = {p.name: p for p in PRESETS}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a :class:`ConfigError` naming the known ones otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(_BY_NAME)
        raise ConfigError(f"there is no preset named {name!r}; the presets are {known}") from None


def workshop_presets() -> list[Preset]:
    """The four comparable workshop runs: ε = 1, 3, 8 per person and no privacy."""
    return [p for p in PRESETS if p.group == "workshop"]


def per_sequence_presets() -> list[Preset]:
    """The same ε per sequence: side by side with the per-person runs, what the unit changes."""
    return [p for p in PRESETS if p.group == "per-sequence"]


# ------------------------------------------------------------------------------ form choices
#: The target-ε slider's stops: roughly log-spaced from 0.1 to 50 (the common range in practice).
EPSILON_CHOICES: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0,
                                      15.0, 20.0, 30.0, 50.0)
#: Model sizes offered by the form: name -> (embedding size, GRU hidden size).
MODEL_SIZES: dict[str, tuple[int, int]] = {
    "tiny": (16, 32),
    "small": (16, 64),
    "medium": (32, 128),
    "large": (64, 256),
}


#: "How many people contributed?": the built-in corpus's sizes the form offers (TrainConfig.builtin_users).
#: DP-SGD's noise is shared by the whole batch, so the same ε costs less accuracy as the crowd grows.
CROWD_SIZES: tuple[int, ...] = (400, 1000, 4000, 10_000)
#: The form's words for where training starts (TrainConfig.init).
INIT_LABELS: dict[str, str] = {
    "scratch": "random weights",
    "public": f"the public model (pre-trained on public text, costs no ε; fine-tuned at lr × "
              f"{TrainConfig().public_lr_scale:g})",
}


def crowd_choices(current: int | None) -> list[int]:
    """The crowd sizes offered, with ``current`` added when a link asked for another size."""
    sizes = set(CROWD_SIZES)
    if current is not None:
        sizes.add(int(current))
    return sorted(sizes)


def crowd_label(people: int) -> str:
    """"4,000 people"."""
    return f"{people:,} people"


def epsilon_choices(current: float | None) -> list[float]:
    """The slider's stops, with ``current`` added when a link asked for a value between stops."""
    stops = set(EPSILON_CHOICES)
    if current is not None and 0 < current <= 1000:
        stops.add(float(current))
    return sorted(stops)


def model_size_name(embed_dim: int, hidden_size: int) -> str:
    """"small (16 / 64)" for a known size, "custom (24 / 80)" otherwise."""
    for name, dims in MODEL_SIZES.items():
        if dims == (embed_dim, hidden_size):
            return f"{name} ({embed_dim} / {hidden_size})"
    return f"custom ({embed_dim} / {hidden_size})"

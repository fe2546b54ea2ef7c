"""Decoders for text generation, each with the privacy it can (or cannot) claim per token.

* ``plain`` — ordinary sampling. From a DP-trained model this is post-processing: no extra ε,
  however many samples; from a non-private model it protects nothing.
* ``exponential`` — logits clipped to [−B, B], sample from softmax(clipped / T): the exponential
  mechanism with utility range 2B, ε per token = 4B/T, against ANY change to the model (and so
  to its training data), even a non-private model.
* ``noisy-max`` — report-noisy-max: argmax of clipped logits + Laplace(b) noise; ε per token = 4B/b.
* ``mix`` — sample from λ·p + (1−λ)/V: every token keeps probability ≥ (1−λ)/V, so the ratio of
  any token's probability under two models is ≤ 1 + λV/(1−λ); ε per token = ln(1 + λV/(1−λ)).
* ``naive-logits`` — Laplace noise on *unclipped* logits: the logits are unbounded, so the noise
  protects nothing and no ε is claimed.

Each decoder is a mechanism over one logit vector; the loop that runs the model token by token is
:mod:`dpcore.training.generate`, and what a text or a ledger of texts spends is
:mod:`dpcore.privacy.composition`.

Secret randomness: a private decoder's guarantee is about a *random* choice. A generator seeded by a
value the reader knows (or can pick) makes every draw replayable, and the per-token ε is void. So
the private decoders draw from a fresh generator seeded from the OS's CSPRNG for every text, and that
seed is never stored, logged or shown; a user's ``seed`` applies to ``plain`` sampling (and to the
``naive-logits`` counterexample, which claims nothing) only.

The set of ids a decoder may choose from (``allowed``) depends only on the tokens already drawn,
never on the model: each private choice is still the same mechanism over a smaller range chosen from
earlier outputs (adaptive composition), so ε per token stays a valid bound (for ``mix`` the uniform
floor spreads over the allowed ids, and ln(1 + λV/(1−λ)) with the full V bounds its ε).

Operating points (:data:`OPERATING_POINTS`): private prediction spends ε on every token, so a model
that is readable *and* private per text does not exist at this scale; the Samples page offers two
named points that show the trade-off at its measured price (``bench/decoding_points.py``): one
readable, one private.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

import torch

from dpcore.errors import DPCoreError
from dpcore.privacy.noise import laplace_noise

DECODERS = ("plain", "exponential", "noisy-max", "mix", "naive-logits")
PRIVATE_DECODERS = ("exponential", "noisy-max", "mix")
#: Neighbour relation of a decoder's own guarantee: it bounds the ratio for ANY two models.
DECODER_RELATION = "any change to the model, hence to its training data"



@dataclass(frozen=True)
class DecoderSpec:
    name: str = "plain"
    logit_bound: float = 4.0  # B
    temperature: float = 1.0  # T
    noise_scale: float = 1.0  # b (Laplace) for noisy-max and naive-logits
    mix: float = 0.5  # λ

    def validate(self) -> DecoderSpec:
        if self.name not in DECODERS:
            raise DPCoreError(f"decoder must be one of {', '.join(DECODERS)}; got {self.name!r}")
        for label, value in (("logit bound B", self.logit_bound), ("temperature T", self.temperature),
                             ("noise scale b", self.noise_scale)):
            if not (math.isfinite(value) and value > 0):
                raise DPCoreError(f"{label} must be a positive number, got {value!r}")
        if not (0.0 <= self.mix < 1.0):
            raise DPCoreError(f"the mixing weight λ must be in [0, 1), got {self.mix!r}")
        return self

    @property
    def has_guarantee(self) -> bool:
        """Whether this decoder by itself bounds what one token reveals about the model."""
        return self.name in PRIVATE_DECODERS

    @property
    def seedable(self) -> bool:
        """Whether a user-chosen seed may drive this decoder (never for a private one)."""
        return not self.has_guarantee

    def epsilon_per_token(self, vocab_size: int) -> float | None:
        """ε of one generated token (None: no guarantee of its own)."""
        if self.name == "exponential":
            return 4.0 * self.logit_bound / self.temperature
        if self.name == "noisy-max":
            return 4.0 * self.logit_bound / self.noise_scale
        if self.name == "mix":
            return math.log1p(self.mix * vocab_size / (1.0 - self.mix))
        return None

    def distribution(self, logits: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor | None:
        """The exact next-token distribution where it has a closed form (not for noisy-max).

        ``allowed`` (bool [V], from :class:`TokenFilter`) restricts the range: other ids get
        probability 0, and ``mix`` spreads its uniform floor over the allowed ids only.
        """
        if self.name == "exponential":
            return _softmax(logits.clamp(-self.logit_bound, self.logit_bound) / self.temperature, allowed)
        if self.name == "mix":
            floor = torch.full_like(logits, 1.0 / logits.shape[-1]) if allowed is None else \
                allowed.to(logits.dtype) / allowed.sum()
            return self.mix * _softmax(logits / self.temperature, allowed) + (1.0 - self.mix) * floor
        if self.name == "plain":
            return _softmax(logits / self.temperature, allowed)
        return None

    def pick(self, logits: torch.Tensor, generator: torch.Generator, allowed: torch.Tensor | None = None) -> int:
        """One token id from a logit vector [V] (among the ``allowed`` ids when given)."""
        if self.name in ("noisy-max", "naive-logits"):
            values = logits.clamp(-self.logit_bound, self.logit_bound) if self.name == "noisy-max" else logits
            noisy = values + laplace_noise(values.shape, self.noise_scale, generator, values.device)
            if allowed is not None:
                noisy = noisy.masked_fill(~allowed, float("-inf"))
            return int(torch.argmax(noisy).item())
        probs = self.distribution(logits, allowed)
        return int(torch.multinomial(probs, 1, generator=generator).item())


def _softmax(values: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    if allowed is not None:
        values = values.masked_fill(~allowed, float("-inf"))
    return torch.softmax(values, dim=-1)


def mix_weight_for(epsilon_per_token: float, vocab_size: int) -> float:
    """The largest λ whose ``mix`` decoder spends at most ``epsilon_per_token`` over ``vocab_size`` ids.

    Inverts ε = ln(1 + λV/(1−λ)): λ = (e^ε − 1)/(e^ε − 1 + V), then steps down to the next float
    until rounding cannot take the ε it reports above the one asked for.
    """
    if not (math.isfinite(epsilon_per_token) and epsilon_per_token > 0) or vocab_size < 1:
        raise DPCoreError(f"ε per token must be a positive number, got {epsilon_per_token!r}")
    grow = math.expm1(epsilon_per_token)
    lam = grow / (grow + vocab_size)
    while lam > 0 and DecoderSpec("mix", mix=lam).epsilon_per_token(vocab_size) > epsilon_per_token:
        lam = math.nextafter(lam, 0.0)
    return lam



def decoder_generator(spec: DecoderSpec, seed: int | None) -> torch.Generator:
    """The random source of one text: secret for a private decoder, ``seed`` for the others.

    The secret seed comes from the OS's CSPRNG and lives only in the returned generator: it is not
    stored, logged or returned, so nobody can replay the draw.
    """
    gen = torch.Generator()
    if spec.has_guarantee or seed is None:
        gen.manual_seed(secrets.randbits(63))
    else:
        gen.manual_seed(int(seed))
    return gen


# ------------------------------------------------------------------------ operating points
@dataclass(frozen=True)
class OperatingPoint:
    """A named private-decoding setting: the ``mix`` decoder at a fixed ε per token and length.

    The ε per token is fixed, not λ: λ is derived per model from its vocabulary
    (:func:`mix_weight_for`), so the promised ε per text is the same for every model.
    """

    name: str
    epsilon_per_token: float
    max_tokens: int
    temperature: float  # of the model's distribution inside the mix (costs no ε)
    shows: str  # what the point demonstrates, one sentence

    @property
    def epsilon_per_text(self) -> float:
        """The most one text may spend (basic composition, δ = 0): every token choice at ε₀."""
        return self.epsilon_per_token * self.max_tokens

    def spec(self, vocab_size: int) -> DecoderSpec:
        """The decoder for a model with ``vocab_size`` ids; its ε per token is at most the point's."""
        return DecoderSpec("mix", temperature=self.temperature,
                           mix=mix_weight_for(self.epsilon_per_token, vocab_size)).validate()


#: Legible text at a price (``bench/decoding_points.py`` measures each decoder's readability).
READABLE = OperatingPoint(
    "readable", epsilon_per_token=8.0, max_tokens=16, temperature=0.5,
    shows="legible text at a price: every token costs ε = 8, so one short text costs up to 128 — 16 times "
          "the training ε = 8 of a default run, a promise in name only")
#: The same length at ε ≤ 1 per text: a real guarantee, and the text is noise (uniform characters).
PRIVATE = OperatingPoint(
    "private", epsilon_per_token=1 / 16, max_tokens=16, temperature=0.5,
    shows="a real guarantee, ε ≤ 1 for the whole text, and the price: the text is noise, since at ε = 1/16 "
          "per token every token is close to a uniform draw")
OPERATING_POINTS: dict[str, OperatingPoint] = {p.name: p for p in (READABLE, PRIVATE)}
#: What the Samples page offers, in order: plain sampling (free from a DP model), the two points,
#: then each private decoder with its own knobs, and the naive counterexample.
DECODER_CHOICES = ("plain", *OPERATING_POINTS, *PRIVATE_DECODERS, "naive-logits")

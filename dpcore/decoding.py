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

A text of n tokens spends n·ε_token under basic composition; advanced composition at δ′ gives
√(2n ln(1/δ′))·ε + n·ε(e^ε − 1), which is smaller for many tokens. Training ε instead covers
unlimited queries: that is the point to make next to these numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from dpcore.data.tokenizer import EOS_ID, Tokenizer
from dpcore.errors import DPCoreError
from dpcore.model import GRULanguageModel
from dpcore.privacy.noise import laplace_noise

DECODERS = ("plain", "exponential", "noisy-max", "mix", "naive-logits")


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
        return self.name in ("exponential", "noisy-max", "mix")

    def epsilon_per_token(self, vocab_size: int) -> float | None:
        """ε of one generated token (None: no guarantee of its own)."""
        if self.name == "exponential":
            return 4.0 * self.logit_bound / self.temperature
        if self.name == "noisy-max":
            return 4.0 * self.logit_bound / self.noise_scale
        if self.name == "mix":
            return math.log1p(self.mix * vocab_size / (1.0 - self.mix))
        return None

    def distribution(self, logits: torch.Tensor) -> torch.Tensor | None:
        """The exact next-token distribution where it has a closed form (not for noisy-max)."""
        if self.name == "exponential":
            return torch.softmax(logits.clamp(-self.logit_bound, self.logit_bound) / self.temperature, dim=-1)
        if self.name == "mix":
            v = logits.shape[-1]
            return self.mix * torch.softmax(logits / self.temperature, dim=-1) + (1.0 - self.mix) / v
        if self.name == "plain":
            return torch.softmax(logits / self.temperature, dim=-1)
        return None

    def pick(self, logits: torch.Tensor, generator: torch.Generator) -> int:
        """One token id from a logit vector [V]."""
        if self.name in ("noisy-max", "naive-logits"):
            values = logits.clamp(-self.logit_bound, self.logit_bound) if self.name == "noisy-max" else logits
            noisy = values + laplace_noise(values.shape, self.noise_scale, generator, values.device)
            return int(torch.argmax(noisy).item())
        probs = self.distribution(logits)
        return int(torch.multinomial(probs, 1, generator=generator).item())


def basic_composition(eps: float, n: int) -> float:
    return eps * n


def advanced_composition(eps: float, n: int, delta_prime: float) -> float:
    """Dwork–Rothblum–Vadhan: n-fold ε-DP is (√(2n ln(1/δ′))ε + nε(e^ε − 1), δ′)-DP."""
    if n == 0:
        return 0.0
    return math.sqrt(2 * n * math.log(1 / delta_prime)) * eps + n * eps * math.expm1(eps)


@dataclass
class DecodedText:
    text: str
    tokens: list[str] = field(default_factory=list)
    epsilon_per_token: float | None = None
    epsilon_basic: list[float] = field(default_factory=list)  # running total after each token
    epsilon_advanced: list[float] = field(default_factory=list)  # at delta_prime
    delta_prime: float = 1e-6

    @property
    def epsilon(self) -> float | None:
        """What the whole text spends: the better of basic and advanced composition (None: none holds)."""
        if self.epsilon_per_token is None:
            return None
        if not self.epsilon_basic:
            return 0.0
        return min(self.epsilon_basic[-1], self.epsilon_advanced[-1])


@torch.no_grad()
def decode(model: GRULanguageModel, tokenizer: Tokenizer, prompt: str, spec: DecoderSpec, *, max_tokens: int,
           seed: int = 0, delta_prime: float = 1e-6) -> DecodedText:
    """Generate with ``spec``, tracking the ε the text spends token by token."""
    spec.validate()
    model.eval()
    gen = torch.Generator()
    gen.manual_seed(seed)
    device = next(model.parameters()).device
    ids = torch.tensor([[EOS_ID] + tokenizer.encode(prompt)], dtype=torch.long, device=device)
    logits, h = model(ids)
    eps = spec.epsilon_per_token(tokenizer.vocab_size)
    out = DecodedText(text=prompt, epsilon_per_token=eps, delta_prime=delta_prime)
    generated: list[int] = []
    for n in range(1, max_tokens + 1):
        nxt = spec.pick(logits[0, -1].float().cpu(), gen)
        if eps is not None:
            out.epsilon_basic.append(basic_composition(eps, n))
            out.epsilon_advanced.append(advanced_composition(eps, n, delta_prime))
        if nxt == EOS_ID:
            break
        generated.append(nxt)
        out.tokens.append(tokenizer.decode([nxt]))
        logits, h = model(torch.tensor([[nxt]], dtype=torch.long, device=device), h)
    piece = tokenizer.decode(generated)
    out.text = prompt + (" " + piece if tokenizer.kind == "word" and prompt and piece else piece)
    return out


@dataclass(frozen=True)
class TextGuarantee:
    """The ε that covers a generated text with respect to the training data (None: nothing claimed)."""

    epsilon: float | None
    explanation: str


def text_guarantee(out: DecodedText, spec: DecoderSpec, training_result: dict) -> TextGuarantee:
    """Combine the model's training guarantee (post-processing) with the decoder's own.

    Both are valid bounds for a text drawn from a DP-trained model through a private decoder,
    so the smaller holds. The naive decoder never claims anything: its noise sits on unbounded
    logits, and we do not let it borrow the training ε either, so nothing "naive" shows a number.
    """
    train_eps = training_result.get("epsilon")
    train = (f"the model was DP-trained (ε = {train_eps:.3g}, δ = {training_result.get('delta'):.2g}); "
             "any text drawn from it is post-processing and costs no extra ε"
             if train_eps is not None else "the model was NOT trained with differential privacy")
    if spec.name == "naive-logits":
        return TextGuarantee(None, "naive-logits: Laplace noise on unbounded logits gives NO privacy guarantee; "
                                   "no ε is claimed for this text")
    if spec.name == "plain":
        if train_eps is None:
            return TextGuarantee(None, f"plain sampling: {train}, so this text has no privacy guarantee")
        return TextGuarantee(float(train_eps), f"plain sampling: {train}")
    dec = out.epsilon
    note = (f"{spec.name}: ε per token = {out.epsilon_per_token:.3g}; this text ({len(out.epsilon_basic)} tokens) "
            f"spends {dec:.3g} (basic {out.epsilon_basic[-1] if out.epsilon_basic else 0:.3g}, advanced at "
            f"δ′ = {out.delta_prime:g}: {out.epsilon_advanced[-1] if out.epsilon_advanced else 0:.3g}); {train}")
    if train_eps is not None:
        return TextGuarantee(min(float(train_eps), dec), note)
    return TextGuarantee(dec, note)

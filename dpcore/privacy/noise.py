"""Where DP randomness comes from: a secret-seeded torch generator, or the operating system's CSPRNG.

Two sources with one interface (:class:`NoiseSource`), so that an engine draws its gradient noise,
its Poisson sample and its private clipped count without knowing which one it holds:

* :class:`TorchNoise` — a ``torch.Generator`` (the engines seed it with 63 secret bits from the OS,
  as Opacus's default mode does). Safe against replay, since nobody knows the seed, but the
  generator is a Mersenne Twister / Philox stream, not a cryptographic one: an adversary who
  could observe enough of its outputs could in principle recover its state.
* :class:`SecureNoise` — every draw reads fresh bytes from the OS's CSPRNG (``os.urandom``,
  ChaCha20 in Linux's getrandom), the way Opacus's ``secure_mode`` uses torchcsprng's
  ``/dev/urandom`` generator (torchcsprng is unmaintained and does not support torch 2.x, so it is
  not used). Nothing here touches torch's global generator: uniforms are 53-bit integers from those
  bytes, scaled exactly to float64.

**Floating-point attacks** (Mironov 2012, "On significance of the least significant bits for
differential privacy"; Jin et al. 2022, "Are we there yet? Timing and floating-point attacks on
differential privacy systems"): noise sampled in the same float precision as the released value
has a porous support, and the released x + Z can then reveal x (which values y − x the sampler can
produce at all). :class:`SecureNoise` *mitigates* this instead of proving it away: Z is sampled in
float64 from 53-bit uniforms (Box–Muller; Laplace as b·(E₁ − E₂) with E = −ln U), x + Z is formed
in float64, and only that sum is rounded, once, to the float32 of the gradient. A float32 cell holds
about 2²⁹ float64 values, so the rounding hides the float64 sampler's gaps, and the released value
is the rounding (post-processing) of a sample whose distribution is the ideal one up to float64
error. This is not Mironov's snapping mechanism, nor Opacus's sum of 2n = 4 float32 Gaussians
(Holohan & Braghin 2021, §5.1, a defence of a generator's *state*, which a CSPRNG already has):
no theorem covers the float64 sampler's own deviations (its tails end at √(2·53 ln 2) ≈ 8.57 σ for
the Gaussian and at 53 ln 2 ≈ 36.7 b for each exponential of the Laplace). The accountant's (ε, δ)
is proved for ideal real-valued noise, with either source; :attr:`NoiseSource.description` says so
in every run's result.

:class:`TorchNoise` draws exactly what the engines drew before it existed (same calls, same order),
so seeded tests still compare the fast engine with Opacus draw for draw.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod

import torch

#: Bits of each uniform: a float64 holds 53-bit integers exactly, so k/2⁵³ is exact.
UNIFORM_BITS = 53
_MASK = (1 << UNIFORM_BITS) - 1
_SCALE = 2.0 ** -UNIFORM_BITS


def laplace_noise(shape: torch.Size | tuple[int, ...], scale: float, generator: torch.Generator,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """i.i.d. Laplace(0, scale) with the given generator (variance 2·scale²).

    ``torch.distributions.Laplace`` takes no generator, so a seeded sample is built as b·(E₁ − E₂)
    from two seeded Exp(1) draws (the difference of two exponentials is Laplace).
    """
    e1 = torch.empty(shape, device=device).exponential_(1.0, generator=generator)
    e2 = torch.empty(shape, device=device).exponential_(1.0, generator=generator)
    return scale * (e1 - e2)


class NoiseSource(ABC):
    """One source of DP randomness: uniforms for sampling, Gaussian and Laplace noise for releases."""

    #: What the run's result says about its noise (one sentence, no secret in it).
    description: str
    #: Short name recorded with a run ("torch-secret-seed" or "os-csprng").
    name: str

    @abstractmethod
    def rand(self, n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``n`` uniforms in [0, 1) on the CPU (a secure source always returns float64)."""

    @abstractmethod
    def add_gaussian(self, x: torch.Tensor, std: float) -> torch.Tensor:
        """x + N(0, std²) per coordinate, in x's dtype and on x's device."""

    @abstractmethod
    def add_laplace(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        """x + Laplace(0, scale) per coordinate, in x's dtype and on x's device."""

    @abstractmethod
    def gaussian_scalar(self, std: float) -> float:
        """One N(0, std²) draw, as a Python float."""


class TorchNoise(NoiseSource):
    """A ``torch.Generator`` (secret-seeded by the engines); the calls the engines always made."""

    name = "torch-secret-seed"
    description = ("torch generator seeded with 63 secret bits from the OS's CSPRNG (as Opacus's default "
                   "mode; not a cryptographic generator); float32 noise, guarantee proved for ideal "
                   "real-valued noise")

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def rand(self, n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.rand(n, generator=self.generator, dtype=dtype)

    def add_gaussian(self, x: torch.Tensor, std: float) -> torch.Tensor:
        return x + torch.normal(mean=0, std=std, size=x.shape, device=x.device, generator=self.generator,
                                dtype=x.dtype)

    def add_laplace(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        return x + laplace_noise(x.shape, scale, self.generator, x.device)

    def gaussian_scalar(self, std: float) -> float:
        return float(torch.normal(0.0, float(std), size=(1,), generator=self.generator,
                                  device=self.generator.device).item())


def secure_bits(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``n`` independent 53-bit integers (int64) from the OS's CSPRNG, on ``device``."""
    raw = torch.frombuffer(bytearray(os.urandom(8 * n)), dtype=torch.int64) if n else torch.zeros(0, dtype=torch.int64)
    return (raw & _MASK).to(device)


def secure_uniform(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``n`` uniforms k/2⁵³ in [0, 1) (float64, exact) from the OS's CSPRNG."""
    return secure_bits(n, device).to(torch.float64).mul_(_SCALE)


def secure_standard_normal(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``n`` N(0, 1) draws in float64 by Box–Muller on CSPRNG uniforms (one uniform per draw).

    U₁ = 1 − k/2⁵³ lies in (0, 1], so ln U₁ is finite; both outputs of each pair are used.
    """
    pairs = (n + 1) // 2
    u = secure_uniform(2 * pairs, device)
    radius = torch.log1p(-u[:pairs]).mul_(-2.0).sqrt_()  # √(−2 ln(1 − U)), 1 − U ∈ (0, 1]
    angle = u[pairs:].mul_(2.0 * math.pi)
    return torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)])[:n]


def secure_standard_laplace(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``n`` Laplace(0, 1) draws in float64: E₁ − E₂ with E = −ln(1 − U), U from the CSPRNG."""
    e = torch.log1p(-secure_uniform(2 * n, device)).neg_()
    return e[:n] - e[n:]


class SecureNoise(NoiseSource):
    """Fresh OS CSPRNG bytes for every draw; noise in float64, added in float64, rounded once.

    Stateless: there is no seed or key to keep secret, store or leak, and two instances (two runs)
    never share a stream. torch's global generator is never used.
    """

    name = "os-csprng"
    description = ("OS CSPRNG (os.urandom) for noise and sampling; noise sampled in float64 and added before "
                   "one rounding to float32 (mitigates floating-point attacks, Mironov 2012 / Jin et al. 2022; "
                   "guarantee proved for ideal real-valued noise)")

    def rand(self, n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        del dtype  # always float64: a comparison u < q is then exact to 2⁻⁵³
        return secure_uniform(n)

    def add_gaussian(self, x: torch.Tensor, std: float) -> torch.Tensor:
        z = secure_standard_normal(x.numel(), x.device).view(x.shape)
        return z.mul_(float(std)).add_(x.to(torch.float64)).to(x.dtype)

    def add_laplace(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        z = secure_standard_laplace(x.numel(), x.device).view(x.shape)
        return z.mul_(float(scale)).add_(x.to(torch.float64)).to(x.dtype)

    def gaussian_scalar(self, std: float) -> float:
        return float(secure_standard_normal(1)[0]) * float(std)


def as_source(randomness: NoiseSource | torch.Generator) -> NoiseSource:
    """``randomness`` as a :class:`NoiseSource` (a bare generator becomes :class:`TorchNoise`)."""
    return randomness if isinstance(randomness, NoiseSource) else TorchNoise(randomness)

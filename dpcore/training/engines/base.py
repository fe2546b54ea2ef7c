"""What every engine provides, and the factory that picks one.

**Secret randomness.** DP-SGD's guarantee holds only if the adversary cannot predict the noise or
the Poisson sample. A noise generator seeded from the run's (published) ``seed`` would let anyone
who knows the rest of the data replay training with and without one example and see which replay
matches the released weights exactly: ε = ∞ whatever the accountant says. So every engine with a
DP guarantee draws its noise and its batches from generators seeded by the operating system's
CSPRNG (:func:`secret_generator`), once per run; that seed is never stored, logged or shown. The
config's ``seed`` still fixes what may be public: initialisation, the user split and dropout.
A private run's curve is therefore reproducible only up to its noise. Engines without a guarantee
(the baseline, the naive recipe) keep seed-derived generators, so they stay reproducible.

**Secure noise** (``EngineSetup.secure_noise``, the config's ``secure_noise``): instead of torch
generators with secret seeds, every draw of the noise, the Poisson sample, the user-level row choice
and the private clipped count reads the OS's CSPRNG (:class:`~dpcore.privacy.noise.SecureNoise`),
as Opacus's ``secure_mode`` does; its treatment of floating-point attacks is described there. Engines
draw through :class:`~dpcore.privacy.noise.NoiseSource` objects (``self.noise``, ``self.sampling``,
``self.count_source``), so both modes take the same code path.
"""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dpcore.privacy.noise import NoiseSource, SecureNoise, TorchNoise
from dpcore.training.engines.user_sampling import UserPoissonSampler
from dpcore.training.model import GRULanguageModel, ModelConfig, build_model, plain_state_dict, sequence_losses


@dataclass(frozen=True)
class StepStats:
    """What one step reports. Loss is None on an empty Poisson batch (the step still adds noise).

    ``noisy_frac_clipped`` is the only statistic here covered by the DP guarantee (see
    :func:`split_noise`); loss, batch size, the exact fraction clipped and the median norm are
    computed from private data without noise.
    """

    loss: float | None
    batch_size: int
    frac_clipped: float | None = None
    median_grad_norm: float | None = None
    noisy_frac_clipped: float | None = None


#: Std of the noise on the private count of clipped examples, as a fraction of the expected batch
#: size (Andrew et al. 2021, "Differentially private learning with adaptive clipping", use B/20).
COUNT_NOISE_FRACTION = 0.05
#: The private count is offered only when its noise is at least this many times σ, so that the
#: gradient's own noise grows by at most (1 − 1/4²)^(-1/2) − 1 ≈ 3.3 % to pay for it.
MIN_COUNT_NOISE_RATIO = 4.0


def split_noise(noise_multiplier: float, expected_batch_size: int) -> tuple[float, float | None]:
    """(σ_grad, σ_count): the gradient's noise multiplier and the clipped count's noise std.

    Releasing the clipped gradient sum with noise σ_grad·C together with the number of clipped
    examples plus N(0, σ_count²) is ONE sampled Gaussian mechanism with noise multiplier σ when
    1/σ² = 1/σ_grad² + 1/σ_count²: stack each example's clipped gradient (norm ≤ C) and its clip
    indicator scaled by C·σ_grad/σ_count (≤ that in size); the stacked vector has L2 sensitivity
    C·√(1 + σ_grad²/σ_count²) under noise σ_grad·C per coordinate, i.e. noise multiplier σ. So the
    accountant's ε for σ covers both releases exactly, and the count costs only a slightly larger
    gradient noise. Returns (σ, None) — no private count — when the batch is too small for that to
    be cheap (see :data:`MIN_COUNT_NOISE_RATIO`).
    """
    sigma_count = COUNT_NOISE_FRACTION * expected_batch_size
    if noise_multiplier <= 0 or sigma_count < MIN_COUNT_NOISE_RATIO * noise_multiplier:
        return noise_multiplier, None
    return (noise_multiplier**-2 - sigma_count**-2) ** -0.5, sigma_count


@dataclass(frozen=True)
class EngineSetup:
    """Everything an engine needs; the trainer fills it from a TrainConfig and the data."""

    train: torch.Tensor  # [N, T+1] token ids
    model_config: ModelConfig
    pad_id: int
    batch_size: int  # expected batch size B (Poisson: q = 1/ceil(N/B))
    lr: float
    optimizer: str
    clip: float
    noise_multiplier: float | None  # σ for Gaussian, λ for Laplace
    sample_rate: float | None
    seed: int
    device: torch.device
    naive_sensitivity: float = 1.0
    naive_epsilon: float | None = None
    #: Initial output bias (log-probabilities of a public text, see dpcore.data.prior), or None.
    output_bias: torch.Tensor | None = None
    #: N for the sampling rate q = 1/ceil(N/B): len(train) unless the set holds audit canaries, which
    #: are all counted (included or not) so that q cannot depend on the audit's secret coins.
    accounted_examples: int | None = None
    #: User-level DP-SGD (see :mod:`dpcore.training.engines.user_sampling`): each row's user index, the number
    #: of users the accountant counts (N_users: every training user, and every audit canary as its
    #: own user, included or not) and the per-user cap k. None: the unit is one sequence.
    row_users: torch.Tensor | None = None
    num_users: int | None = None
    user_cap: int = 1
    #: Weights to start from instead of the seed's initialisation (the public model, see dpcore.training.pretrain):
    #: a state dict of the same model shape; it replaces the output bias above too. Public, so free.
    initial_state: dict[str, torch.Tensor] | None = None
    #: Tests only: seed the DP noise and Poisson sampling (to compare two engines draw for draw).
    #: None, the only value the trainer ever passes, draws them from the OS's CSPRNG.
    dp_randomness_seed: int | None = None
    #: Draw all DP randomness from the OS's CSPRNG (see :class:`~dpcore.privacy.noise.SecureNoise`);
    #: it cannot be seeded, so it excludes ``dp_randomness_seed``.
    secure_noise: bool = False


def secret_seed() -> int:
    """A fresh 63-bit seed from the OS's CSPRNG (``secrets``); callers must never store it."""
    return secrets.randbits(63)


def secret_generator(device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator nobody can replay: seeded from :func:`secret_seed`, seed not kept."""
    gen = torch.Generator(device=device)
    gen.manual_seed(secret_seed())
    return gen


def secure_poisson_loader(dataset: TensorDataset, sample_rate: float, source: NoiseSource) -> DataLoader:
    """Opacus's ``DPDataLoader`` at rate q, with each step's inclusion coins drawn from ``source``.

    The same batches (every row in independently with probability q, an empty batch kept as an
    empty tensor through Opacus's collate wrapper) and the same number of steps per pass, 1/q; only
    the coins differ: uniforms u < q from the CSPRNG (exact to 2⁻⁵³), never torch's generator.
    """
    from opacus.data_loader import wrap_collate_with_empty  # lazy: see poisson_loader
    from opacus.utils.uniform_sampler import UniformWithReplacementSampler
    from torch.utils.data._utils.collate import default_collate

    class _SourceSampler(UniformWithReplacementSampler):
        def __iter__(self) -> Iterator[list[int]]:
            for _ in range(self.steps):
                yield torch.nonzero(source.rand(self.num_samples) < self.sample_rate).flatten().tolist()

    first = dataset[0]
    collate = wrap_collate_with_empty(collate_fn=default_collate, sample_empty_shapes=[(0, *x.shape) for x in first],
                                      dtypes=[x.dtype for x in first])
    sampler = _SourceSampler(num_samples=len(dataset), sample_rate=sample_rate)
    # Its own generator only for the base seed every DataLoader iterator draws (unused without
    # workers), so that iterating never advances torch's global generator.
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, generator=torch.Generator())


class Engine(ABC):
    """Turns batches into updates of ``self.module``; evaluation uses :meth:`plain_model`."""

    #: "dp" (an accountant bounds ε), "none" (non-private baseline) or "no-guarantee" (naive).
    guarantee: str = "dp"

    def __init__(self, setup: EngineSetup) -> None:
        self.setup = setup
        self.device = setup.device
        if setup.secure_noise and setup.dp_randomness_seed is not None:
            raise ValueError("secure noise comes from the OS's CSPRNG and cannot be seeded")
        self._noise_gen: torch.Generator | None
        self._sample_gen: torch.Generator | None
        self._count_gen: torch.Generator | None
        if self.guarantee == "dp" and setup.secure_noise:
            self._noise_gen = self._sample_gen = self._count_gen = None  # nothing may fall back to torch's RNG
        elif self.guarantee == "dp" and setup.dp_randomness_seed is None:
            self._noise_gen = secret_generator(setup.device)
            self._sample_gen = secret_generator("cpu")
            self._count_gen = secret_generator(setup.device)
        else:
            base = setup.seed if setup.dp_randomness_seed is None else setup.dp_randomness_seed
            self._noise_gen = torch.Generator(device=setup.device).manual_seed(base + 1)
            self._sample_gen = torch.Generator().manual_seed(base + 2)
            self._count_gen = torch.Generator(device=setup.device).manual_seed(base + 3)
        self.noise: NoiseSource
        self.sampling: NoiseSource
        self.count_source: NoiseSource
        if self._noise_gen is None or self._sample_gen is None or self._count_gen is None:
            self.noise = self.sampling = self.count_source = SecureNoise()
        else:
            self.noise, self.sampling = TorchNoise(self._noise_gen), TorchNoise(self._sample_gen)
            self.count_source = TorchNoise(self._count_gen)
        self.model = build_model(setup.model_config, setup.seed)
        if setup.output_bias is not None:  # a public prior: no privacy cost, a much better start
            with torch.no_grad():
                self.model.head.bias.copy_(setup.output_bias.to(self.model.head.bias.dtype))
        if setup.initial_state is not None:  # pre-trained on public text: no privacy cost either
            self.model.load_state_dict(setup.initial_state)
        self.model = self.model.to(setup.device)

    #: The epoch's batches (a Poisson ``DPDataLoader`` for DP engines, a shuffled one otherwise),
    #: or, user-level, an endless :class:`~dpcore.training.engines.user_sampling.UserPoissonSampler`.
    loader: Iterable

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """An endless stream of ``(rows, groups)``: rows [b, T+1] (b may vary, and be 0 under
        Poisson) and, user-level, each row's user index within the batch (None: one row, one unit).

        ``engine.step(*next(engine.batches()))`` is one training step.
        """
        if isinstance(self.loader, UserPoissonSampler):
            for ub in self.loader:
                yield ub.rows, ub.groups
        while True:
            for (batch,) in self.loader:
                yield batch, None

    @abstractmethod
    def step(self, batch: torch.Tensor, groups: torch.Tensor | None = None) -> StepStats:
        """One optimizer step on ``batch``; with ``groups``, each user's rows are one unit."""

    @property
    @abstractmethod
    def module(self) -> nn.Module:
        """The module being trained (possibly wrapped by Opacus)."""

    def plain_model(self) -> GRULanguageModel:
        """A fused nn.GRU copy of the current weights, for fast evaluation and generation."""
        copy = GRULanguageModel(self.setup.model_config).to(self.device)
        state = plain_state_dict(self.module)
        # DPGRU's state dict carries nn.GRU's names *and* its cells' aliases; keep the former.
        copy.load_state_dict({key: state[key] for key in copy.state_dict()})
        copy.eval()
        return copy

    def poisson_loader(self) -> Iterable:
        """Opacus's Poisson loader at exactly the accounted rate q = 1/ceil(N/B) (checked here).

        Built like ``DPDataLoader.from_data_loader(DataLoader(dataset, batch_size=B))`` would, i.e.
        q = 1/len(loader), but from the accounted N (see ``EngineSetup.accounted_examples``).
        """
        setup = self.setup
        n = setup.accounted_examples if setup.accounted_examples is not None else len(setup.train)
        if n < len(setup.train):
            raise AssertionError(f"the accounted N ({n}) is smaller than the training set ({len(setup.train)})")
        q = 1.0 / len(DataLoader(range(n), batch_size=setup.batch_size))
        if setup.sample_rate is None or abs(q - setup.sample_rate) > 1e-12:
            raise AssertionError(f"Poisson sample rate {q} differs from the accounted {setup.sample_rate}")
        self.expected_batch_size = max(1, int(n * q))
        from opacus.data_loader import DPDataLoader  # lazy: Opacus costs ~1 s of start-up the fast engine skips

        if self._sample_gen is None:  # secure noise: the same sampler, drawing from the CSPRNG
            return secure_poisson_loader(TensorDataset(setup.train), q, self.sampling)
        return DPDataLoader(TensorDataset(setup.train), sample_rate=q, generator=self._sample_gen)

    def user_sampler(self) -> UserPoissonSampler:
        """User-level Poisson sampling at q = 1/ceil(N_users/B) (checked against the accounted q)."""
        setup = self.setup
        if setup.row_users is None or setup.num_users is None:
            raise AssertionError("user-level sampling needs each row's user and the accounted number of users")
        q = 1.0 / len(DataLoader(range(setup.num_users), batch_size=setup.batch_size))
        if setup.sample_rate is None or abs(q - setup.sample_rate) > 1e-12:
            raise AssertionError(f"Poisson sample rate {q} differs from the accounted {setup.sample_rate}")
        self.expected_batch_size = max(1, int(setup.num_users * q))  # expected users per step
        return UserPoissonSampler(setup.train, setup.row_users, setup.num_users, q, setup.user_cap,
                                  self.sampling)

    def dp_loader(self) -> Iterable:
        """The DP sampler the setup asks for: users (user-level) or sequences (example-level)."""
        return self.user_sampler() if self.setup.row_users is not None else self.poisson_loader()

    def noisy_clip_fraction(self, num_clipped: int) -> float | None:
        """The private fraction clipped: (count + N(0, σ_count²)) / expected batch (None: not offered)."""
        sigma_count = getattr(self, "count_noise", None)
        if sigma_count is None:
            return None
        return (num_clipped + self.count_source.gaussian_scalar(float(sigma_count))) / self.expected_batch_size

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        if self.setup.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.setup.lr, momentum=0.9)
        return torch.optim.Adam(params, lr=self.setup.lr)

    def batch_loss(self, module: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of each sequence's mean token loss, from a zero hidden state."""
        batch = batch.to(self.device, non_blocking=True)
        logits, _ = module(batch[:, :-1])
        return sequence_losses(logits, batch[:, 1:], self.setup.pad_id).mean()

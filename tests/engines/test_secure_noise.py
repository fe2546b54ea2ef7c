"""Secure noise: every DP draw from the OS's CSPRNG, with the right distribution, never from torch's RNG.

CSPRNG draws cannot be seeded, so the distribution tests are statistical: sample sizes and
thresholds are chosen so that a correct sampler fails with probability below about 1e-6 per check,
while a wrong scale (even 3 % off), a shift or a wrong family fails them.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from scipy import stats

from dpcore.config import TrainConfig
from dpcore.data.tokenizer import PAD_ID
from dpcore.privacy import accounting
from dpcore.privacy.noise import (
    SecureNoise,
    TorchNoise,
    secure_standard_laplace,
    secure_standard_normal,
    secure_uniform,
)
from dpcore.training.engines import EngineSetup, build_engine
from dpcore.training.engines.base import secure_poisson_loader
from dpcore.training.engines.user_sampling import UserPoissonSampler
from dpcore.training.loop import run_training
from dpcore.training.model import ModelConfig

KS_P_MIN = 1e-6  # a correct sampler fails a KS test with this probability


def _ks(sample: torch.Tensor, dist) -> float:
    return float(stats.kstest(sample.double().numpy(), dist.cdf).pvalue)


def test_secure_uniforms_are_53_bit_and_uniform():
    u = secure_uniform(200_000)
    assert u.dtype == torch.float64 and float(u.min()) >= 0.0 and float(u.max()) < 1.0
    assert torch.equal(u * 2.0**53, torch.round(u * 2.0**53))  # exact multiples of 2⁻⁵³
    assert _ks(u, stats.uniform()) > KS_P_MIN
    assert len(torch.unique(u)) == len(u)  # 53 bits: no collisions at this size (p ≈ 2e-6)


def test_secure_gaussian_has_the_standard_normal_distribution():
    z = secure_standard_normal(400_001)  # odd: one Box–Muller output of the last pair is dropped
    assert z.shape == (400_001,) and z.dtype == torch.float64
    assert abs(float(z.mean())) < 5.5 / math.sqrt(len(z))
    assert abs(float(z.var()) - 1.0) < 5.5 * math.sqrt(2 / len(z))
    assert _ks(z, stats.norm()) > KS_P_MIN
    assert _ks(z * 1.03, stats.norm()) < KS_P_MIN  # the test can tell a 3 % error in σ
    assert float(z.abs().max()) <= math.sqrt(2 * 53 * math.log(2)) + 1e-9  # the support's end, as documented


def test_secure_laplace_has_the_laplace_distribution():
    x = secure_standard_laplace(400_000)
    assert abs(float(x.mean())) < 5.5 * math.sqrt(2 / len(x))
    assert abs(float(x.var()) - 2.0) < 0.05  # Var = 2b²; the 4th moment 24 gives sd ≈ 0.007 here
    assert _ks(x, stats.laplace()) > KS_P_MIN
    assert _ks(x, stats.norm(scale=math.sqrt(2))) < KS_P_MIN  # same variance, wrong family: refused


def test_noise_is_added_in_float64_and_rounded_once_to_the_gradient_dtype():
    src = SecureNoise()
    x = torch.full((300_000,), 1000.0, dtype=torch.float32)
    y = src.add_gaussian(x, 0.5)
    assert y.dtype == torch.float32 and y.shape == x.shape
    noise = y.double() - 1000.0
    assert _ks(noise / 0.5, stats.norm()) > KS_P_MIN
    lap = src.add_laplace(torch.zeros(300_000, dtype=torch.float32), 2.0)
    assert lap.dtype == torch.float32 and _ks(lap / 2.0, stats.laplace()) > KS_P_MIN
    assert abs(src.gaussian_scalar(3.0)) < 3.0 * 8.6


def test_two_secure_sources_never_repeat_each_other():
    a, b = SecureNoise(), SecureNoise()
    assert not torch.equal(a.add_gaussian(torch.zeros(64), 1.0), b.add_gaussian(torch.zeros(64), 1.0))
    assert not torch.equal(a.rand(64), a.rand(64))


def test_torch_noise_draws_what_the_engines_drew_before():
    """The seeded path is unchanged, so the Opacus-versus-fast draw-for-draw tests still compare the same noise."""
    x = torch.randn(7, 5)
    got = TorchNoise(torch.Generator().manual_seed(3)).add_gaussian(x, 0.7)
    ref = x + torch.normal(mean=0, std=0.7, size=x.shape, generator=torch.Generator().manual_seed(3), dtype=x.dtype)
    assert torch.equal(got, ref)


def _setup(tiny_data, **kw) -> EngineSetup:
    train = tiny_data.train[:600]
    base = dict(train=train, model_config=ModelConfig(tiny_data.tokenizer.vocab_size, 4, 6, 1), pad_id=PAD_ID,
                batch_size=60, lr=0.0, optimizer="sgd", clip=1.0, noise_multiplier=1.5,
                sample_rate=accounting.sample_rate_for(len(train), 60), seed=0, device=torch.device("cpu"),
                secure_noise=True)
    return EngineSetup(**{**base, **kw})


@pytest.mark.parametrize("mechanism,engine,user_level", [("gaussian", "fast", False), ("gaussian", "fast", True),
                                                       ("gaussian", "opacus", False), ("laplace", "opacus", False)])
def test_a_secure_engine_never_touches_torchs_generator(tiny_data, mechanism, engine, user_level):
    kw = ({"row_users": torch.arange(600) // 3, "num_users": 200, "user_cap": 2, "batch_size": 150,
           "sample_rate": accounting.sample_rate_for(200, 150)} if user_level
          else {"batch_size": 400, "sample_rate": accounting.sample_rate_for(600, 400)})
    eng = build_engine(mechanism, engine, _setup(tiny_data, **kw))
    assert eng._noise_gen is None and eng._sample_gen is None and eng._count_gen is None
    assert isinstance(eng.noise, SecureNoise) and isinstance(eng.sampling, SecureNoise)
    batches = eng.batches()
    state = torch.get_rng_state()
    for _ in range(3):  # sampling, clipping, noise, the private count (fast, Gaussian) and the step
        eng.step(*next(batches))
    assert torch.equal(torch.get_rng_state(), state)


def test_secure_noise_cannot_be_seeded(tiny_data):
    with pytest.raises(ValueError, match="cannot be seeded"):
        build_engine("gaussian", "fast", _setup(tiny_data, dp_randomness_seed=0))


@pytest.mark.parametrize("engine", ["fast", "opacus"])
def test_a_secure_step_adds_the_accounted_gaussian_to_the_clipped_sum(tiny_data, engine):
    """The oracle: the noisy gradient minus the noiseless clipped sum is N(0, (σ_grad·C)²) per coordinate."""
    setup = _setup(tiny_data, model_config=ModelConfig(tiny_data.tokenizer.vocab_size, 16, 32, 1))
    eng = build_engine("gaussian", engine, setup)
    batch = tiny_data.train[:40]
    if engine == "fast":
        clipped = eng.clipped_sum(batch).grads
        eng.step(batch)
        params = dict(eng.model.named_parameters())
        noise = torch.cat([(params[k].grad * eng.expected_batch_size - clipped[k]).flatten() for k in clipped])
    else:
        eng.step(batch)
        noise = torch.cat([(p.grad * eng.expected_batch_size - p.summed_grad).flatten()
                           for p in eng.optimizer.params])
    std = eng.grad_noise_multiplier * setup.clip
    assert len(noise) > 8000
    assert _ks(noise / std, stats.norm()) > KS_P_MIN
    # the variance pins the scale: ±5.5 standard errors is ±8 % here, so 10 % more σ (21 % variance) fails
    assert abs(float((noise.double() / std).var()) - 1.0) < 5.5 * math.sqrt(2 / len(noise))


def test_a_secure_laplace_step_adds_laplace_of_the_accounted_scale(tiny_data):
    setup = _setup(tiny_data, noise_multiplier=3.0, clip=0.5,
                   model_config=ModelConfig(tiny_data.tokenizer.vocab_size, 16, 32, 1))
    eng = build_engine("laplace", "opacus", setup)
    eng.step(tiny_data.train[:40])
    noise = torch.cat([(p.grad * eng.expected_batch_size - p.summed_grad).flatten() for p in eng.optimizer.params])
    assert _ks(noise.double() / (3.0 * 0.5), stats.laplace()) > KS_P_MIN


def test_secure_poisson_sampling_includes_each_row_with_probability_q():
    n, q, steps = 500, 0.1, 400
    data = torch.arange(n).unsqueeze(1)
    loader = secure_poisson_loader(torch.utils.data.TensorDataset(data), q, SecureNoise())
    assert len(loader) == 10  # 1/q steps a pass, as Opacus's DPDataLoader
    hits = torch.zeros(n)
    sizes = []
    while len(sizes) < steps:
        for (batch,) in loader:
            hits[batch.flatten()] += 1
            sizes.append(len(batch))
    sizes_t = torch.tensor(sizes[:steps], dtype=torch.float64)
    assert abs(float(sizes_t.mean()) - n * q) < 5.5 * math.sqrt(n * q * (1 - q) / steps)
    assert stats.binomtest(int(hits.sum()), n * len(sizes), q).pvalue > KS_P_MIN


def test_secure_poisson_sampling_keeps_an_empty_batch_as_an_empty_tensor():
    data = torch.zeros(20, 9, dtype=torch.long)
    loader = secure_poisson_loader(torch.utils.data.TensorDataset(data), 1e-9, SecureNoise())
    (batch,) = next(iter(loader))
    assert batch.shape == (0, 9) and batch.dtype == torch.long


def test_secure_user_sampling_samples_users_at_rate_q():
    num_users, q = 300, 0.2
    users = torch.arange(num_users).repeat_interleave(3)
    train = torch.arange(len(users)).unsqueeze(1)
    sampler = UserPoissonSampler(train, users, num_users, q, 2, SecureNoise())
    drawn = [sampler.sample() for _ in range(200)]
    total = sum(b.num_users for b in drawn)
    assert stats.binomtest(total, num_users * 200, q).pvalue > KS_P_MIN
    assert all(len(b.rows) == 2 * b.num_users for b in drawn)  # cap 2 of each user's 3 rows


def test_two_secure_runs_differ_and_say_where_their_noise_came_from(tiny_data, tiny_config, tmp_path):
    from dpcore.training.checkpoint import load_checkpoint

    cfg = tiny_config.replace(secure_noise=True, num_samples=0, max_steps=3)
    run_training(cfg, tmp_path / "a", data=tiny_data)
    run_training(cfg, tmp_path / "b", data=tiny_data)
    wa, wb = (load_checkpoint(tmp_path / d / "model.pt").model.state_dict() for d in "ab")
    assert not all(torch.equal(wa[k], wb[k]) for k in wa)
    result = json.loads((tmp_path / "a" / "result.json").read_text())
    assert result["noise_source"] == SecureNoise.description and "CSPRNG" in result["noise_source"]
    plain = run_training(tiny_config.replace(secure_noise=False, num_samples=0, max_steps=1), tmp_path / "c",
                         data=tiny_data)
    assert plain.noise_source == TorchNoise.description
    assert run_training(tiny_config.replace(mechanism="none", num_samples=0, max_steps=1), tmp_path / "d",
                        data=tiny_data).noise_source is None


def test_secure_noise_is_a_config_field_on_every_surface():
    from dpcore.cli.args import add_train_arguments, config_from_args
    from dpcore.views.urlstate import config_to_params, params_to_config

    default = TrainConfig().secure_noise
    parser = __import__("argparse").ArgumentParser()
    add_train_arguments(parser)
    flag = "--no-secure-noise" if default else "--secure-noise"
    assert config_from_args(parser.parse_args([flag])).secure_noise is (not default)
    assert config_from_args(parser.parse_args([])).secure_noise is default
    flipped = TrainConfig(secure_noise=not default)
    assert params_to_config(config_to_params(flipped)).config.secure_noise is (not default)
    assert TrainConfig.from_dict({k: v for k, v in TrainConfig().to_dict().items()
                                  if k != "secure_noise"}).secure_noise is False  # stored runs predate it

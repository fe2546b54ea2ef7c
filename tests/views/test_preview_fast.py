"""The New run preview at slider speed: exact for RDP, provisional bounds for PRV/PLD, exact σ handed to launch."""

from __future__ import annotations

import threading

import pytest

from dpcore.config import TrainConfig
from dpcore.privacy import calcache
from dpcore.privacy.accounting import EpsilonCurve, compute_epsilon
from dpcore.privacy.plan import calibration_key, plan
from dpcore.runs import preview as pv
from dpcore.views.meaning import preview_delta_sentence, preview_epsilon_sentence

BASE = TrainConfig(mechanism="gaussian", epsilon=3.0, max_steps=60, batch_size=256, seq_len=32)


@pytest.fixture(autouse=True)
def _fresh():
    pv.clear_caches()
    yield
    pv.clear_caches()


def _summary(n: int) -> tuple[tuple[str, int], ...]:
    return tuple(sorted({"num_train_examples": n, "num_train_users": n}.items()))


def test_an_rdp_preview_is_the_runs_exact_sigma_and_curve():
    for eps in (0.7, 3.0, 9.5):
        config = BASE.replace(epsilon=eps)
        got = pv.check(config).preview
        assert not got.pending and got.noise_bound == ""
        p = plan(config, got.num_train)  # what the trainer computes at launch
        assert got.noise_multiplier == p.noise_multiplier
        expected = EpsilonCurve("gaussian", p.noise_multiplier, p.sample_rate, p.delta, "rdp",
                                p.steps).predicted(pv.CURVE_POINTS["rdp"])
        assert got.curve == expected and got.final_epsilon <= eps


def test_a_prv_preview_answers_at_once_with_a_bound_then_the_exact_one(monkeypatch):
    config = BASE.replace(accountant="prv", epsilon=2.5)
    release = threading.Event()
    real = pv._preview_cached

    def slow(c, items):
        release.wait(30)
        return real(c, items)

    monkeypatch.setattr(pv, "_preview_cached", slow)
    first = pv.check(config)
    assert not first.errors
    early = first.preview
    assert early.pending and early.curve == [] and early.noise_bound == "rdp"
    assert "ε = 2.5" in preview_epsilon_sentence(early, config) and preview_delta_sentence(early, config)
    assert not pv.exact_ready(config)
    release.set()
    pv._exact_job(config, tuple(sorted(pv.data_summary(config).items()))).result(timeout=120)
    assert pv.exact_ready(config)
    exact = pv.check(config).preview
    assert not exact.pending and exact.noise_bound == "" and exact.curve
    assert early.noise_multiplier >= exact.noise_multiplier  # the bound shown first was an upper bound
    assert exact.final_epsilon <= config.epsilon
    assert (early.sample_rate, early.steps, early.delta, early.num_train) == (
        exact.sample_rate, exact.steps, exact.delta, exact.num_train)


def test_a_laplace_preview_shows_no_bound_it_cannot_defend():
    config = BASE.replace(mechanism="laplace", accountant="pld", engine="opacus", epsilon=8.0)
    early = pv._provisional(config, _summary(4000))
    assert early.pending and early.noise_multiplier is None and early.curve == []


def test_a_dropped_background_preview_is_started_again(monkeypatch):
    config = BASE.replace(accountant="pld", epsilon=2.0)
    items = tuple(sorted(pv.data_summary(config).items()))
    job = pv._exact_job(config, items)
    job.cancel()
    with pv._pending_lock:
        pv._exact_jobs.pop((config, items), None)
    assert pv._exact_job(config, items).result(timeout=120).noise_multiplier > 0


GRID = [  # accountant, ε, N, B (q = B/N), steps, δ
    (acct, eps, n, b, steps, delta)
    for acct in ("pld",)
    for eps in (0.5, 8.0)
    for n, b in ((10_000, 100), (1_000, 200))
    for steps, delta in ((100, 1e-5), (1000, 1e-7))
] + [("prv", eps, n, b, 300, 1e-5) for eps in (1.0, 8.0) for n, b in ((10_000, 200), (1_000, 200))]


@pytest.mark.parametrize("accountant,eps,n,b,steps,delta", GRID)
def test_the_provisional_sigma_is_an_upper_bound_close_to_the_exact_one(accountant, eps, n, b, steps, delta):
    """The σ a PRV/PLD preview shows first is ≥ the σ the run gets and meets ε with the tight accountant
    too; it is 4–10 % above the exact one, up to 27 % for a small ε over few steps (ε = 0.5, q = 0.01,
    100 steps). The ε it states (the target) is ≥ the run's."""
    config = BASE.replace(accountant=accountant, epsilon=eps, batch_size=b, max_steps=steps, delta=delta)
    early = pv._provisional(config, _summary(n))
    p = plan(config, n)
    exact = p.noise_multiplier
    assert early.noise_bound == "rdp"
    assert exact <= early.noise_multiplier <= 1.3 * exact
    assert compute_epsilon("gaussian", early.noise_multiplier, p.sample_rate, steps, delta, accountant) <= eps
    assert compute_epsilon("gaussian", exact, p.sample_rate, steps, delta, accountant) <= eps
    for t in (1, steps // 3, steps):  # RDP at a σ bounds the tight accountant at that σ, at every step
        assert compute_epsilon("gaussian", exact, p.sample_rate, t, delta, "rdp") >= compute_epsilon(
            "gaussian", exact, p.sample_rate, t, delta, accountant)


def test_launch_hands_the_sigma_to_the_worker(tmp_path, monkeypatch):
    config = BASE.replace(epsilon=2.2)
    shown = pv.check(config).preview
    pv.prepare_launch(config, tmp_path)
    p = plan(config, shown.num_train)
    key = calibration_key(config, p.sample_rate, p.steps, p.delta)
    calcache.clear_memory()  # the worker: another process
    calcache.use_folder(calcache.folder_in(tmp_path))
    try:
        monkeypatch.setattr(calcache, "calibrate_noise", lambda *a, **k: pytest.fail("calibrated again"))
        assert calcache.calibrated_noise(key) == shown.noise_multiplier
    finally:
        calcache.use_folder(None)


def test_launch_of_a_pld_run_stores_sigma_once_it_is_computed(tmp_path):
    config = BASE.replace(accountant="pld", epsilon=2.7)
    pv.check(config)  # provisional; the exact preview computes in the background
    pv.prepare_launch(config, tmp_path)
    items = tuple(sorted(pv.data_summary(config).items()))
    exact = pv._exact_job(config, items).result(timeout=120)
    folder = calcache.folder_in(tmp_path)
    for _ in range(100):  # the done-callback runs right after the result is set
        if list(folder.glob("*.json")):
            break
        threading.Event().wait(0.02)
    (path,) = folder.glob("*.json")
    assert path.read_text().count(repr(exact.noise_multiplier)) == 1

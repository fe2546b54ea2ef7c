"""User-level runs end to end: every engine, and a .txt upload where each line is its own user."""

from __future__ import annotations

import pytest

from dpcore.config import TrainConfig
from dpcore.data import build_lm_data
from dpcore.data.upload import load_corpus_bytes
from dpcore.training.loop import run_training


@pytest.mark.parametrize("mechanism,engine,accountant", [
    ("gaussian", "fast", "rdp"), ("gaussian", "opacus", "rdp"), ("laplace", "opacus", "pld")])
def test_tiny_user_level_run_per_engine(tiny_data, tiny_config, tmp_path, mechanism, engine, accountant):
    config = tiny_config.replace(mechanism=mechanism, engine=engine, accountant=accountant, unit="user",
                                 user_cap=2, batch_size=8, max_steps=3, num_samples=0)
    result = run_training(config, tmp_path, data=tiny_data)
    users = len(tiny_data.train_users)
    assert result.unit == "user" and result.user_cap == 2
    assert result.num_accounted_users == users
    assert result.sample_rate == pytest.approx(1 / -(-users // 8))  # q over users: 1/ceil(N_users/B)
    assert result.expected_batch_size == int(users * result.sample_rate)
    assert 0 < result.epsilon <= config.epsilon
    assert "user" in result.privacy_unit and "one user" in result.neighbours


def test_a_txt_upload_trains_user_level_with_one_user_per_line(tmp_path):
    lines = [f"line {i}: the weather in town number {i % 17} was mild and dry today" for i in range(300)]
    corpus = load_corpus_bytes("\n".join(lines).encode(), "notes.txt")
    assert corpus.metadata["user_grouping"] == "each line" and len(corpus.users()) == 300
    data = build_lm_data(corpus, seq_len=16)
    assert len(set(data.train_example_users)) == len(data.train_users)  # every line gave a window
    assert len(data.train) > len(data.train_users)  # lines are longer than one window: several per user
    config = TrainConfig(seq_len=16, embed_dim=8, hidden_size=16, batch_size=16, max_steps=2, num_samples=0,
                         eval_every=2, unit="user")
    result = run_training(config, tmp_path, data=data)
    assert result.num_accounted_users == len(data.train_users) == result.num_train_users
    assert result.sample_rate == pytest.approx(1 / -(-len(data.train_users) // 16))


def test_a_user_level_runs_epsilon_is_dp_accountings_at_the_user_sampling_rate(tiny_data, tiny_config, tmp_path):
    """ε from the run's accountant (PLD) equals dp-accounting's for q = 1/ceil(N_users/B), σ and the steps run."""
    import dp_accounting as dpa
    from dp_accounting import pld

    config = tiny_config.replace(unit="user", accountant="pld", batch_size=8, max_steps=4, num_samples=0,
                                 epsilon=2.0)
    result = run_training(config, tmp_path, data=tiny_data)
    users = len(tiny_data.train_users)
    q = 1 / -(-users // 8)
    assert result.sample_rate == pytest.approx(q)
    event = dpa.SelfComposedDpEvent(dpa.PoissonSampledDpEvent(q, dpa.GaussianDpEvent(result.noise_multiplier)),
                                    result.steps)
    assert result.epsilon == pytest.approx(pld.PLDAccountant().compose(event).get_epsilon(result.delta),
                                              rel=1e-6)
    assert result.delta < 1 / users

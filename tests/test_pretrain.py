"""The public model: built once, cached by what determines it, a free start for private runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from dpcore.cli.main import main
from dpcore.config import TrainConfig
from dpcore.data import Corpus, Record, build_lm_data
from dpcore.data.prior import public_log_prior
from dpcore.data.tokenizer import PAD_ID
from dpcore.errors import CheckpointError
from dpcore.events import RecordingCallbacks, RunInfo
from dpcore.paths import ENV_DATA_DIR
from dpcore.training import pretrain
from dpcore.training.engines import EngineSetup, build_engine
from dpcore.training.loop import evaluate, run_training
from dpcore.training.model import ModelConfig
from dpcore.training.result import RunResult
from dpcore.views.disclosure import released_quantities
from dpcore.views.meaning import public_start_sentence

#: A tiny model (the conftest's tiny_config shape) and a short pre-training, so a build takes a second.
TINY = TrainConfig(seq_len=16, embed_dim=8, hidden_size=16, batch_size=32, max_steps=4, eval_every=2,
                   num_samples=0, lr=0.01, device="cpu", unit="sequence")


@pytest.fixture(autouse=True)
def short_recipe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setattr(pretrain, "STEPS", 150)
    monkeypatch.setattr(pretrain, "BATCH_SIZE", 64)
    monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path / "data"))
    return tmp_path / "data"


class StatusCallbacks(RecordingCallbacks):
    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[str] = []

    def on_status(self, text: str) -> None:
        self.statuses.append(text)


def test_the_cached_model_is_reused_and_a_key_change_rebuilds_it(monkeypatch: pytest.MonkeyPatch,
                                                                short_recipe: Path) -> None:
    first = pretrain.ensure_public_model(TINY)
    assert first.built and first.checkpoint.is_file()
    assert first.path == short_recipe / pretrain.FOLDER / first.spec.key()
    assert first.info["epsilon"] == 0.0 and first.info["key"] == first.spec.key()
    stamp = first.checkpoint.stat().st_mtime_ns

    def no_training(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the cached public model was trained again")

    monkeypatch.setattr(pretrain, "_build", no_training)
    again = pretrain.ensure_public_model(TINY.replace(seed=7, epsilon=1.0, builtin_users=400, dropout=0.1))
    assert not again.built and again.path == first.path and again.checkpoint.stat().st_mtime_ns == stamp
    with pytest.raises(AssertionError, match="trained again"):  # a different shape is a different model
        pretrain.ensure_public_model(TINY.replace(hidden_size=24))
    monkeypatch.setattr(pretrain, "STEPS", 151)  # so is a different recipe
    with pytest.raises(AssertionError, match="trained again"):
        pretrain.ensure_public_model(TINY)


def test_every_determining_setting_changes_the_key() -> None:
    base = pretrain.public_spec(TINY).key()
    for change in ({"hidden_size": 24}, {"embed_dim": 4}, {"num_layers": 2}, {"seq_len": 20},
                   {"tokenizer": "word"}, {"corpus": "/some/upload.txt"}):
        assert pretrain.public_spec(TINY.replace(**change)).key() != base, change
    for same in ({"seed": 3}, {"epsilon": 1.0}, {"builtin_users": 400}, {"mechanism": "none"}, {"lr": 0.1}):
        assert pretrain.public_spec(TINY.replace(**same)).key() == base, same


def test_a_public_start_changes_nothing_in_the_accounting(tiny_data, tmp_path: Path) -> None:
    results = {init: run_training(TINY.replace(init=init), tmp_path / init, data=tiny_data)
               for init in ("scratch", "public")}
    keys = ("noise_multiplier", "sample_rate", "steps", "epsilon", "delta", "accountant", "expected_batch_size",
            "epsilon_replace_one", "num_accounted_examples")
    assert {k: getattr(results["scratch"], k) for k in keys} == {k: getattr(results["public"], k) for k in keys}
    assert results["public"].epsilon is not None
    assert results["scratch"].public_model is None and results["public"].public_model["epsilon"] == 0.0


def test_a_public_start_begins_at_a_lower_validation_loss(tiny_data) -> None:
    torch.manual_seed(0)
    config = TINY.replace(init="public")
    model_cfg = ModelConfig(tiny_data.tokenizer.vocab_size, config.embed_dim, config.hidden_size,
                            config.num_layers, config.dropout)
    state, _ = pretrain.load_public_state(config, tiny_data, model_cfg)

    def step0_loss(initial_state: dict[str, torch.Tensor] | None) -> float:
        engine = build_engine("gaussian", "fast", EngineSetup(  # what run_training builds, before any step
            train=tiny_data.train, model_config=model_cfg, pad_id=PAD_ID, batch_size=32, lr=0.01, optimizer="adam",
            clip=1.0, noise_multiplier=1.0, sample_rate=1 / math.ceil(len(tiny_data.train) / 32), seed=0,
            device=torch.device("cpu"), output_bias=torch.tensor(public_log_prior(tiny_data.tokenizer)),
            initial_state=initial_state, dp_randomness_seed=0))
        return evaluate(engine.plain_model(), tiny_data.val, torch.device("cpu"))

    scratch, public = step0_loss(None), step0_loss(state)
    assert public < scratch - 0.2, (public, scratch)


def test_a_run_that_needs_a_missing_public_model_builds_it_and_says_so(tiny_data, tmp_path: Path,
                                                                     short_recipe: Path) -> None:
    callbacks = StatusCallbacks()
    result = run_training(TINY.replace(init="public"), tmp_path / "run", data=tiny_data, callbacks=callbacks)
    assert callbacks.statuses[0].startswith("Building the public model first")
    assert "Public model ready" in callbacks.statuses[-1]
    assert result.init == "public" and result.public_model["built_for_this_run"] is True
    assert (short_recipe / pretrain.FOLDER / result.public_model["key"] / "model.pt").is_file()
    written = json.loads((tmp_path / "run" / "result.json").read_text())
    assert written["public_model"]["corpus"].startswith("4,000 other synthetic people")
    callbacks = StatusCallbacks()  # the next run finds it: nothing to announce
    again = run_training(TINY.replace(init="public"), tmp_path / "again", data=tiny_data, callbacks=callbacks)
    assert callbacks.statuses == [] and again.public_model["built_for_this_run"] is False


def test_a_public_model_of_another_vocabulary_is_refused_not_replaced_by_random_weights(tiny_data) -> None:
    upload = Corpus("notes.txt", [Record(f"line-{i}", f"note number {i} about the weather") for i in range(40)], [],
                    {"source": "upload"})
    data = build_lm_data(upload, seq_len=16)  # UTF-8 bytes, not the built-in generator's alphabet
    config = TINY.replace(init="public")  # corpus "builtin": its public model speaks the generator's alphabet
    with pytest.raises(CheckpointError, match="vocabulary differs"):
        pretrain.load_public_state(config, data, ModelConfig(data.tokenizer.vocab_size, 8, 16, 1, 0.0))


def test_the_cli_builds_once_then_reuses_and_force_rebuilds(capsys: pytest.CaptureFixture[str],
                                                            tmp_path: Path) -> None:
    args = ["pretrain", "--seq-len", "16", "--embed-dim", "8", "--hidden-size", "16", "--device", "cpu",
            "--data-dir", str(tmp_path / "cli")]
    assert main(args) == 0
    out, err = capsys.readouterr()
    first = json.loads(out)
    assert first["built"] is True and first["epsilon"] == 0.0 and "Building the public model" in err
    assert Path(first["path"]).parent == (tmp_path / "cli" / pretrain.FOLDER).resolve()
    assert first["val_perplexity"] > 1.0
    assert main([*args, "--quiet"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["built"] is False and second["key"] == first["key"]
    assert main([*args, "--quiet", "--force"]) == 0
    assert json.loads(capsys.readouterr().out)["built"] is True


def test_the_statement_says_what_is_public_and_that_it_costs_no_epsilon() -> None:
    class Run:
        owner = "me"
        guarantee = "dp"
        config = {**TINY.replace(init="public").to_dict()}
        result = RunResult.from_dict({"public_model": {"corpus": "English prose from the Python Language Reference"}})
        info = RunInfo.empty()

    sentence = public_start_sentence(Run.config, Run.result)
    assert "English prose from the Python Language Reference" in sentence and "costs no ε" in sentence
    starts = [r for r in released_quantities(Run) if r.what.startswith("the starting weights")]
    assert len(starts) == 1 and starts[0].covered and "costs no ε" in starts[0].why
    Run.config = TINY.to_dict()
    assert public_start_sentence(Run.config) == ""
    assert not [r for r in released_quantities(Run) if r.what.startswith("the starting weights")]

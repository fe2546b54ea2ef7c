"""RunResult and RunInfo: typed, and they write back exactly the JSON they read (today's files and older ones)."""

from __future__ import annotations

import json
from dataclasses import replace

from dpcore.events import RecordingCallbacks, RunInfo
from dpcore.training.checkpoint import load_checkpoint
from dpcore.training.loop import run_training
from dpcore.training.result import RunResult, as_result


def test_a_real_result_json_round_trips_exactly(tiny_data, tiny_config, tmp_path):
    rec = RecordingCallbacks()
    result = run_training(tiny_config, tmp_path, callbacks=rec, data=tiny_data)
    text = (tmp_path / "result.json").read_text(encoding="utf-8")
    on_disk = json.loads(text)
    assert isinstance(result, RunResult)
    assert result.to_dict() == on_disk
    loaded = RunResult.from_dict(on_disk)
    assert loaded == result and loaded.to_dict() == on_disk and loaded.extra == {} and not loaded.missing
    assert json.dumps(loaded.to_dict(), indent=2, ensure_ascii=False) + "\n" == text  # same keys, same order
    assert list(on_disk) == list(RunResult.keys())[:len(on_disk)]  # written in the fields' order
    assert "num_audit_canaries" not in on_disk and "audit" not in on_disk  # only an audited run has them
    ckpt = load_checkpoint(tmp_path / "model.pt")
    assert ckpt.result.to_dict() == {k: v for k, v in on_disk.items() if k != "config"}
    assert ckpt.result.config is None and not ckpt.result.has("config")
    info = rec.info.to_dict()
    assert RunInfo.from_dict(info) == rec.info and RunInfo.from_dict(info).to_dict() == info
    assert "status_text" not in info


def test_a_legacy_result_with_keys_missing_loads_and_keeps_what_it_had():
    legacy = {"mechanism": "gaussian", "epsilon": 2.5, "delta": 1e-5, "steps": 10, "samples": ["hi"],
              "an_old_key": {"kept": True}}
    result = RunResult.from_dict(legacy)
    assert result.epsilon == 2.5 and result.steps == 10 and result.samples == ["hi"]
    assert result.planned_steps is None and result.epsilon_replace_one is None and result.audit is None
    assert not result.has("planned_steps") and result.has("epsilon")
    assert result.extra == {"an_old_key": {"kept": True}}
    assert result.to_dict() == legacy  # nothing added, nothing lost
    assert replace(result, epsilon=None).to_dict() == {**legacy, "epsilon": None}
    assert replace(result, planned_steps=12).to_dict() == {**legacy, "planned_steps": 12}  # given a value: written
    assert RunResult.empty().to_dict() == {} and as_result(legacy) == result and as_result(None) is None


def test_an_audited_result_keeps_its_audit_keys():
    audited = {"mechanism": "gaussian", "stopped": False, "num_audit_canaries": 64, "audit": {"auc": 0.5}}
    result = RunResult.from_dict(audited)
    assert result.num_audit_canaries == 64 and result.audit == {"auc": 0.5}
    assert result.to_dict() == audited
    stopped = {"mechanism": "gaussian", "stopped": True, "num_audit_canaries": 64}  # a stopped run: no audit
    assert RunResult.from_dict(stopped).to_dict() == stopped


def test_run_info_before_the_first_step_is_only_its_status_text():
    early = RunInfo.from_dict({"status_text": "building the public model"})
    assert early.status_text == "building the public model" and early.total_steps is None
    assert early.to_dict() == {"status_text": "building the public model"}
    assert replace(RunInfo.empty(), status_text="x").to_dict() == {"status_text": "x"}


def test_a_stored_run_reads_typed_records_and_writes_the_same_json(tmp_path, tiny_config):
    from dpcore.runs.store import RunStore

    store = RunStore(tmp_path)
    run_id = store.create_run("owner", tiny_config.to_dict())
    with store.transaction() as conn:
        store.claim_run(conn, run_id, host="h", pid=1, pid_ident=None)
    assert store.get_run(run_id).info is None and store.get_run(run_id).to_dict()["info"] is None
    store.set_run_info(run_id, {"status_text": "building"})
    assert store.get_run(run_id).info.status_text == "building"
    info = {"total_steps": 5, "num_train_examples": 10, "num_val_examples": 2, "vocab_size": 30, "num_parameters": 9,
            "sample_rate": 0.5, "noise_multiplier": 1.0, "delta": 1e-5, "device": "cpu", "privacy_unit": "x",
            "guarantee": "dp"}
    store.set_run_info(run_id, info)
    legacy = {"mechanism": "gaussian", "guarantee": "dp", "epsilon": 1.5, "stopped": False, "old_key": [1, 2]}
    store.finish_run(run_id, "finished", result=legacy)
    run = store.get_run(run_id)
    assert isinstance(run.info, RunInfo) and run.info.total_steps == 5 and run.total_steps == 5
    assert isinstance(run.result, RunResult) and run.result.epsilon == 1.5 and run.result.extra == {"old_key": [1, 2]}
    shown = run.to_dict()
    assert shown["info"] == info and shown["result"] == legacy
    assert type(run)(**shown) == run  # a Run rebuilt from its JSON reads the same records

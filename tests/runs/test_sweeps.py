"""Frontier sweeps: the grid (ε alone changes), all-or-nothing submit, the sweep record, and the CLI.

These run through the local executor with a quick stand-in trainer (tests/sweep_training.py); the
same sweep on Ray, opened on Compare, is tests/app/test_app_sweep.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dpcore.cli import main
from dpcore.cli import runs as runs_cli
from dpcore.config import TrainConfig
from dpcore.errors import DPCoreError
from dpcore.runs.executors.local import LocalExecutor
from dpcore.runs.limits import ServerLimits
from dpcore.runs.store import QuotaExceeded, RunStore
from dpcore.runs.sweeps import list_sweeps, load_sweep, parse_epsilons, submit_sweep, sweep_configs

TRAINER = f"{Path(__file__).parents[1] / 'sweep_training.py'}:run_training"
BASE = TrainConfig(mechanism="gaussian", epsilon=3.0, seq_len=16, embed_dim=8, hidden_size=16, batch_size=32,
                   max_steps=4, eval_every=4, num_samples=0, lr=0.02)


@pytest.fixture
def executor(store: RunStore):
    return LocalExecutor(store, 2, gpus=[], train_fn=TRAINER, grace_s=5)


def test_epsilon_lists_are_read_sorted_and_checked() -> None:
    assert parse_epsilons("8, 0.5,1;2 4 4") == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert parse_epsilons([2, 1]) == [1.0, 2.0]
    for bad, message in (("1, x", "'x' is not a number"), ("0", "above 0 and at most 1000"),
                         ("1e9", "above 0 and at most 1000"), (" , ", "at least one ε"),
                         (",".join(str(i) for i in range(1, 14)), "at most 12 ε values")):
        with pytest.raises(DPCoreError, match=message):
            parse_epsilons(bad)


def test_a_sweep_changes_epsilon_alone_and_adds_the_baseline() -> None:
    configs = sweep_configs(BASE, [4, 1], with_baseline=True)
    assert [(c.mechanism, c.epsilon) for c in configs[:2]] == [("gaussian", 1.0), ("gaussian", 4.0)]
    assert configs[0].replace(epsilon=4.0) == configs[1] and configs[0].replace(epsilon=3.0) == BASE
    baseline = configs[2]
    assert baseline.mechanism == "none"
    for key in ("corpus", "seq_len", "hidden_size", "embed_dim", "batch_size", "max_steps", "lr", "seed"):
        assert getattr(baseline, key) == getattr(BASE, key)
    assert len(sweep_configs(BASE, [1])) == 1
    with pytest.raises(DPCoreError, match="a sweep over ε needs a private mechanism"):
        sweep_configs(BASE.replace(mechanism="none"), [1, 2])


def test_a_sweep_runs_to_the_end_and_is_recorded(executor: LocalExecutor) -> None:
    sweep = submit_sweep(executor, "alice", BASE, [1, 2, 4], with_baseline=True)
    assert len(sweep.run_ids) == 4 and sweep.epsilons == (1.0, 2.0, 4.0) and sweep.baseline
    runs = [executor.wait(i, timeout=90, poll_s=0.1) for i in sweep.run_ids]
    assert [r.status for r in runs] == ["finished"] * 4, [r.error for r in runs]
    assert [r.result.val_perplexity for r in runs] == pytest.approx([15.0, 10.0, 7.5, 4.0])
    store = executor.store
    record = store.data_dir / "sweeps" / f"{sweep.id}.json"
    assert oct(os.stat(record).st_mode & 0o777) == "0o600"
    assert load_sweep(store, sweep.id, "alice") == sweep
    assert [s.id for s in list_sweeps(store, "alice")] == [sweep.id] and list_sweeps(store, "bob") == []
    with pytest.raises(DPCoreError, match="no sweep with id"):
        load_sweep(store, sweep.id, "bob")  # another owner's sweep looks exactly like an unknown one
    with pytest.raises(DPCoreError, match="is not a sweep id"):
        load_sweep(store, "../../etc/passwd")
    store.delete_run(sweep.run_ids[0], "alice")
    assert load_sweep(store, sweep.id).run_ids == sweep.run_ids[1:]  # a deleted run drops out


def test_a_sweep_is_refused_whole_when_it_does_not_fit(store: RunStore) -> None:
    limits = ServerLimits(max_active_per_owner=1, max_queued_per_owner=2, max_total_steps=100)
    ex = LocalExecutor(store, 1, gpus=[], train_fn=TRAINER, limits=limits)
    with pytest.raises(QuotaExceeded, match="this sweep has 4 runs, but this server lets one person have 3"):
        submit_sweep(ex, "alice", BASE, [1, 2, 4], with_baseline=True)
    with pytest.raises(DPCoreError, match="this server allows at most 100"):
        submit_sweep(ex, "alice", BASE.replace(max_steps=500), [1, 2])
    assert store.list_runs("alice") == []  # nothing half-launched
    assert not (store.data_dir / "sweeps").exists()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    monkeypatch.setenv("DPCORE_HEARTBEAT_S", "0.5")
    monkeypatch.setattr(runs_cli, "_executor",
                        lambda args: LocalExecutor(RunStore(args.data_dir), 2, gpus=[], train_fn=TRAINER, grace_s=5))
    data = str(tmp_path / "cli")

    def call(*argv: str) -> tuple[int, str, str]:
        code = main([*argv, "--data-dir", data])
        out, err = capsys.readouterr()
        return code, out, err

    return call


def test_runs_sweep_on_the_command_line(cli) -> None:
    code, out, err = cli("runs", "sweep", "--epsilon", "2,0.5", "--with-baseline", "--max-steps", "4",
                         "--hidden-size", "16", "--embed-dim", "8", "--seq-len", "16", "--wait")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("sweep ") and lines[0].endswith(": 3 runs (2 at a time)")
    assert [line.split(maxsplit=1)[1] for line in lines[1:4]] == ["gaussian ε=0.5", "gaussian ε=2",
                                                                  "none (no privacy)"]
    ids = [line.split()[0] for line in lines[1:4]]
    assert lines[4] == f"compare them on the dashboard: /compare?runs={','.join(ids)}"
    assert "val perplexity 25.000" in out and "val perplexity 4.000" in out and out.count("finished") == 3
    code, _, err = cli("runs", "sweep", "--epsilon", "1,nope")
    assert code == 2 and "'nope' is not a number" in err
    code, _, err = cli("runs", "sweep", "--epsilon", "1", "--mechanism", "none")
    assert code == 2 and "needs a private mechanism" in err
    code, _, err = cli("runs", "list", "--executor", "slurm")
    assert code == 2 and "invalid choice: 'slurm'" in err

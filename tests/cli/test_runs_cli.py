"""``python -m dpcore runs ...``: output contract, exit codes, and one real end-to-end run.

Most tests call the handlers in-process through the real parser (fast), with the executor
pointed at the fake trainer; the subprocess tests pin the ``python -m dpcore`` contract itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dpcore.cli import main
from dpcore.cli import runs as runs_cli
from dpcore.paths import cli_owner
from dpcore.runs.executors.local import LocalExecutor, process_alive
from dpcore.runs.store import RunStore

ROOT = Path(__file__).resolve().parents[2]
FAKE = f"{Path(__file__).parents[1] / 'fake_training.py'}:run_training"
TINY = ["--mechanism", "none", "--batch-size", "16", "--hidden-size", "16", "--embed-dim", "8",
        "--seq-len", "16", "--eval-every", "1000000", "--num-samples", "0"]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """``cli(*argv) -> (exit code, stdout, stderr)`` with runs kept in tmp_path."""
    monkeypatch.setenv("DPCORE_HEARTBEAT_S", "0.5")
    monkeypatch.setattr(
        runs_cli, "_executor",
        lambda args: LocalExecutor(RunStore(args.data_dir), 2, gpus=[], train_fn=FAKE, grace_s=5),
    )
    data = str(tmp_path / "data")

    def call(*argv: str) -> tuple[int, str, str]:
        code = main([*argv, "--data-dir", data])
        out, err = capsys.readouterr()
        return code, out, err

    yield call
    for run in RunStore(data).list_runs(status="running"):
        if process_alive(run.pid, run.pid_ident):
            os.killpg(run.pid, 9)


def _submit(cli, *extra: str) -> str:
    code, out, _ = cli("runs", "submit", *TINY, *extra)
    assert code == 0
    return out.strip().splitlines()[-1]


def test_submit_wait_show_list(cli) -> None:
    run_id = _submit(cli, "--max-steps", "6")
    assert cli("runs", "wait", run_id, "--timeout", "90")[:2] == (0, f"run {run_id}: finished\n")
    code, out, _ = cli("runs", "show", run_id, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["status"] == "finished" and shown["error"] is None and shown["pid"]
    assert shown["metric_rows"] == 6 and shown["latest_metrics"]["step"] == 6
    assert shown["config"]["max_steps"] == 6 and "checkpoint" in shown["artifacts"]
    code, out, _ = cli("runs", "show", run_id)
    assert code == 0 and "finished" in out and "6 rows" in out
    code, out, _ = cli("runs", "list", "--json")
    assert [r["id"] for r in json.loads(out)] == [run_id]
    assert json.loads(cli("runs", "list", "--json", "--owner", "someone-else")[1]) == []
    assert run_id in cli("runs", "list", "--all-owners", "--owner", "someone-else")[1]


def test_cancel_and_wait_timeout(cli) -> None:
    run_id = _submit(cli, "--max-steps", "10000", "--sample-prompt", "step_s=0.05")
    code, out, _ = cli("runs", "wait", run_id, "--timeout", "0.5")
    assert code == runs_cli.EXIT_TIMEOUT and "still running" in out
    code, out, _ = cli("runs", "cancel", run_id)
    assert code == 0 and out == f"run {run_id}: cancelled\n"
    assert cli("runs", "wait", run_id)[0] == 1
    assert "already cancelled" in cli("runs", "cancel", run_id)[1]


@pytest.mark.parametrize("command", ["show", "cancel", "wait"])
def test_unknown_id_is_one_line_exit_2(cli, command: str) -> None:
    code, out, err = cli("runs", command, "nope")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "no run with id 'nope'" in err


def _dpcore(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "dpcore", *argv], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)


def test_python_m_dpcore_contract(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    proc = _dpcore("runs", "show", "nope", "--data-dir", data)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "nope" in proc.stderr
    proc = _dpcore("runs", "wait", "--timeout", "soon", "x", "--data-dir", data)
    assert proc.returncode == 2


def test_end_to_end_real_training(tmp_path: Path) -> None:
    """A real (tiny) run through ``python -m dpcore``: submit, wait, show."""
    pytest.importorskip("dpcore.training.loop")
    data = str(tmp_path / "data")
    start = time.monotonic()
    proc = _dpcore("runs", "submit", *TINY, "--max-steps", "20", "--data-dir", data)
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.strip().splitlines()[-1]
    proc = _dpcore("runs", "wait", run_id, "--timeout", "240", "--data-dir", data, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shown = json.loads(_dpcore("runs", "show", run_id, "--json", "--data-dir", data).stdout)
    assert shown["status"] == "finished" and shown["metric_rows"] == 20
    assert shown["device"] and shown["result"]["stopped"] is False
    print(f"end to end: {time.monotonic() - start:.1f} s")


def test_delete_uploads_and_delete_upload(cli, tmp_path: Path) -> None:
    store = RunStore(tmp_path / "data")
    upload = store.save_upload(cli_owner(), "notes.txt", b"some private text\n" * 100)
    code, out, _ = cli("runs", "uploads")
    assert code == 0 and upload.id in out and "notes.txt" in out and "1.8 KB" in out and "disk used" in out
    running = _submit(cli, "--max-steps", "10000", "--sample-prompt", "step_s=0.05")
    code, out, err = cli("runs", "delete", running)
    assert code == 2 and out == "" and err.count("\n") == 1 and "still running: cancel it" in err
    assert cli("runs", "cancel", running)[0] == 0
    assert cli("runs", "delete", running)[:2] == (0, f"deleted run {running}\n")
    assert cli("runs", "show", running)[0] == 2
    on_upload = store.create_run(cli_owner(), {**store.get_run(_submit(cli, "--max-steps", "3")).config,
                                               "corpus": upload.path})
    store.request_cancel(on_upload)  # ended: it may go with its file
    rows = json.loads(cli("runs", "uploads", "--json")[1])
    assert [(r["id"], r["runs"]) for r in rows] == [(upload.id, [on_upload])]
    code, out, _ = cli("runs", "delete-upload", upload.id, "--with-runs")
    assert code == 0 and f"deleted upload {upload.id} (notes.txt) and 1 run(s): {on_upload}" in out
    assert cli("runs", "uploads")[1].startswith("no uploads")
    code, _, err = cli("runs", "delete-upload", upload.id)
    assert code == 2 and err.count("\n") == 1 and "no uploaded corpus" in err


def test_limit_errors_are_one_line_exit_2(cli) -> None:
    ids = [_submit(cli, "--max-steps", "10000", "--sample-prompt", "step_s=0.05") for _ in range(5)]
    code, out, err = cli("runs", "submit", *TINY, "--max-steps", "5")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "you already have 5 runs queued or running, the most this server allows one person (5)" in err
    code, _, err = cli("runs", "submit", *TINY, "--max-steps", "50000")
    assert code == 2 and err.count("\n") == 1 and "optimizer steps; this server allows at most" in err
    for run_id in ids:
        cli("runs", "cancel", run_id, "--no-wait")

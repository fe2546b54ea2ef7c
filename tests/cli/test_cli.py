"""The CLI contract: last lines, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def dpcore(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dpcore", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


def test_epsilon_prints_epsilon_last():
    out = dpcore("epsilon", "--mechanism", "gaussian", "--noise-multiplier", "1.0", "--sample-rate", "0.01",
                 "--steps", "1000", "--delta", "1e-5", "--accountant", "prv")
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.strip().splitlines()[-1]) == pytest.approx(1.838, abs=0.01)


def test_calibrate_prints_noise_last():
    out = dpcore("calibrate", "--mechanism", "gaussian", "--epsilon", "3", "--delta", "1e-5",
                 "--sample-rate", "0.01", "--steps", "1000")
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.strip().splitlines()[-1]) == pytest.approx(0.865, abs=0.01)


@pytest.mark.parametrize("args", [
    ["epsilon", "--noise-multiplier", "-1", "--sample-rate", "0.01", "--steps", "10", "--delta", "1e-5"],
    ["epsilon", "--noise-multiplier", "1", "--sample-rate", "2", "--steps", "10", "--delta", "1e-5"],
    ["calibrate", "--epsilon", "0", "--sample-rate", "0.01", "--steps", "10", "--delta", "1e-5"],
    ["train", "--epsilon", "0", "--out", "x"],
    ["train", "--delta", "0.5", "--max-steps", "1", "--out", "x"],
    ["train", "--corpus", "/nonexistent/file.txt", "--max-steps", "1", "--out", "x"],
    ["train", "--lr", "1e300", "--out", "x"],
    ["train", "--seed", "1e23", "--out", "x"],
    ["train", "--epochs", "1", "--max-steps", "3", "--out", "x"],
    ["train", "--mechanism", "laplace", "--accountant", "rdp", "--out", "x"],
    ["runs", "submit", "--sample-temperature", "1e-300"],
    ["generate", "--checkpoint", "/nonexistent/model.pt"],
    ["nonsense"],
    [],
])
def test_bad_arguments_give_one_line_and_exit_2(args, tmp_path):
    out = dpcore(*[a if a != "x" else str(tmp_path / "out") for a in args])
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dpcore: error:"), out.stderr
    assert "Traceback" not in out.stderr


def test_range_errors_name_the_flag_and_the_range(tmp_path):
    out = dpcore("train", "--batch-size", "0", "--out", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.strip() == ("dpcore: error: argument --batch-size: batch size must be a whole number "
                                  "from 1 to 100000, got 0")


def test_train_then_generate(tmp_path):
    out = dpcore("train", "--corpus", "builtin", "--mechanism", "gaussian", "--epsilon", "8", "--clip", "1",
                 "--max-steps", "3", "--batch-size", "64", "--lr", "0.01", "--seed", "1", "--accountant", "rdp",
                 "--device", "cpu", "--hidden-size", "16", "--embed-dim", "8", "--seq-len", "16",
                 "--out", str(tmp_path), "--quiet")
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["steps"] == 3 and result["epsilon"] <= 8 and result["device"] == "cpu"
    assert (tmp_path / "metrics.csv").read_text().count("\n") == 4
    gen = dpcore("generate", "--checkpoint", str(tmp_path / "model.pt"), "--prompt", "my ", "--tokens", "20",
                 "--seed", "3")
    assert gen.returncode == 0, gen.stderr
    assert gen.stdout.startswith("my ")
    # plain sampling from a DP-trained model is post-processing: the training ε covers it
    assert float(gen.stdout.strip().splitlines()[-1].split("=")[1]) == pytest.approx(result["epsilon"], rel=1e-4)
    again = dpcore("generate", "--checkpoint", str(tmp_path / "model.pt"), "--prompt", "my ", "--tokens", "20",
                   "--seed", "3")
    assert again.stdout == gen.stdout


def test_laplace_and_naive_from_the_cli(tmp_path):
    eps = dpcore("epsilon", "--mechanism", "laplace", "--noise-multiplier", "1.0", "--sample-rate", "0.01",
                 "--steps", "1000", "--delta", "1e-5")
    assert eps.returncode == 0 and float(eps.stdout.split()[-1]) == pytest.approx(1.124, abs=0.01)
    cal = dpcore("calibrate", "--mechanism", "laplace", "--epsilon", "3", "--delta", "1e-5", "--sample-rate", "0.01",
                 "--steps", "1000")
    assert cal.returncode == 0 and float(cal.stdout.split()[-1]) == pytest.approx(0.464, abs=0.01)
    bad = dpcore("epsilon", "--mechanism", "laplace", "--noise-multiplier", "1.0", "--sample-rate", "0.01",
                 "--steps", "10", "--delta", "1e-5", "--accountant", "rdp")
    assert bad.returncode == 2 and "PLD" in bad.stderr
    small = ["--max-steps", "2", "--batch-size", "64", "--hidden-size", "8", "--embed-dim", "4", "--seq-len", "16",
             "--num-samples", "1", "--quiet"]
    # every config field has its flag, including the ones the old hand-written parser lacked
    out = dpcore("train", "--mechanism", "naive", "--epsilon", "1", *small, "--naive-sensitivity", "2",
                 "--dropout", "0.1", "--sample-tokens", "12", "--sample-temperature", "1.5", "--val-fraction", "0.2",
                 "--out", str(tmp_path / "naive"))
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "naive" / "result.json").read_text())
    assert result["epsilon"] is None
    assert {k: result["config"][k] for k in ("naive_sensitivity", "dropout", "sample_tokens", "sample_temperature",
                                             "val_fraction")} == {"naive_sensitivity": 2.0, "dropout": 0.1,
                                                                  "sample_tokens": 12, "sample_temperature": 1.5,
                                                                  "val_fraction": 0.2}
    for decoder, claims in (("plain", False), ("naive-logits", False), ("exponential", True), ("noisy-max", True),
                            ("mix", True)):
        gen = dpcore("generate", "--checkpoint", str(tmp_path / "naive" / "model.pt"), "--decoder", decoder,
                     "--logit-bound", "1", "--temperature", "2", "--noise-scale", "2", "--mix", "0.2", "--tokens", "5")
        assert gen.returncode == 0, gen.stderr
        last = gen.stdout.strip().splitlines()[-1]
        assert last.startswith("epsilon=")
        assert (last != "epsilon=null") == claims, (decoder, last)

"""``python -m dpcore risk``: the risk dial from the command line, the TPR bound on the last line."""

from __future__ import annotations

import pytest

from dpcore.cli.main import main
from dpcore.privacy.tradeoff import mechanism_tpr


def _last(capsys) -> tuple[list[str], str]:
    lines = capsys.readouterr().out.strip().splitlines()
    return lines, lines[-1]


def test_risk_prints_the_tpr_bound_last(capsys):
    assert main(["risk", "--mechanism", "gaussian", "--noise-multiplier", "1.2", "--sample-rate", "0.05",
                 "--steps", "100", "--fpr", "0.01"]) == 0
    lines, last = _last(capsys)
    assert last.startswith("tpr=")
    assert float(last.split("=")[1]) == pytest.approx(mechanism_tpr("gaussian", 1.2, 0.05, 100, 0.01), rel=1e-5)
    assert "wrongly accuses 1 in 100 non-members catches at most" in lines[-2]


def test_risk_reverse_gives_noise_and_epsilon_for_a_target(capsys):
    assert main(["risk", "--mechanism", "laplace", "--target-tpr", "0.05", "--sample-rate", "0.1", "--steps", "10",
                 "--fpr", "0.01"]) == 0
    lines, last = _last(capsys)
    noise = float(next(x for x in lines if x.startswith("noise_multiplier=")).split("=")[1])
    assert float(last.split("=")[1]) <= 0.05
    assert mechanism_tpr("laplace", noise, 0.1, 10, 0.01) <= 0.05 < mechanism_tpr("laplace", noise * 0.98, 0.1, 10,
                                                                                   0.01)
    assert any(x.startswith("epsilon=") for x in lines)


def test_risk_refuses_a_target_at_guessing(capsys):
    assert main(["risk", "--target-tpr", "0.005", "--sample-rate", "0.1", "--steps", "10", "--fpr", "0.01"]) == 2
    assert "random" in capsys.readouterr().err

"""Unit tests of the audit, decoding and mechanism views and their charts (no Streamlit)."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest

from dpcore.privacy.mechanisms import noise_to_signal
from dpcore.runs.store import RunStore
from dpcore.views import auditview, charts, runview
from dpcore.views.urlstate import config_to_params, params_to_config
from tests.apptest_support import TINY, write_run
from tests.audit_fixture import add_audit, fake_audit


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "data")


def test_audit_views_read_and_shape_an_audit(store):
    run = write_run(store, "o")
    assert auditview.load_audit(store, run) is None
    add_audit(store, run.id, fake_audit(exposure=4.0))
    audit = auditview.load_audit(store, run)
    assert audit["auc"] == 0.52
    assert [g["insertions"] for g in auditview.exposure_groups(audit)] == [1, 10]
    assert auditview.mean_exposure(audit) == 4.0
    assert auditview.mean_exposure(audit, min_insertions=100) is None
    assert {c["name"] for c in auditview.roc_curves(audit)} == {"loss", "calibrated"}
    assert auditview.empirical_epsilon(audit)["confidence"] == 0.95
    assert auditview.empirical_epsilon(audit)["attack"] == "one-run (Steinke et al. 2023)"
    assert auditview.one_run(audit)["guesses"] == 200 and auditview.no_bound_reason(audit) is None
    assert "python -m dpcore audit --checkpoint x.pt" in auditview.how_to_audit("x.pt")


def test_audit_views_without_a_sound_bound():
    """No canaries planted: no ε, and why. A version-1 audit's membership ε (unsound) is not shown at all."""
    none = fake_audit(one_run=False)
    assert auditview.empirical_epsilon(none) is None and auditview.one_run(none) is None
    assert "planted no audit canaries" in auditview.no_bound_reason(none)
    old = {"version": 1, "empirical_epsilon": {"value": 0.4, "confidence": 0.95, "attack": "calibrated",
                                               "max_certifiable": 4.1},
           "plain": ["The run claims ε = 3.00; the attack shows ε ≥ 0.40 with 95% confidence (…)", "AUC 0.520: …"]}
    assert auditview.empirical_epsilon(old) is None
    assert "predates the one-run audit" in auditview.no_bound_reason(old)
    assert auditview.plain_lines(old) == ["AUC 0.520: …"]
    assert auditview.plain_lines(fake_audit()) == fake_audit()["plain"]
    fig = charts.epsilon_bounds_figure(3.0, auditview.empirical_epsilon(none))
    assert [tr.y[0] for tr in fig.data] == ["claimed ε (upper bound)"]


def test_audit_points_mark_runs_without_a_guarantee(store):
    private = write_run(store, "o", epsilon=2.5)
    naive = write_run(store, "o", TINY.replace(mechanism="naive"))
    none = write_run(store, "o", TINY.replace(mechanism="none"))
    write_run(store, "o")  # no audit: no point
    for run in (private, naive, none):
        add_audit(store, run.id, fake_audit())
    points = {p["run"]: p for p in auditview.audit_points(store, store.list_runs("o"))}
    assert set(points) == {private.id, naive.id, none.id}
    assert points[private.id]["epsilon"] == 2.5 and points[naive.id]["epsilon"] is None
    fig = charts.audit_scatter_figure(list(points.values()), "auc", title="AUC", ytitle="AUC")
    texts = [t for tr in fig.data for t in tr.text]
    assert "no privacy guarantee" in texts and "∞ / none" in texts and "∞ / none" in fig.layout.xaxis.ticktext


def test_audit_charts_are_figures():
    audit = fake_audit()
    for fig in (charts.exposure_figure(auditview.exposure_groups(audit)),
                charts.roc_figure(auditview.roc_curves(audit)),
                charts.epsilon_bounds_figure(3.0, auditview.empirical_epsilon(audit)),
                charts.epsilon_bounds_figure(None, None)):
        assert isinstance(fig, go.Figure)
    bounds = charts.epsilon_bounds_figure(3.0, auditview.empirical_epsilon(audit))
    assert any("one-run" in tr.y[0] for tr in bounds.data) and "one-run" in bounds.layout.title.text
    assert "User-level" in charts.roc_figure(auditview.roc_curves(audit)).layout.title.text
    assert charts.roc_figure(auditview.roc_curves(audit)).layout.xaxis.type == "log"
    assert len(charts.exposure_figure(auditview.exposure_groups(audit)).data) == 2  # bars + max possible


def test_decoding_and_mechanism_charts():
    fig = charts.decoding_epsilon_figure([1.0, 2.0, 3.0], [0.9, 1.5, 2.0], delta_prime=1e-6)
    assert [list(t.x) for t in fig.data] == [[1, 2, 3], [1, 2, 3]]
    rows = noise_to_signal(3.0, 1e-5, 0.05, 50, [1_000, 100_000])
    fig = charts.noise_signal_figure(rows, highlight=5_000)
    assert len(fig.data) == 3 and fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    fig = charts.mechanism_curves_figure({"gaussian": [("a", [{"step": 1, "val_perplexity": 9.0}])],
                                          "naive": [("b", [{"step": 1, "val_perplexity": 8.0}])]})
    assert any("no privacy guarantee" in t.name for t in fig.data)


def test_curves_by_mechanism_groups_finished_runs_in_order(store):
    write_run(store, "o", TINY.replace(mechanism="none"))
    write_run(store, "o")
    write_run(store, "o", status="running")
    groups = runview.curves_by_mechanism(store, store.list_runs("o"))
    assert list(groups) == ["gaussian", "none"] and len(groups["gaussian"]) == 1


def test_mechanism_inputs_of_a_preset():
    from dpcore.config.presets import get_preset

    inputs = runview.mechanism_inputs(get_preset("workshop-eps3").config)
    assert 0 < inputs["sample_rate"] < 1 and inputs["steps"] > 0 and inputs["delta"] > 0
    assert inputs["num_parameters"] in inputs["sizes"] and 1_000_000 in inputs["sizes"]


def test_audit_flag_in_the_url():
    assert config_to_params(TINY.replace(audit=True))["audit"] == "true"
    assert params_to_config({"audit": "true"}).config.audit is True
    parsed = params_to_config({"audit": "maybe"})
    assert parsed.config.audit is False and parsed.messages


def test_model_parameters_are_counted_without_torch_and_match_the_model():
    from dpcore.config import TrainConfig
    from dpcore.training.model import GRULanguageModel, ModelConfig

    for embed, hidden, layers, vocab in ((16, 64, 1, 78), (32, 128, 2, 259), (8, 12, 1, 2000)):
        cfg = TrainConfig(embed_dim=embed, hidden_size=hidden, num_layers=layers)
        model = GRULanguageModel(ModelConfig(vocab, embed, hidden, layers, 0.0))
        assert runview.model_parameters(cfg, vocab) == model.num_parameters()

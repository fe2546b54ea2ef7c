"""Privacy statements, reports, charts and run views, on runs written into a temporary store."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from dpcore.runs.store import RunStore
from dpcore.views import charts
from dpcore.views.meaning import corpus_label, guarantee_of, mechanism_label, run_label
from dpcore.views.report import html_report, markdown_report, privacy_statement, summary_rows
from dpcore.views.runview import format_duration, frontier, metrics_csv, progress, results_table
from tests.apptest_support import TINY, write_run


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path)


def test_labels_say_plainly_what_is_not_private():
    assert mechanism_label("none") == "no privacy (baseline)"
    assert mechanism_label("naive") == "no privacy guarantee (naive recipe)"
    assert corpus_label({"corpus": "/srv/data/uploads/ab12/secret-diary.txt"}) == "an uploaded file (secret-diary.txt)"


def test_dp_statement_covers_everything_a_reader_needs(store):
    run = write_run(store, "o", TINY.replace(unit="sequence"), epsilon=2.5)
    text = " ".join(privacy_statement(run))
    for phrase in ("What is protected: one training sequence (example-level)", "16 characters",
                   "ε = 2.5 and δ = 1e-05 after the 10 steps actually run", "Rényi-DP (RDP) accountant",
                   "noise multiplier σ = 1.1", "sampling rate q = 0.01", "L2 clipping norm C = 1",
                   "can change the odds of any outcome by at most e^2.5 ≈ 12×", "small chance that this promise fails",
                   "Poisson sampling", "every checkpoint", "any text sampled from the model", "post-processing",
                   "vocabulary", "synthetic", "floating-point", "cryptographic random source", "never stored",
                   "adding or removing one training sequence", "treated as public", "Windows are cut per record",
                   "Not covered by ε: the training loss per step", "Not covered by ε: the validation perplexity",
                   "at most the target", "17.14 for its person-level tables"):
        assert phrase in text, phrase


def test_a_per_person_statement_promises_a_person_and_says_how(store):
    text = " ".join(privacy_statement(write_run(store, "o", TINY.replace(unit="user", user_cap=3), epsilon=2.5)))
    for phrase in ("What is protected: one user with all of their text", "any one person, with all of their messages,",
                   "the average of at most 3 of their sequences",
                   "adding or removing one user with all of their sequences",
                   "each user joins each batch independently with probability q"):
        assert phrase in text, phrase
    assert "Windows are cut per record" not in text and "protected as a group of 10" not in text
    seq = " ".join(privacy_statement(write_run(store, "o", TINY.replace(unit="sequence"), epsilon=2.5)))
    assert "any one person" not in seq and "protected as a group of 10" in seq


def test_statement_of_an_upload_warns_about_its_vocabulary(store):
    run = write_run(store, "o", TINY.replace(corpus="/data/uploads/x/notes.txt"))
    text = " ".join(privacy_statement(run))
    assert "an uploaded file (notes.txt)" in text and "fixed independently of the data" in text
    assert "/data/uploads" not in text


def test_statement_of_a_run_in_progress_and_a_cancelled_run(store):
    running = write_run(store, "o", status="running", steps=4)
    assert "so far (step 4)" in " ".join(privacy_statement(running, latest_epsilon=1.0))
    cancelled = write_run(store, "o", status="cancelled", steps=6)
    assert "stopped after 6 of 10 planned steps" in " ".join(privacy_statement(cancelled))


@pytest.mark.parametrize("mechanism, first", [
    ("none", "This run is the non-private baseline: no privacy."),
    ("naive", "This run has no privacy guarantee."),
])
def test_statements_without_a_guarantee_show_no_epsilon(store, mechanism, first):
    run = write_run(store, "o", TINY.replace(mechanism=mechanism, epsilon=1.0))
    sentences = privacy_statement(run)
    assert sentences[0].startswith(first) and "ε =" not in " ".join(sentences)
    assert guarantee_of(run) == ("none" if mechanism == "none" else "no-guarantee")
    assert dict(summary_rows(run))["ε spent"] == "—"
    if mechanism == "naive":
        assert "no ε holds" in sentences[0]


def test_laplace_statement_names_l1_and_lambda(store):
    run = write_run(store, "o", TINY.replace(mechanism="laplace", accountant="pld", epsilon=8.0), epsilon=7.9)
    text = " ".join(privacy_statement(run))
    assert "λ = 1.1" in text and "L1 clipping norm" in text and "PLD" in text


def test_reports_carry_statement_table_charts_and_samples(store):
    run = write_run(store, "o")
    md = markdown_report(run, store.samples(run.id))
    assert md.startswith("# DP-RNN Lab run report") and "## Privacy statement" in md and "| ε spent | 2.5 |" in md
    assert "~~~\nhello there\n~~~" in md
    page = html_report(run, store.metrics(run.id), store.evals(run.id), store.samples(run.id))
    assert page.startswith("<!doctype html>") and page.count("Plotly.newPlot") == 4
    assert page.count("plotly.js v") == 1, "plotly.js embedded once, so the file works offline"
    assert "Poisson sampling" in page and "<pre>hello there</pre>" in page
    assert run_label(run).startswith("ε=3 Gaussian per ")


def test_html_report_escapes_generated_text(store):
    run = write_run(store, "o")
    store.add_samples(run.id, 10, "final", "", ["<script>alert(1)</script>"])
    page = html_report(run, [], [], store.samples(run.id))
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page


def test_results_table_frontier_and_csv(store):
    runs = [write_run(store, "o", TINY.replace(epsilon=e), epsilon=e, val_perplexity=20 - e) for e in (1.0, 8.0)]
    runs.append(write_run(store, "o", TINY.replace(mechanism="none"), val_perplexity=6.0))
    runs.append(write_run(store, "o", TINY.replace(mechanism="naive", epsilon=1.0), val_perplexity=30.0))
    table = results_table(runs)
    assert list(table["ε spent"].isna()) == [False, False, True, True]
    assert list(table["privacy"])[2:] == ["no privacy (baseline)", "no privacy guarantee (naive recipe)"]
    points, baselines = frontier(runs)
    assert [p["epsilon"] for p in points] == [1.0, 8.0] and [b["val_perplexity"] for b in baselines] == [6.0]
    csv = pd.read_csv(io.BytesIO(metrics_csv(store, runs)))
    assert len(csv) == 40 and {"run", "label", "step", "train_loss", "epsilon", "val_perplexity"} <= set(csv.columns)
    assert csv["val_perplexity"].notna().sum() == 4  # one evaluation per run, on its step


def test_progress_and_time_left(store):
    queued = write_run(store, "o", status="queued")
    assert "number 2 in the queue" in progress(queued, [], queue_position=2).text
    running = write_run(store, "o", status="running", steps=4)
    p = progress(running, store.metrics(running.id))
    assert p.fraction == pytest.approx(0.4) and p.seconds_left == pytest.approx(0.1 * 1.15 * 6)
    assert p.text.startswith("Step 4 of 10 · about")
    done = write_run(store, "o")
    assert progress(done, []).fraction == 1.0
    assert [format_duration(s) for s in (None, 5, 75, 4000)] == ["—", "5 s", "1 min 15 s", "1 h 06 min"]


def test_charts_draw_what_they_are_given():
    rows = [{"step": s, "train_loss": 1 / s, "epsilon": 0.1 * s, "frac_clipped": 0.5, "median_grad_norm": 2.0}
            for s in range(1, 3001)]
    rows[5]["train_loss"] = None  # an empty Poisson batch
    loss = charts.loss_figure(rows)
    assert len(loss.data[0].x) <= charts.MAX_POINTS + 1 and loss.data[0].x[-1] == 3000
    eps = charts.epsilon_figure(rows, predicted=[(0, 0.0), (3000, 300.0)], target=300.0)
    assert [t.name for t in eps.data] == ["predicted", "ε spent"]
    clip = charts.clipping_figure(rows, clip=1.0)
    names = {t.name for t in clip.data}
    assert names == {"median per-example norm (without noise)", "fraction clipped (without noise)"}
    private_only = charts.clipping_figure([{"step": 1, "noisy_frac_clipped": 0.4}], clip=1.0)
    assert [t.name for t in private_only.data] == ["fraction clipped (private: noised, covered by ε)"]
    frontier_fig = charts.frontier_figure([{"label": "a", "epsilon": 1.0, "val_perplexity": 9.0}],
                                          [{"label": "b", "val_perplexity": 5.0}])
    assert frontier_fig.layout.xaxis.type == "log" and len(frontier_fig.layout.shapes) == 1
    assert all(t.type == "scatter" for t in loss.data + eps.data + clip.data), "SVG traces, never WebGL"


# ------------------------------------------------------------------ what ε does not cover (uploads)
def _upload_run(store, **kw):
    return write_run(store, "owner", TINY.replace(corpus="/data/uploads/x/diary.txt"), val_perplexity=7.25, **kw)


def test_exports_of_an_upload_run_leave_out_what_epsilon_does_not_cover(store):
    run = _upload_run(store)
    md = markdown_report(run, store.samples(run.id))
    assert "7.25" not in md and "not shared" in md
    page = html_report(run, store.metrics(run.id), store.evals(run.id), store.samples(run.id))
    assert "7.25" not in page and "Training loss" not in page and page.count("Plotly.newPlot") == 2
    csv = pd.read_csv(io.BytesIO(metrics_csv(store, [run])))
    assert not {"train_loss", "batch_size", "frac_clipped", "median_grad_norm", "val_perplexity"} & set(csv.columns)
    assert "epsilon" in csv.columns
    assert frontier([run]) == ([], []) and results_table([run])["val perplexity"].isna().all()
    assert results_table([run], viewer="owner")["val perplexity"].tolist() == [7.25]  # the owner's own page


def test_the_owner_can_choose_to_share_uncovered_statistics(store):
    run = _upload_run(store)
    store.set_share_uncovered(run.id, "owner", True)
    shared = store.get_run(run.id)
    assert shared.share_uncovered
    page = html_report(shared, store.metrics(run.id), store.evals(run.id), store.samples(run.id))
    assert "7.25" in page and page.count("Plotly.newPlot") == 4
    assert results_table([shared])["val perplexity"].tolist() == [7.25]


def test_samples_of_a_non_private_upload_run_stay_with_its_owner(store):
    from dpcore.views.disclosure import may_show_samples

    run = write_run(store, "owner", TINY.replace(corpus="/data/uploads/x/diary.txt", mechanism="none"))
    assert may_show_samples(run, viewer="owner") and not may_show_samples(run, viewer="someone else")
    assert "hello there" not in markdown_report(run, store.samples(run.id))
    private = _upload_run(store)
    assert may_show_samples(private, viewer="someone else")  # DP: post-processing, covered


def test_statement_lists_every_released_quantity(store):
    from dpcore.views.disclosure import released_quantities

    run = write_run(store, "o", TINY.replace(audit=True))
    items = {r.what: r.covered for r in released_quantities(run)}
    assert items["the training loss per step"] is False and items["the validation perplexity"] is False
    assert items["the weights, every checkpoint and the final model"] is True
    assert items["the audit's membership-inference AUC and ROC"] is False
    text = " ".join(privacy_statement(run))
    assert all(what in text for what in items)


def test_server_paths_in_an_error_reach_only_the_owner(store):
    run = write_run(store, "owner", status="running")
    store.finish_run(run.id, "failed", error="training crashed with KeyError: 'x' (a bug in dp-rnn-lab; the full "
                                             "traceback is in /srv/dprnn/runs/ab12/worker.log)")
    run = store.get_run(run.id)
    assert "/srv/dprnn" in dict(summary_rows(run, viewer="owner"))["Status"]
    for viewer in ("someone else", None):
        status = dict(summary_rows(run, viewer=viewer))["Status"]
        assert "/srv" not in status and "worker.log" not in status and "KeyError" in status
    assert "/srv" not in markdown_report(run)


def test_a_run_from_the_public_model_says_what_was_public(store):
    text = " ".join(privacy_statement(write_run(store, "o", TINY.replace(init="public"))))
    assert "Training started from a public model, pre-trained without privacy on public text only" in text
    assert "costs no ε" in text
    assert "public model" not in " ".join(privacy_statement(write_run(store, "o", TINY)))

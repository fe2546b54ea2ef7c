"""Who may read text from a stored model (dpcore.runs.access), on every path that makes or shows it, and the
stranger budget that caps everyone but the owner on a model without a guarantee trained on an upload."""

from __future__ import annotations

import html
import json
import threading

import pytest

from dpcore.cli.main import main as cli_main
from dpcore.errors import DPCoreError, TextRefused
from dpcore.privacy.decoders import PRIVATE, READABLE, DecoderSpec
from dpcore.runs import access, inference
from dpcore.runs import store as store_mod
from dpcore.runs.limits import DEFAULT_STRANGER_BUDGET
from dpcore.runs.store import InferenceBudgetExceeded, RunNotFound, RunStore, StrangerBudgetExceeded
from dpcore.views import samplesview
from dpcore.views.disclosure import may_show_samples
from dpcore.views.report import OWNER_ONLY_SAMPLES, html_report, markdown_report, privacy_statement
from tests.apptest_support import TINY, write_run

OWNER, STRANGER, OTHER = "browser:owner", "browser:stranger", "browser:other"
UPLOAD = "/data/uploads/x/diary.txt"
NO_GUARANTEE_DECODERS = (DecoderSpec("plain"), DecoderSpec("naive-logits", noise_scale=0.1))


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path)


def _upload_run(store: RunStore, mechanism: str = "none", **kw):
    return write_run(store, OWNER, TINY.replace(corpus=UPLOAD, mechanism=mechanism), checkpoint=True, **kw)


# ---------------------------------------------------------------------------------------- the rule
@pytest.mark.parametrize("mechanism", ["none", "naive"])
def test_a_stranger_gets_no_text_without_a_guarantee_from_a_non_private_upload_model(store, mechanism):
    run = _upload_run(store, mechanism)
    assert access.owner_only(run)
    for viewer in (STRANGER, None):  # None: someone unknown (an export, a link) is a stranger too
        with pytest.raises(TextRefused, match="for its owner only") as err:
            inference.generate_samples(store, run, "my pin is", viewer=viewer, n=2, max_tokens=5)
        assert "choose a private decoder" in str(err.value) and isinstance(err.value, DPCoreError)
        for spec in NO_GUARANTEE_DECODERS:
            with pytest.raises(TextRefused, match=f"^{spec.name} text from this model is for its owner only"):
                inference.decode_text(store, run, "my pin is", spec, viewer=viewer, max_tokens=5, seed=1)
        assert not may_show_samples(run, viewer=viewer)
    assert not store.ledger(run.id).entries  # a refusal charges nothing
    # the owner keeps every decoder on their own model
    assert len(inference.generate_samples(store, run, "my", viewer=OWNER, n=2, max_tokens=5)) == 2
    for spec in NO_GUARANTEE_DECODERS:
        out, guarantee = inference.decode_text(store, run, "my", spec, viewer=OWNER, max_tokens=5, seed=1)
        assert out.text.startswith("my") and guarantee.epsilon is None
    out, _ = inference.decode_point(store, run, "my", READABLE, viewer=OWNER)  # ε = 128: the owner's choice
    assert out.text.startswith("my") and may_show_samples(run, viewer=OWNER)


def test_the_rule_reads_the_stored_run_not_the_callers_copy(store):
    run = _upload_run(store)
    forged = store_mod.Run(**{**run.to_dict(), "owner": STRANGER})  # a hand-made Run that names the stranger
    with pytest.raises(TextRefused):
        inference.decode_text(store, forged, "my", DecoderSpec("plain"), viewer=STRANGER, max_tokens=5)


def test_dp_and_built_in_models_stay_readable_by_anyone_and_free(store):
    dp_upload = _upload_run(store, "gaussian")
    baseline_builtin = write_run(store, OWNER, TINY.replace(mechanism="none"), checkpoint=True)
    for run in (dp_upload, baseline_builtin):
        assert not access.owner_only(run)
        assert access.text_access(run, STRANGER, DecoderSpec("plain")) is access.TextAccess.PUBLIC
        assert inference.generate_samples(store, run, "my", viewer=STRANGER, n=1, max_tokens=5)
        inference.decode_text(store, run, "my", DecoderSpec("naive-logits"), viewer=None, max_tokens=5)
        assert may_show_samples(run, viewer=None) and not store.ledger(run.id).entries  # post-processing: free
        assert store.ledger(run.id).strangers is None
    # a stranger's private text from a DP model is charged to the ledger but not capped by the stranger budget
    # (its plain text is free to them anyway): 12 tokens at ε = 8 is past 8, and still decoded
    store.charge_inference(dp_upload.id, STRANGER, "mix", 8.0, 12)
    inference.decode_point(store, dp_upload, "my", PRIVATE, viewer=STRANGER)
    assert len(store.ledger(dp_upload.id).entries) == 2 and store.ledger(dp_upload.id).stranger_spent > 8


def test_exports_carry_owner_only_samples_to_the_owner_alone(store):
    run = _upload_run(store)
    store.set_share_uncovered(run.id, OWNER, True)  # sharing statistics never shares the text
    run = store.get_run(run.id)
    samples = store.samples(run.id)
    for viewer in (STRANGER, None):
        assert "hello there" not in markdown_report(run, samples, viewer=viewer)
        assert "hello there" not in html_report(run, store.metrics(run.id), store.evals(run.id), samples,
                                                viewer=viewer)
    mine = markdown_report(run, samples, viewer=OWNER)
    assert "hello there" in mine and OWNER_ONLY_SAMPLES in mine
    page = html_report(run, store.metrics(run.id), store.evals(run.id), samples, viewer=OWNER)
    assert "hello there" in page and html.escape(OWNER_ONLY_SAMPLES) in page
    dp = _upload_run(store, "gaussian")
    shared = markdown_report(dp, store.samples(dp.id), viewer=None)
    assert "hello there" in shared and OWNER_ONLY_SAMPLES not in shared  # DP: anyone, no label


def test_the_cli_refuses_a_stranger_and_gives_the_owner_the_text(store, capsys):
    run = _upload_run(store)
    base = ["generate", "--run", run.id, "--data-dir", str(store.data_dir), "--prompt", "my", "--tokens", "5"]
    for decoder in ("plain", "naive-logits"):
        assert cli_main([*base, "--decoder", decoder, "--owner", STRANGER]) == 2
        out = capsys.readouterr()
        assert out.out == "" and out.err.startswith(f"dpcore: error: {decoder} text from this model is for its owner")
        assert cli_main([*base, "--decoder", decoder, "--owner", OWNER]) == 0
        out = capsys.readouterr()
        assert out.out.startswith("my") and out.out.rstrip().endswith("epsilon=null")
    assert cli_main([*base, "--decoder", "mix", "--mix", "0.01", "--owner", STRANGER]) == 0  # private: charged
    assert capsys.readouterr().out.startswith("my")
    (entry,) = store.ledger(run.id).entries
    assert entry.viewer == STRANGER and 0 < entry.epsilon <= DEFAULT_STRANGER_BUDGET
    assert cli_main([*base, "--decoder", "exponential", "--temperature", "1", "--owner", STRANGER]) == 2  # 5 × 16
    assert "stranger budget" in capsys.readouterr().err
    assert cli_main(["runs", "show", run.id, "--json", "--data-dir", str(store.data_dir), "--owner", STRANGER]) == 0
    assert "hello there" not in capsys.readouterr().out  # nor does `runs show` print the stored samples
    assert cli_main(["runs", "show", run.id, "--json", "--data-dir", str(store.data_dir), "--owner", OWNER]) == 0
    assert json.loads(capsys.readouterr().out)["result"]["samples"] == ["hello there", "good day"]


# ---------------------------------------------------------------------------------- the stranger budget
def test_strangers_together_stop_at_the_default_stranger_budget_of_8(store):
    run = _upload_run(store)
    assert DEFAULT_STRANGER_BUDGET == 8.0
    with pytest.raises(StrangerBudgetExceeded, match="ε = 8 in total on this model") as err:
        inference.decode_point(store, run, "my", READABLE, viewer=STRANGER)  # the ε = 128 text
    assert isinstance(err.value, InferenceBudgetExceeded) and "the default" in str(err.value)
    assert not store.ledger(run.id).entries
    eps0 = 0.5
    for i in range(8):  # two strangers, ε = 1 a text: 8 in total between them
        store.charge_inference(run.id, (STRANGER, OTHER)[i % 2], "mix", eps0, 2)
    with pytest.raises(StrangerBudgetExceeded):
        store.charge_inference(run.id, OTHER, "mix", eps0, 1)
    with pytest.raises(StrangerBudgetExceeded):
        inference.decode_point(store, run, "my", PRIVATE, viewer="browser:third")
    state = store.ledger(run.id)
    assert state.stranger_spent == pytest.approx(8.0) and state.strangers.remaining == 0
    store.charge_inference(run.id, OWNER, "mix", eps0, 2)  # the owner's own texts are not the strangers'
    inference.decode_point(store, run, "my", READABLE, viewer=OWNER)
    assert store.ledger(run.id).stranger_spent == pytest.approx(8.0)


def test_only_the_owner_raises_the_stranger_budget_and_the_statement_says_so(store):
    run = _upload_run(store)
    default_statement = " ".join(privacy_statement(run))
    assert "stranger budget of ε = 8 in total (the default)" in default_statement
    assert "for its owner only" in default_statement
    with pytest.raises(RunNotFound):
        store.set_stranger_budget(run.id, STRANGER, 500.0)
    with pytest.raises(DPCoreError, match="stranger budget must be a number"):
        store.set_stranger_budget(run.id, OWNER, float("nan"))
    assert store.get_run(run.id).stranger_budget is None
    assert store.set_stranger_budget(run.id, OWNER, 200.0).effective_stranger_budget == 200.0
    raised = store.get_run(run.id)
    statement = " ".join(privacy_statement(raised))
    assert "ε = 200 in total: RAISED by the run's owner from the default ε = 8" in statement
    assert "RAISED" in " ".join(privacy_statement(RunStore(store.data_dir).get_run(run.id)))  # kept in the file
    caption = samplesview.stranger_caption(store.ledger(run.id).strangers)
    assert "Stranger budget ε = 200" in caption and "RAISED by the run's owner from the default ε = 8" in caption
    inference.decode_point(store, run, "my", READABLE, viewer=STRANGER)  # now within what the owner allowed
    assert 0 < store.ledger(run.id).stranger_spent <= 128
    store.set_stranger_budget(run.id, OWNER, 2.0)  # a cut is the owner's to make too, and is not a raise
    assert "set by the run's owner; the default is ε = 8" in samplesview.stranger_caption(
        store.ledger(run.id).strangers)
    assert "RAISED" not in " ".join(privacy_statement(store.get_run(run.id)))
    assert "Stranger budget" not in " ".join(privacy_statement(_upload_run(store, "gaussian")))


def test_the_stranger_budget_holds_under_concurrent_strangers(store):
    """The stranger check is in the charge's own transaction: many strangers at once stop at 8 exactly."""
    run = _upload_run(store)
    accepted: list[int] = []
    barrier = threading.Barrier(6)

    def stranger(i: int) -> None:
        own = RunStore(store.data_dir)
        barrier.wait()
        for _ in range(6):
            try:
                own.charge_inference(run.id, f"browser:s{i}", "mix", 0.25, 1)
                accepted.append(i)
            except StrangerBudgetExceeded:
                pass

    threads = [threading.Thread(target=stranger, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    state = store.ledger(run.id)
    assert len(accepted) == len(state.entries) == 32 and state.stranger_spent == pytest.approx(8.0)

"""Helpers for the dashboard's AppTest tests: a temporary store, an executor that trains nothing,
browser identities, and runs written straight into the store (as a worker would write them)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dpcore.config import TrainConfig, unit_phrase
from dpcore.runs.executors.base import wait_for
from dpcore.runs.store import Run, RunStore

ROOT = Path(__file__).resolve().parents[1]
#: Streamlit's main script (app.py only launches it): AppTest runs the dashboard from here.
ROUTER = ROOT / "pages" / "router.py"
TIMEOUT = 120  # the first run of a page imports torch and builds the corpus
SECRET_A = "a" * 32
SECRET_B = "b" * 32

TINY = TrainConfig(seq_len=16, embed_dim=8, hidden_size=16, batch_size=32, max_steps=10, eval_every=5,
                   num_samples=2, sample_tokens=10, lr=0.01, epsilon=3.0, device="cpu",
                   builtin_users=400)  # a small crowd: tests that rebuild its data stay quick


class FakeExecutor:
    """Queues runs in the store like LocalExecutor, but starts no worker: nothing trains."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.limits = store.limits
        self.grace_s = 10.0
        self.max_concurrent = 1
        self.submitted: list[tuple[str, TrainConfig]] = []

    def submit(self, owner: str, config: TrainConfig, *, allow_local_paths: bool = False) -> str:
        config = config.validate()
        self.submitted.append((owner, config))
        return self.store.create_run(owner, config.to_dict())

    def status(self, run_id: str, owner: str | None = None) -> Run:
        return self.store.get_run(run_id, owner)

    def cancel(self, run_id: str, owner: str | None = None) -> Run:
        return self.store.request_cancel(run_id, owner)

    def list(self, owner: str | None = None) -> list[Run]:
        return self.store.list_runs(owner)

    def poll(self) -> None:
        pass

    def wait(self, run_id: str, timeout: float | None = None, *, poll_s: float = 0.5,
             owner: str | None = None) -> Run:
        return wait_for(self, run_id, timeout, poll_s=poll_s, owner=owner)

    def describe(self) -> str:
        return "this server"


def router_page(page: str) -> str:
    """A page file named from the repository root (``pages/screens/x.py``) as the router names it."""
    path = Path(page)
    return str(path.relative_to(ROUTER.parent.relative_to(ROOT))) if path.parts[:1] == ("pages",) else page


class DashboardAppTest(AppTest):
    """AppTest of the router whose :meth:`switch_page` also takes page files named from the repository root."""

    def switch_page(self, page_path: str) -> AppTest:
        return super().switch_page(router_page(page_path))


@dataclass
class AppEnv:
    store: RunStore

    def app(self, secret: str = SECRET_A, page: str | None = None, **query: str) -> AppTest:
        """An AppTest of the dashboard for the browser holding ``secret`` (not run yet)."""
        at = DashboardAppTest(ROUTER, default_timeout=TIMEOUT)
        at.session_state["_owner_secret"] = secret
        at.session_state["_owner_cookie_set"] = True
        for key, value in query.items():
            at.query_params[key] = value
        if page:
            at.switch_page(page)
        return at

    def owner(self, secret: str = SECRET_A) -> str:
        from pages.ui.session import owner_key

        return owner_key(secret)


def app_env_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppEnv]:
    """A fresh data folder and a fake executor behind the app's cached handles (wrap it in a fixture)."""
    import pages.ui.session as session

    monkeypatch.setenv("DPCORE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DPCORE_DEMO_SNAPSHOT", "off")  # no shipped gallery in the store unless a test asks for it
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(session, "build_executor", FakeExecutor)
    st.cache_resource.clear()
    store = RunStore(tmp_path / "data")
    yield AppEnv(store=store)
    st.cache_resource.clear()


def executor_of(at: AppTest) -> FakeExecutor:
    """The FakeExecutor behind the app's cached handles (after the app has run once)."""
    import pages.ui.session as session

    return session.executor()  # type: ignore[return-value]


def write_run(store: RunStore, owner: str, config: TrainConfig = TINY, *, status: str = "finished", steps: int = 10,
              epsilon: float | None = 2.5, val_perplexity: float = 9.5, checkpoint: bool = False) -> Run:
    """A run as a worker leaves it: info, metrics, evals, samples, result (and a checkpoint if asked)."""
    run_id = store.create_run(owner, config.to_dict())
    if status == "queued":
        return store.get_run(run_id)
    with store.transaction() as conn:
        store.claim_run(conn, run_id, host="test-host", pid=os.getpid(), pid_ident=None)
    private = config.is_private
    guarantee = "dp" if private else "none" if config.mechanism == "none" else "no-guarantee"
    info = {"total_steps": config.max_steps, "num_train_examples": 5000, "num_val_examples": 500, "vocab_size": 30,
            "num_parameters": 1000, "sample_rate": 0.01 if private else None,
            "noise_multiplier": 1.1 if private else None, "delta": 1e-5 if private else None, "device": "cpu",
            "privacy_unit": unit_phrase(config), "guarantee": guarantee}
    store.set_run_info(run_id, info, device="cpu")
    rows = [{"step": s, "train_loss": 4.0 / s, "epsilon": (epsilon or 0) * s / steps if private else None,
             "batch_size": 30, "frac_clipped": 0.5, "median_grad_norm": 1.2, "step_time_s": 0.1,
             "elapsed_s": 0.1 * s} for s in range(1, steps + 1)]
    store.add_metrics(run_id, rows)
    store.add_eval(run_id, {"step": steps, "val_loss": 2.25, "val_perplexity": val_perplexity})
    store.add_samples(run_id, steps, "final" if status == "finished" else "train", "", ["hello there", "good day"])
    if status == "running":
        return store.get_run(run_id)
    if checkpoint:
        store.add_artifact(run_id, "checkpoint", _checkpoint(store.run_dir(run_id), config))
    result: dict[str, Any] = {
        "mechanism": config.mechanism, "guarantee": guarantee, "epsilon": epsilon if private else None,
        "target_epsilon": config.epsilon if private else None, "delta": 1e-5 if private else None,
        "accountant": config.accountant if private else None, "accountant_note": "",
        "noise_multiplier": 1.1 if private else None, "sample_rate": 0.01 if private else None,
        "expected_batch_size": 30, "steps": steps, "planned_steps": config.max_steps, "stopped": status == "cancelled",
        "privacy_unit": unit_phrase(config), "unit": config.unit if private else None, "num_train_examples": 5000,
        "val_perplexity": val_perplexity, "wall_time_s": 12.0, "samples": ["hello there", "good day"],
    }
    store.finish_run(run_id, status, result=result)
    return store.get_run(run_id)


def _checkpoint(folder: Path, config: TrainConfig) -> Path:
    """A real (untrained) checkpoint the samples page can load."""
    from dpcore.data import make_tokenizer
    from dpcore.training.checkpoint import save_checkpoint
    from dpcore.training.model import GRULanguageModel, ModelConfig

    tok = make_tokenizer("char", ["hello there, good day to you"])
    model_cfg = ModelConfig(tok.vocab_size, config.embed_dim, config.hidden_size, config.num_layers, 0.0)
    model = GRULanguageModel(model_cfg)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.pt"
    save_checkpoint(path, model.state_dict(), model_cfg, tok, config.to_dict(), {})
    return path


def texts(elements: Any) -> list[str]:
    """The string values of an AppTest element list (markdown, captions, errors...)."""
    return [str(e.value) for e in elements]

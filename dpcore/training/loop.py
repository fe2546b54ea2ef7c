"""The training loop: config in, checkpoint and result out, progress through callbacks.

One function, :func:`run_training`, used by the CLI (``python -m dpcore train``), the background
worker and the tests. It knows nothing of storage or UI: every step is reported to a
:class:`~dpcore.events.TrainCallbacks`, and the caller decides what to do with it.

Order of decisions (each one a place where DP trainers silently go wrong):
1. data split by user (each user by a keyed hash of their own id), fixed-length windows; N = the number
   of training units: users (user-level, the default) or windows (sequence-level);
2. q = 1/ceil(N/B) — what Opacus's Poisson loader really uses; steps from epochs or max steps;
3. δ defaults to min(1e-5, 1/(10·N)) and δ ≥ 1/N is refused;
4. σ calibrated with the run's own accountant for the planned steps; ε reported from the
   steps actually run, never the target;
5. with ``ema`` set, the average of the iterates (:mod:`dpcore.training.ema`, post-processing) is what is
   evaluated, sampled and saved; the engine trains its own weights.
"""

from __future__ import annotations

import csv
import json
import math
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dpcore.config import TrainConfig, unit_phrase
from dpcore.data import LMData, build_lm_data, load_corpus
from dpcore.data.prior import public_log_prior
from dpcore.data.tokenizer import PAD_ID
from dpcore.errors import TrainingDiverged
from dpcore.events import CSV_COLUMNS, EvalMetrics, RunInfo, SampleEvent, StepMetrics, TrainCallbacks
from dpcore.privacy.accounting import (
    EpsilonCurve,
    epsilon_replace_one,
)
from dpcore.privacy.plan import plan
from dpcore.training.checkpoint import save_checkpoint
from dpcore.training.device import resolve_device
from dpcore.training.ema import WeightAverage
from dpcore.training.engines import EngineSetup, build_engine
from dpcore.training.generate import sample_texts
from dpcore.training.model import GRULanguageModel, ModelConfig, sequence_losses
from dpcore.training.pretrain import load_public_state
from dpcore.training.result import RunResult


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@torch.no_grad()
def evaluate(model: GRULanguageModel, data: torch.Tensor, device: torch.device, batch_size: int = 256) -> float:
    """Mean per-sequence loss on ``data`` (validation users); perplexity is its exp."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(data), batch_size):
        batch = data[i : i + batch_size].to(device)
        logits, _ = model(batch[:, :-1])
        losses = sequence_losses(logits, batch[:, 1:], PAD_ID)
        total += float(losses.sum())
        count += len(batch)
    return total / max(count, 1)


def run_training(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    callbacks: TrainCallbacks | None = None,
    should_stop: Callable[[], bool] | None = None,
    data: LMData | None = None,
    extra_rows: torch.Tensor | None = None,
    extra_accounted: int = 0,
) -> RunResult:
    """Train, write ``result.json``, ``metrics.csv`` and ``model.pt`` in ``out_dir``, return the result.

    ``should_stop`` is polled between steps; when it turns True the run finishes the current
    step, evaluates, saves and returns with ``stopped=True`` (its ε covers the steps run).

    ``extra_rows`` are appended to the training windows (the one-run audit's included canaries,
    see :mod:`dpcore.audit.pipeline`); ``extra_accounted`` is how many such rows N counts for q and
    δ *whether or not they were included*, so that neither depends on the audit's secret coins.
    """
    callbacks = callbacks or TrainCallbacks()
    should_stop = should_stop or (lambda: False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(config.seed)
    device = resolve_device(config.device)

    data = data if data is not None else load_data(config)
    train = data.train if extra_rows is None else torch.cat([data.train, extra_rows.to(data.train.dtype)])
    num_train = int(train.shape[0])
    num_accounted = int(data.train.shape[0]) + int(extra_accounted)
    if num_accounted < num_train:
        raise ValueError("extra_accounted must count every extra row (included or not)")
    units = privacy_units(config, data, num_train - int(data.train.shape[0]), int(extra_accounted))
    p = plan(config, units.num_accounted if units is not None else num_accounted)
    model_cfg = ModelConfig(data.tokenizer.vocab_size, config.embed_dim, config.hidden_size,
                            config.num_layers, config.dropout)
    initial_state, public_model = None, None
    if config.init == "public":  # public weights (built now if missing), never a silent random start
        initial_state, public_model = load_public_state(config, data, model_cfg, status=callbacks.on_status)
    engine = build_engine(config.mechanism, config.engine, EngineSetup(
        train=train, model_config=model_cfg, pad_id=PAD_ID, batch_size=config.batch_size, lr=config.effective_lr,
        optimizer=config.optimizer, clip=config.clip, noise_multiplier=p.noise_multiplier,
        sample_rate=p.sample_rate, seed=config.seed, device=device,
        naive_sensitivity=config.naive_sensitivity, naive_epsilon=config.epsilon,
        output_bias=torch.tensor(public_log_prior(data.tokenizer)), accounted_examples=num_accounted,
        initial_state=initial_state,
        row_users=units.row_users if units is not None else None,
        num_users=units.num_accounted if units is not None else None, user_cap=config.user_cap,
        secure_noise=config.secure_noise,
    ))
    curve = None
    if config.is_private:
        curve = EpsilonCurve(config.mechanism, p.noise_multiplier, p.sample_rate, p.delta,
                             config.accountant, p.steps)
    info = RunInfo(
        total_steps=p.steps, num_train_examples=num_train, num_val_examples=int(data.val.shape[0]),
        vocab_size=data.tokenizer.vocab_size, num_parameters=engine.model.num_parameters(),
        sample_rate=p.sample_rate if config.is_private else None,
        noise_multiplier=p.noise_multiplier, delta=p.delta, device=str(device),
        privacy_unit=unit_phrase(config), guarantee=engine.guarantee,
    )
    callbacks.on_start(info)
    # post-processing of the iterates (free): evaluated, sampled and saved instead of the last weights
    ema = WeightAverage(config.ema, engine.module, model_cfg) if config.ema is not None else None

    rows: list[dict[str, Any]] = []
    step_times: list[float] = []
    samples: list[str] = []
    last_eval: EvalMetrics | None = None
    started = time.perf_counter()
    batches = engine.batches()
    step = 0
    stopped = False

    def do_eval(step: int, kind: str) -> EvalMetrics:
        nonlocal samples
        plain = ema.model() if ema is not None else engine.plain_model()
        val_loss = evaluate(plain, data.val, device)
        ev = EvalMetrics(step=step, val_loss=val_loss, val_perplexity=math.exp(min(val_loss, 50.0)))
        callbacks.on_eval(ev)
        if config.num_samples > 0:
            samples = sample_texts(plain, data.tokenizer, config.sample_prompt, n=config.num_samples,
                                   max_tokens=config.sample_tokens, temperature=config.sample_temperature,
                                   seed=config.seed)
            callbacks.on_samples(SampleEvent(step=step, kind=kind, prompt=config.sample_prompt, texts=samples))
        return ev

    while step < p.steps:
        if should_stop():
            stopped = True
            break
        batch, groups = next(batches)
        t0 = time.perf_counter()
        stats = engine.step(batch, groups)
        dt = time.perf_counter() - t0
        if ema is not None:
            ema.update(engine.module)
        step += 1
        if stats.loss is not None and not math.isfinite(stats.loss):
            raise TrainingDiverged(
                f"the training loss became {stats.loss} at step {step}: lower the learning rate "
                f"(now {config.effective_lr:g}) or raise the clipping norm"
            )
        step_times.append(dt)
        eps = curve.at(step) if curve is not None else None
        m = StepMetrics(step=step, train_loss=stats.loss, epsilon=eps, batch_size=stats.batch_size,
                        frac_clipped=stats.frac_clipped, median_grad_norm=stats.median_grad_norm,
                        noisy_frac_clipped=stats.noisy_frac_clipped,
                        step_time_s=dt, elapsed_s=time.perf_counter() - started)
        callbacks.on_step(m)
        row = m.to_dict()
        if step % config.eval_every == 0 and step < p.steps:
            last_eval = do_eval(step, "train")
            row.update(val_loss=last_eval.val_loss, val_perplexity=last_eval.val_perplexity)
        rows.append(row)

    last_eval = do_eval(step, "final")
    if rows:
        rows[-1].update(val_loss=last_eval.val_loss, val_perplexity=last_eval.val_perplexity)

    epsilon, accountant_used, note = None, config.accountant if config.is_private else None, ""
    epsilon_replace = None
    if curve is not None:
        final = curve.final(step)
        epsilon, accountant_used, note = final.epsilon, final.accountant, final.note
        epsilon_replace = epsilon_replace_one(config.mechanism, p.noise_multiplier, p.sample_rate, step,
                                              p.delta).epsilon
        epsilon_replace = epsilon_replace if math.isfinite(epsilon_replace) else None
    losses = [r["train_loss"] for r in rows[-20:] if r["train_loss"] is not None]
    result = RunResult(
        mechanism=config.mechanism,
        guarantee=engine.guarantee,
        epsilon=epsilon,
        target_epsilon=config.epsilon if config.is_private and config.noise_multiplier is None else None,
        delta=p.delta,
        accountant=accountant_used,
        accountant_note=note,
        neighbours=((f"add or remove one user with all of their sequences; N = {units.num_accounted} users "
                     "treated as public" if units is not None else
                     "add or remove one training sequence; N treated as public") if curve is not None else None),
        unit=config.unit if config.is_private else None,
        user_cap=config.user_cap if units is not None else None,
        num_train_users=len(data.train_users),
        num_accounted_users=units.num_accounted if units is not None else None,
        expected_sequences_per_step=units.expected_rows(p.sample_rate, config.user_cap) if units else None,
        epsilon_replace_one=epsilon_replace,
        noise_multiplier=p.noise_multiplier,
        gradient_noise_multiplier=getattr(engine, "grad_noise_multiplier", None) if config.is_private else None,
        clip_count_noise=getattr(engine, "count_noise", None) if config.is_private else None,
        noise_source=engine.noise.description if config.is_private else None,
        sample_rate=info.sample_rate,
        expected_batch_size=p.expected_batch_size,
        steps=step,
        planned_steps=p.steps,
        stopped=stopped,
        clip=config.clip if config.is_private else None,
        engine=config.engine if config.mechanism == "gaussian" else "opacus" if config.is_private else "torch",
        privacy_unit=info.privacy_unit,
        num_train_examples=num_train,
        num_accounted_examples=num_accounted,
        num_val_examples=info.num_val_examples,
        vocabulary=data.vocabulary,
        vocabulary_epsilon=0.0,
        num_records=data.num_train_records,
        num_multiwindow_records=data.num_multiwindow_records,
        num_parameters=info.num_parameters,
        vocab_size=info.vocab_size,
        train_loss=statistics.fmean(losses) if losses else None,
        val_loss=last_eval.val_loss,
        val_perplexity=last_eval.val_perplexity,
        step_time_median_s=statistics.median(step_times) if step_times else None,
        wall_time_s=time.perf_counter() - started,
        device=str(device),
        seed=config.seed,
        samples=samples,
        init=config.init,
        learning_rate=config.effective_lr,
        ema=config.ema,
        public_model=public_model,
        config=config.to_dict(),
    )
    weights = ema.state_dict() if ema is not None else engine.plain_model().state_dict()
    save_checkpoint(out / "model.pt", weights, model_cfg, data.tokenizer, config.to_dict(), result.without_config())
    write_metrics_csv(out / "metrics.csv", rows)
    write_result(out, result)
    return result


@dataclass(frozen=True)
class PrivacyUnits:
    """User-level bookkeeping: each training row's user index and the users the accountant counts.

    N_users counts every training user (even one whose text gave no window) and every audit canary
    as a user of its own, included by its coin or not, so that q and δ never depend on the coins.
    """

    row_users: torch.Tensor  # [N rows] long, 0..num_accounted-1
    num_accounted: int

    def expected_rows(self, sample_rate: float, cap: int) -> float:
        """q · Σ_u min(k, n_u): the expected sequences per step (for the form and the report)."""
        counts = torch.bincount(self.row_users, minlength=self.num_accounted)
        return float(sample_rate * counts.clamp(max=cap).sum())


def privacy_units(config: TrainConfig, data: LMData, num_extra_rows: int, extra_accounted: int) -> PrivacyUnits | None:
    """The users of a user-level private run (None when the unit is a sequence, or no DP)."""
    if not config.user_level:
        return None
    index = {user: i for i, user in enumerate(data.train_users)}
    rows = [index[user] for user in data.train_example_users]
    base = len(data.train_users)
    rows += range(base, base + num_extra_rows)  # each included audit canary is its own user
    return PrivacyUnits(torch.tensor(rows, dtype=torch.long), base + int(extra_accounted))


def load_data(config: TrainConfig) -> LMData:
    """The config's corpus, split by user and cut into windows (what :func:`run_training` trains on)."""
    corpus = load_corpus(config.corpus, text_column=config.text_column, user_column=config.user_column,
                         builtin_users=config.builtin_users)
    return build_lm_data(corpus, tokenizer=config.tokenizer, seq_len=config.seq_len,
                         val_fraction=config.val_fraction, max_vocab=config.max_vocab)


def write_result(out_dir: str | Path, result: RunResult) -> None:
    """``result.json`` (atomic: a reader never sees half a file)."""
    path = Path(out_dir) / "result.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def write_metrics_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_COLUMNS})

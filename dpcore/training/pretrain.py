"""The public model: trained once, without privacy, on public text; private runs may start from it.

Why: DP-SGD's noise is paid per private step. A model that already knows the language of the data
(spelling, spaces, the shape of a message) needs far fewer private steps, so the same ε buys a much
better model. Pre-training on *public* text costs no ε: the guarantee is about the private data,
and this model is a function of public text (:mod:`dpcore.data.public`) and public code only. It
is trained here without noise or clipping, evaluated on held-out *public* text, and never sees a
private record, a private statistic or the private run's seed.

What determines it (:class:`PublicSpec`, hashed into the cache key): which public corpus (the
built-in generator's public crowd for the built-in corpus, English prose for uploads) and a digest
of its text; the tokenizer and a digest of its vocabulary (the private run's own, which is public
too); the window length; the model's shape (embedding, hidden size, layers); and the pre-training
recipe (:data:`STEPS`, :data:`BATCH_SIZE`, :data:`LR`, :data:`SEED`, :data:`RECIPE_VERSION`). The
device it was built on is recorded but not part of the key. The private run's privacy settings,
seed, dropout and crowd size are not in it, so one public model serves every run of that shape.

Where: ``<data folder>/public_models/<key>/`` (``model.pt``, ``public.json``), built by
``python -m dpcore pretrain`` or, when a run asks for it and it is missing, by the run itself
before its first step (it says so through ``status``). Builds take a file lock, so two runs that
need the same model build it once; a finished build is renamed into place, so a reader never
sees half a model.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from dpcore.config import TrainConfig
from dpcore.data import LMData, build_lm_data
from dpcore.data.prior import public_log_prior
from dpcore.data.public import BUILTIN_DESCRIPTION, TEXT_DESCRIPTION, corpus_digest, public_corpus, public_kind
from dpcore.data.tokenizer import PAD_ID
from dpcore.errors import CheckpointError, DPCoreError
from dpcore.paths import resolve_data_dir
from dpcore.training.checkpoint import load_checkpoint, save_checkpoint
from dpcore.training.device import resolve_device
from dpcore.training.engines import EngineSetup, build_engine
from dpcore.training.model import GRULanguageModel, ModelConfig, sequence_losses

#: The pre-training recipe (non-private Adam on shuffled batches). Changing any of these makes a new
#: key, so old public models are simply not used any more.
STEPS = 800
BATCH_SIZE = 256
LR = 0.01
SEED = 0  # the public model's own seed: public, and the same whatever seed a private run uses
VAL_FRACTION = 0.05
RECIPE_VERSION = 1
FOLDER = "public_models"
INFO_FILE = "public.json"

Status = Callable[[str], None]


@dataclass(frozen=True)
class PublicSpec:
    """Everything that determines a public model; :meth:`key` names its cache folder."""

    corpus: str  # "builtin" (the generator's public crowd) or "text" (English prose)
    corpus_digest: str
    tokenizer: str
    vocabulary_digest: str
    seq_len: int
    embed_dim: int
    hidden_size: int
    num_layers: int
    steps: int
    batch_size: int
    lr: float
    seed: int
    recipe_version: int

    def key(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    @property
    def description(self) -> str:
        return BUILTIN_DESCRIPTION if self.corpus == "builtin" else TEXT_DESCRIPTION


@dataclass(frozen=True)
class PublicModel:
    """A built public model on disk: its folder, what it is, and whether this call built it."""

    path: Path
    spec: PublicSpec
    info: dict[str, Any]
    built: bool

    @property
    def checkpoint(self) -> Path:
        return self.path / "model.pt"

    def state_dict(self) -> dict[str, torch.Tensor]:
        return load_checkpoint(self.checkpoint).model.state_dict()

    def summary(self) -> dict[str, Any]:
        """What a private run's result.json says about its starting point (all of it public)."""
        return {
            "key": self.spec.key(),
            "corpus": self.spec.description,
            "steps": self.spec.steps,
            "public_val_perplexity": self.info.get("val_perplexity"),
            "epsilon": 0.0,
            "note": "pre-trained without privacy on public text only (no private record, statistic or seed); "
                    "costs no ε",
        }


@functools.lru_cache(maxsize=8)
def _public_data(kind_spec: str, tokenizer: str, max_vocab: int, seq_len: int) -> tuple[LMData, str]:
    corpus = public_corpus(kind_spec)
    data = build_lm_data(corpus, tokenizer=tokenizer, seq_len=seq_len, val_fraction=VAL_FRACTION,
                         max_vocab=max_vocab, split_seed=SEED)
    return data, corpus_digest(corpus)


def public_data(config: TrainConfig) -> tuple[LMData, str]:
    """The public corpus a run with ``config`` pre-trains on, as windows, and its text digest.

    Uses the private run's tokenizer choice: the same vocabulary rule picks the same (public)
    vocabulary, which :func:`load_public_state` checks against the private data's.
    """
    return _public_data("builtin" if config.corpus == "builtin" else "upload", config.tokenizer,
                        config.max_vocab, config.seq_len)


def public_spec(config: TrainConfig) -> PublicSpec:
    data, digest = public_data(config)
    vocab = json.dumps(data.tokenizer.to_dict(), sort_keys=True)
    return PublicSpec(
        corpus=public_kind(config.corpus), corpus_digest=digest, tokenizer=config.tokenizer,
        vocabulary_digest=hashlib.sha256(vocab.encode()).hexdigest(), seq_len=config.seq_len,
        embed_dim=config.embed_dim, hidden_size=config.hidden_size, num_layers=config.num_layers,
        steps=STEPS, batch_size=BATCH_SIZE, lr=LR, seed=SEED, recipe_version=RECIPE_VERSION,
    )


def public_model_dir(spec: PublicSpec, data_dir: str | os.PathLike[str] | None = None) -> Path:
    return resolve_data_dir(data_dir) / FOLDER / spec.key()


def _read(path: Path, spec: PublicSpec) -> PublicModel | None:
    try:
        info = json.loads((path / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if info.get("key") != spec.key() or not (path / "model.pt").is_file():
        return None
    return PublicModel(path, spec, info, built=False)


def ensure_public_model(config: TrainConfig, *, data_dir: str | os.PathLike[str] | None = None,
                        force: bool = False, status: Status | None = None) -> PublicModel:
    """The public model for ``config``'s shape: from the cache, else built now (and cached).

    ``force`` rebuilds it even if cached. ``status`` hears one sentence when a build starts, a
    few while it trains, and one when it is done.
    """
    spec = public_spec(config)
    final = public_model_dir(spec, data_dir)
    if not force and (found := _read(final, spec)) is not None:
        return found
    final.parent.mkdir(parents=True, exist_ok=True)
    with _lock(final.with_name(final.name + ".lock")):
        if not force and (found := _read(final, spec)) is not None:  # another process built it meanwhile
            return found
        for stale in final.parent.glob(f"{final.name}.tmp-*"):  # left by a build that was killed (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
        tmp.mkdir()
        try:
            with torch.random.fork_rng(devices=[]):  # a run that builds it draws the same as one that finds it
                info = _build(config, spec, tmp, status or (lambda _text: None))
            if final.exists():
                shutil.rmtree(final)
            tmp.replace(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return PublicModel(final, spec, info, built=True)


class _lock:
    """An exclusive ``flock`` on ``path`` for the ``with`` block (released if the process dies)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        self.fh = self.path.open("a")
        fcntl.flock(self.fh, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


@torch.no_grad()
def _val_loss(model: GRULanguageModel, data: torch.Tensor, device: torch.device, batch_size: int = 512) -> float:
    model.eval()
    total = 0.0
    for i in range(0, len(data), batch_size):
        batch = data[i : i + batch_size].to(device)
        logits, _ = model(batch[:, :-1])
        total += float(sequence_losses(logits, batch[:, 1:], PAD_ID).sum())
    return total / max(len(data), 1)


def _batches(loader: Any) -> Iterator[torch.Tensor]:
    while True:
        for (batch,) in loader:
            yield batch


def _build(config: TrainConfig, spec: PublicSpec, out: Path, status: Status) -> dict[str, Any]:
    """Train the public model into ``out`` (model.pt + public.json); returns the info written."""
    data, _ = public_data(config)
    device = resolve_device(config.device)
    model_cfg = ModelConfig(data.tokenizer.vocab_size, spec.embed_dim, spec.hidden_size, spec.num_layers, 0.0)
    status(f"Building the public model first (once for this model size; {spec.steps} steps without privacy "
           f"on public text: {spec.description}).")
    engine = build_engine("none", "opacus", EngineSetup(
        train=data.train, model_config=model_cfg, pad_id=PAD_ID, batch_size=spec.batch_size, lr=spec.lr,
        optimizer="adam", clip=1.0, noise_multiplier=None, sample_rate=None, seed=spec.seed, device=device,
        output_bias=torch.tensor(public_log_prior(data.tokenizer)),
    ))
    started = time.perf_counter()
    batches = _batches(engine.loader)
    report_every = max(1, spec.steps // 4)
    loss = math.nan
    for step in range(1, spec.steps + 1):
        stats = engine.step(next(batches))
        loss = stats.loss if stats.loss is not None else loss
        if not math.isfinite(loss):
            raise DPCoreError(f"pre-training the public model diverged at step {step} (loss {loss})")
        if step % report_every == 0 and step < spec.steps:
            status(f"Building the public model: step {step} of {spec.steps}.")
    model = engine.plain_model()
    val_loss = _val_loss(model, data.val, device)
    info = {
        "key": spec.key(),
        "spec": asdict(spec),
        "description": spec.description,
        "num_train_examples": int(data.train.shape[0]),
        "num_val_examples": int(data.val.shape[0]),
        "train_loss": loss,
        "val_loss": val_loss,
        "val_perplexity": math.exp(min(val_loss, 50.0)),
        "wall_time_s": time.perf_counter() - started,
        "device": str(device),
        "built_at": time.time(),
        "epsilon": 0.0,
    }
    public_config = {"corpus": f"public:{spec.corpus}", "tokenizer": spec.tokenizer, "seq_len": spec.seq_len,
                     "mechanism": "none", "steps": spec.steps, "batch_size": spec.batch_size, "lr": spec.lr,
                     "seed": spec.seed}
    save_checkpoint(out / "model.pt", model.state_dict(), model_cfg, data.tokenizer, public_config, info)
    (out / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    status(f"Public model ready (public validation perplexity {info['val_perplexity']:.2f}); "
           "private training starts from it.")
    return info


def load_public_state(config: TrainConfig, data: LMData, model_config: ModelConfig, *,
                      data_dir: str | os.PathLike[str] | None = None,
                      status: Status | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(weights, summary) of the public model a run with ``config`` starts from; built if missing.

    Refuses (never falls back to random weights) a public model whose vocabulary or shape differs
    from the private run's.
    """
    public = ensure_public_model(config, data_dir=data_dir, status=status)
    ckpt = load_checkpoint(public.checkpoint)
    if ckpt.tokenizer != data.tokenizer:
        raise CheckpointError("the public model's vocabulary differs from this run's; rebuild it with "
                              "python -m dpcore pretrain --force and the run's settings")
    if _shape(ckpt.model.cfg) != _shape(model_config):
        raise CheckpointError(f"the public model's shape {_shape(ckpt.model.cfg)} differs from this run's "
                              f"{_shape(model_config)} (vocabulary, embedding, hidden units, layers)")
    return ckpt.model.state_dict(), {**public.summary(), "built_for_this_run": public.built}


def _shape(cfg: ModelConfig) -> tuple[int, int, int, int]:
    return (cfg.vocab_size, cfg.embed_dim, cfg.hidden_size, cfg.num_layers)

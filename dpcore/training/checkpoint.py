"""Checkpoints: weights (nn.GRU names), config, vocabulary and final metrics in one file.

Loading never needs the training data or Opacus: the weights load into the fused nn.GRU model.
Loaded with ``weights_only=True`` so a checkpoint file cannot execute code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dpcore.data.tokenizer import Tokenizer, tokenizer_from_dict
from dpcore.errors import CheckpointError
from dpcore.training.model import GRULanguageModel, ModelConfig
from dpcore.training.result import RunResult

FORMAT = "dpcore-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    model: GRULanguageModel
    tokenizer: Tokenizer
    config: dict[str, Any]
    result: RunResult  # the run's result less its config (RunResult.without_config)


def save_checkpoint(path: str | Path, state_dict: dict[str, torch.Tensor], model_config: ModelConfig,
                    tokenizer: Tokenizer, config: dict[str, Any], result: dict[str, Any]) -> None:
    path = Path(path)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": model_config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "tokenizer": tokenizer.to_dict(),
        "config": config,
        "result": result,
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # atomic: a run killed mid-save never leaves a half-written checkpoint


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path} is not a readable dpcore checkpoint ({type(err).__name__})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} was not written by dpcore (no dpcore checkpoint header)")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {payload.get('version')}; this dpcore reads {VERSION}")
    try:
        model = GRULanguageModel(ModelConfig(**payload["model_config"]))
        model.load_state_dict(payload["state_dict"])
        tokenizer = tokenizer_from_dict(payload["tokenizer"])
    except Exception as err:
        raise CheckpointError(f"{path} is damaged: {type(err).__name__}: {err}") from err
    model.to(device).eval()
    return Checkpoint(model=model, tokenizer=tokenizer, config=payload.get("config", {}),
                      result=RunResult.from_dict(payload.get("result", {})))

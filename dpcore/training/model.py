"""The GRU language model: embedding → GRU → linear head, and text generation (one place).

One module, two GRU implementations with the same parameter names:

* ``nn.GRU`` (fused kernels) for non-private training and for generation;
* ``opacus.layers.DPGRU`` for DP-SGD through Opacus, whose hooks need per-time-step linear
  layers. :func:`to_dp_layers` swaps it in through ``ModuleValidator.fix``.

Because DPGRU keeps nn.GRU's state-dict keys, a model trained with either loads into the other.
Dropout is never put inside the GRU (DPGRU would drop the recurrent state at every time step,
unlike nn.GRU); explicit ``nn.Dropout`` layers sit around it instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from dpcore.data.tokenizer import PAD_ID, UNK_ID, Tokenizer


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    embed_dim: int = 32
    hidden_size: int = 128
    num_layers: int = 1
    dropout: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class GRULanguageModel(nn.Module):
    """Next-token model over a small vocabulary (characters or a few thousand words)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        self.drop_in = nn.Dropout(cfg.dropout)
        self.gru = nn.GRU(cfg.embed_dim, cfg.hidden_size, cfg.num_layers, batch_first=True)
        self.drop_out = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden_size, cfg.vocab_size)

    def forward(self, tokens: torch.Tensor, hidden: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``tokens`` [B, T] → logits [B, T, V] and the last hidden state.

        The head sees [B, T, H] (never [B*T, H]) so that per-example gradient hooks treat the
        batch dimension, not tokens, as examples. Training always passes ``hidden=None``: every
        sequence starts from a zero state, so no example leaks into another's update.
        """
        x = self.drop_in(self.embedding(tokens))
        out, h = self.gru(x, hidden)
        return self.head(self.drop_out(out)), h

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_model(cfg: ModelConfig, seed: int) -> GRULanguageModel:
    """A freshly initialised model; the seed alone fixes its weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GRULanguageModel(cfg)


def to_dp_layers(model: GRULanguageModel) -> nn.Module:
    """Replace nn.GRU by Opacus's DPGRU (same parameter names). Call before building an optimizer."""
    from opacus.validators import ModuleValidator

    fixed = ModuleValidator.fix(model)
    ModuleValidator.validate(fixed, strict=True)
    return fixed


def plain_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """State dict with nn.GRU names, whatever wrapper trained it (GradSampleModule adds ``_module.``)."""
    state = module.state_dict()
    out = {}
    for key, value in state.items():
        while key.startswith("_module."):
            key = key[len("_module.") :]
        out[key] = value.detach().cpu().clone()
    return out


def sequence_losses(logits: torch.Tensor, targets: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Mean token loss of EACH sequence ([B]); padded targets do not count.

    Averaging per sequence first (then over the batch) keeps one example's gradient independent
    of the others — a mean over all tokens of a padded batch would void the clipping bound.
    """
    tok = nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
    ).view(targets.shape)
    mask = (targets != pad_id).to(tok.dtype)
    return (tok * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


@torch.no_grad()
def generate(
    model: GRULanguageModel,
    prompt_ids: list[int],
    *,
    max_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    stop_id: int | None = None,
    generator: torch.Generator | None = None,
    primed: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> list[int]:
    """Sample continuation ids (prompt not included) under eval() and no_grad().

    Sampling from a DP-trained model is post-processing: it costs no extra privacy. ``primed``
    (from :func:`prime`) skips running the prompt again when several samples share it.
    """
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        logits, h = primed if primed is not None else prime(model, prompt_ids)
        out: list[int] = []
        for _ in range(max_tokens):
            last = logits[0, -1].float() / temperature
            last[PAD_ID] = last[UNK_ID] = float("-inf")  # never emit padding or "unknown" (shown as �)
            if top_k is not None and 0 < top_k < last.numel():
                kth = torch.topk(last, top_k).values[-1]
                last = last.masked_fill(last < kth, float("-inf"))
            probs = torch.softmax(last, dim=-1).cpu()
            nxt = int(torch.multinomial(probs, 1, generator=generator).item())
            if stop_id is not None and nxt == stop_id:
                break
            out.append(nxt)
            logits, h = model(torch.tensor([[nxt]], dtype=torch.long, device=device), h)
        return out
    finally:
        model.train(was_training)


@torch.no_grad()
def prime(model: GRULanguageModel, prompt_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompt run once through the model: (logits of its last position [1, 1, V], hidden state)."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        logits, h = model(torch.tensor([prompt_ids], dtype=torch.long, device=device))
        return logits[:, -1:], h
    finally:
        model.train(was_training)


def continuation_text(tokenizer: Tokenizer, prompt: str, ids: list[int]) -> str:
    """``prompt`` followed by the decoded ``ids`` (a space between them for word tokens)."""
    piece = tokenizer.decode(ids)
    return prompt + (" " + piece if tokenizer.kind == "word" and prompt and piece else piece)

"""Text from a model: prompts in, strings out (the tokenizer-aware layer over model.generate)."""

from __future__ import annotations

import torch

from dpcore.data.tokenizer import EOS_ID, Tokenizer
from dpcore.model import GRULanguageModel, generate


def sample_texts(model: GRULanguageModel, tokenizer: Tokenizer, prompt: str, *, n: int, max_tokens: int,
                 temperature: float = 0.8, top_k: int | None = None, seed: int = 0) -> list[str]:
    """``n`` continuations of ``prompt``, each starting a new record and ending at the record end.

    Seeded, so the same model, prompt and seed give the same texts (side-by-side comparisons).
    """
    gen = torch.Generator()
    gen.manual_seed(seed)
    prompt_ids = [EOS_ID] + tokenizer.encode(prompt)
    out = []
    for _ in range(n):
        ids = generate(model, prompt_ids, max_tokens=max_tokens, temperature=temperature, top_k=top_k,
                       stop_id=EOS_ID, generator=gen)
        out.append(prompt + _joiner(tokenizer, prompt, ids))
    return out


def _joiner(tokenizer: Tokenizer, prompt: str, ids: list[int]) -> str:
    text = tokenizer.decode(ids)
    if tokenizer.kind == "word" and prompt and text:
        return " " + text
    return text

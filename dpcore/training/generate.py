"""Text from a model, token by token, through a decoder (:mod:`dpcore.privacy.decoders`).

What a decoder may emit: never PAD or UNK, and from a byte vocabulary only bytes that continue valid
UTF-8 (:class:`~dpcore.training.tokenfilter.TokenFilter`), so no shown text ever holds a replacement
character (U+FFFD). Each text is tracked with what it spends (:mod:`dpcore.privacy.composition`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dpcore.data.tokenizer import EOS_ID, Tokenizer
from dpcore.privacy.composition import DecodedText, advanced_composition, basic_composition
from dpcore.privacy.decoders import DecoderSpec, decoder_generator
from dpcore.training import model as gru
from dpcore.training.model import GRULanguageModel, continuation_text
from dpcore.training.tokenfilter import REPLACEMENT_CHAR, TokenFilter


def visible_text(tokenizer: Tokenizer, prompt: str, ids: Sequence[int]) -> str:
    """``prompt`` and its continuation ``ids`` as shown: the continuation never holds U+FFFD.

    :class:`TokenFilter` already keeps UNK and invalid UTF-8 out of a decoder's choices; this drops
    any replacement character that decoding would still make (a vocabulary that holds U+FFFD as a
    token, a byte sequence built some other way). The prompt is the visitor's own text, kept as typed.
    """
    full = continuation_text(tokenizer, prompt, list(ids))
    return prompt + full[len(prompt):].replace(REPLACEMENT_CHAR, "")


@torch.no_grad()
def _draw(model: GRULanguageModel, tokenizer: Tokenizer, primed: tuple[torch.Tensor, torch.Tensor],
          spec: DecoderSpec, generator: torch.Generator, max_tokens: int) -> tuple[list[int], int]:
    """(token ids, private choices made) of one continuation: at most ``max_tokens`` choices, the
    end-of-record pick included, each among the ids :class:`TokenFilter` allows."""
    device = next(model.parameters()).device
    logits, h = primed
    allowed = TokenFilter(tokenizer)
    ids: list[int] = []
    picks = 0
    for _ in range(max_tokens):
        nxt = spec.pick(logits[0, -1].float().cpu(), generator, allowed.allowed())
        picks += 1
        if nxt == EOS_ID:
            break
        ids.append(nxt)
        allowed.push(nxt)
        logits, h = model(torch.tensor([[nxt]], dtype=torch.long, device=device), h)
    return ids, picks


@torch.no_grad()
def decode(model: GRULanguageModel, tokenizer: Tokenizer, prompt: str, spec: DecoderSpec, *, max_tokens: int,
           seed: int | None = 0, delta_prime: float = 1e-6) -> DecodedText:
    """Generate with ``spec``, tracking the ε the text spends token by token.

    ``seed`` drives ``plain`` and ``naive-logits`` only (same seed, same text). A private decoder
    ignores it and draws secret randomness (:func:`decoder_generator`): two texts always differ in
    their draws, whatever ``seed`` says. At most ``max_tokens`` private choices are made, each among
    the ids :class:`TokenFilter` allows, so the text never shows U+FFFD; ``max_tokens`` is what the
    ledger charges, and the n of the text's advanced-composition figure.
    """
    spec.validate()
    model.eval()
    gen = decoder_generator(spec, seed)
    primed = gru.prime(model, [EOS_ID] + tokenizer.encode(prompt))
    ids, picks = _draw(model, tokenizer, primed, spec, gen, max_tokens)
    eps = spec.epsilon_per_token(tokenizer.vocab_size)
    out = DecodedText(text=visible_text(tokenizer, prompt, ids), epsilon_per_token=eps, delta_prime=delta_prime,
                      tokens=[tokenizer.decode([i]).replace(REPLACEMENT_CHAR, "") for i in ids],
                      charged_picks=int(max_tokens))
    if eps is not None:
        out.epsilon_basic = [basic_composition(eps, n) for n in range(1, picks + 1)]
        out.epsilon_advanced = [advanced_composition(eps, n, delta_prime) for n in range(1, picks + 1)]
    return out


def sample_texts(model: GRULanguageModel, tokenizer: Tokenizer, prompt: str, *, n: int, max_tokens: int,
                 temperature: float = 0.8, seed: int = 0) -> list[str]:
    """``n`` plain continuations of ``prompt`` from one seeded generator (same seed, same texts).

    Plain sampling claims no ε of its own: it is post-processing of the model. The prompt runs
    through the model once for all ``n``; each text starts a new record, ends at the record end or
    after ``max_tokens`` tokens, and (as every decoder here) never shows U+FFFD.
    """
    spec = DecoderSpec("plain", temperature=temperature).validate()
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    was_training = model.training
    model.eval()
    try:
        primed = gru.prime(model, [EOS_ID] + tokenizer.encode(prompt))
        return [visible_text(tokenizer, prompt, _draw(model, tokenizer, primed, spec, gen, max_tokens)[0])
                for _ in range(n)]
    finally:
        model.train(was_training)

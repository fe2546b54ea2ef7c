"""Which tokens a sampler may emit next, so that no shown text ever contains U+FFFD ("�").

Plain sampling (:func:`dpcore.model.generate`, the monitor's and reports' samples) and the private
decoders (:mod:`dpcore.privacy.decoders`) share this filter: PAD and UNK are never emitted, and with a byte
vocabulary only bytes that keep the text valid UTF-8 are. It depends only on the tokens already
emitted, never on the model, so it changes no privacy accounting (see :class:`TokenFilter`).
"""

from __future__ import annotations

import torch

from dpcore.data.tokenizer import EOS_ID, PAD_ID, UNK_ID, Tokenizer

REPLACEMENT_CHAR = "\ufffd"


def _utf8_lead(b: int) -> tuple[int, int, int] | None:
    """(continuation bytes needed, range of the first one) for a byte that starts a character.

    None for a byte that can never start one: continuations 80–BF, overlong leads C0/C1, F5–FF.
    The first continuation's narrower ranges (E0, ED, F0, F4) exclude overlong forms, surrogates
    and code points past U+10FFFF, as the UTF-8 standard does.
    """
    if b < 0x80:
        return 0, 0, 0
    if 0xC2 <= b <= 0xDF:
        return 1, 0x80, 0xBF
    if 0xE0 <= b <= 0xEF:
        return 2, 0xA0 if b == 0xE0 else 0x80, 0x9F if b == 0xED else 0xBF
    if 0xF0 <= b <= 0xF4:
        return 3, 0x90 if b == 0xF0 else 0x80, 0x8F if b == 0xF4 else 0xBF
    return None


class TokenFilter:
    """Which ids a decoder may emit next, from the ids it has emitted (never from the model).

    PAD and UNK never (UNK shows as U+FFFD), nor any token whose text is U+FFFD. With a byte
    vocabulary, a character's bytes must form valid UTF-8: at a character boundary any ASCII byte
    (except 0x0A: a newline is EOS), a valid lead byte or EOS; inside a character only the
    continuation bytes that keep it valid (and no EOS, so a record never ends inside a character).
    A text cut by ``max_tokens`` inside a character loses that partial character when decoded.
    The mask depends only on the tokens already released, never on the model: each choice is the same
    mechanism over a public subset of ids, ε-DP for every subset (and ``mix``'s ε with the full V
    bounds its ε over fewer ids), and picking the next mechanism from earlier outputs is what
    adaptive composition allows, so a text still spends at most ε per choice.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        vocab = tokenizer.vocab_size
        base = torch.ones(vocab, dtype=torch.bool)
        base[PAD_ID] = base[UNK_ID] = False
        for i, tok in enumerate(tokenizer.itos):
            if REPLACEMENT_CHAR in tok:
                base[i] = False
        self._base = base
        self._need = 0
        self._range = (0x80, 0xBF)
        self._offset: int | None = None
        self._masks: dict[tuple[int, int], torch.Tensor] = {}
        if tokenizer.kind == "byte":
            self._offset = tokenizer.encode("A")[0] - ord("A")  # id = byte + offset
            boundary = torch.zeros(vocab, dtype=torch.bool)
            boundary[EOS_ID] = True
            for b in range(256):
                if b != 0x0A and _utf8_lead(b) is not None:
                    boundary[b + self._offset] = True
            self._base = boundary & base

    def allowed(self) -> torch.Tensor:
        """Bool [V]: the ids the next choice may take."""
        if self._need == 0:
            return self._base
        if self._range not in self._masks:
            lo, hi = self._range
            mask = torch.zeros_like(self._base)
            mask[lo + self._offset:hi + self._offset + 1] = True  # type: ignore[operator]
            self._masks[self._range] = mask
        return self._masks[self._range]

    def push(self, token_id: int) -> None:
        """Record the id just emitted (it must have been allowed)."""
        if self._offset is None or token_id < self._offset:
            return
        if self._need > 0:
            self._need -= 1
            self._range = (0x80, 0xBF)
            return
        lead = _utf8_lead(token_id - self._offset)
        if lead is not None:
            self._need, lo, hi = lead
            self._range = (lo, hi)

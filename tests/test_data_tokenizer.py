"""Tokenizers round-trip, order their vocabulary deterministically and serialise."""

from __future__ import annotations

import json

import pytest

from dpcore.data import (
    EOS_ID,
    PAD_ID,
    UNK_ID,
    CharTokenizer,
    WordTokenizer,
    make_tokenizer,
    tokenizer_from_dict,
)
from dpcore.errors import CorpusError

TEXTS = ["Dana Whitfield's PIN is 4 9 1 7", "cheap flights Lisbon", "dr. okafor said my a1c is 7.2"]


def test_char_round_trip_any_script() -> None:
    texts = [*TEXTS, "我们去公园散步", "Ünïcödé ✓ 🙂"]
    tok = CharTokenizer.fit(texts)
    for t in texts:
        assert tok.decode(tok.encode(t)) == t
    assert tok.encode("\n") == [EOS_ID] and tok.eos_id == EOS_ID
    assert tok.kind == "char"


def test_char_vocab_order_is_frequency_then_code_point() -> None:
    tok = CharTokenizer.fit(["bbbaac", "c"])
    assert tok.itos == ["<pad>", "<unk>", "\n", "b", "a", "c"]
    assert CharTokenizer.fit(["cab"]).itos[3:] == ["a", "b", "c"]


def test_char_max_vocab_counts_specials_and_maps_the_rest_to_unk() -> None:
    tok = CharTokenizer.fit(["aaaabbbcc d"], max_vocab=5)
    assert tok.vocab_size == 5 and tok.itos[3:] == ["a", "b"]
    assert tok.encode("abcz") == [3, 4, UNK_ID, UNK_ID]
    assert tok.decode([3, UNK_ID, PAD_ID, PAD_ID]) == "a\ufffd"


def test_decode_skips_padding() -> None:
    tok = CharTokenizer.fit(TEXTS)
    ids = tok.encode("cheap") + [PAD_ID] * 5
    assert tok.decode(ids) == "cheap"


def test_word_tokens_are_lower_case_words_and_punctuation() -> None:
    words = WordTokenizer.split("Dana's PIN: 4 9!\nNext")
    assert words == ["dana", "'", "s", "pin", ":", "4", "9", "!", "\n", "next"]
    tok = WordTokenizer.fit(TEXTS)
    assert tok.kind == "word" and tok.itos[:3] == ["<pad>", "<unk>", "<eos>"]
    ids = tok.encode("cheap flights\nLisbon")
    assert ids == [tok.stoi["cheap"], tok.stoi["flights"], EOS_ID, tok.stoi["lisbon"]]
    assert tok.encode("unseenword")[0] == UNK_ID


def test_word_decode_joins_sensibly_and_re_encodes_identically() -> None:
    tok = WordTokenizer.fit(["Hello, world! (it's me) email: a@b.com", *TEXTS])
    text = "Hello, world! (it's me)"
    assert tok.decode(tok.encode(text)) == "hello, world! (it's me)"
    for t in TEXTS:
        ids = tok.encode(t)
        assert tok.encode(tok.decode(ids)) == ids
    assert tok.decode([*tok.encode("hello"), EOS_ID, *tok.encode("world"), PAD_ID]) == "hello\nworld"


def test_word_max_vocab_keeps_most_frequent() -> None:
    tok = WordTokenizer.fit(["a a a b b c"], max_vocab=5)
    assert tok.itos == ["<pad>", "<unk>", "<eos>", "a", "b"]


@pytest.mark.parametrize("kind", ["char", "word"])
def test_dict_round_trip(kind: str) -> None:
    tok = make_tokenizer(kind, TEXTS, max_vocab=50)
    again = tokenizer_from_dict(json.loads(json.dumps(tok.to_dict())))
    assert type(again) is type(tok) and again == tok
    assert again.encode(TEXTS[0]) == tok.encode(TEXTS[0])


def test_bad_inputs() -> None:
    with pytest.raises(CorpusError, match="tokenizer must be one of"):
        make_tokenizer("bpe", TEXTS)
    with pytest.raises(CorpusError, match="unknown tokenizer kind"):
        tokenizer_from_dict({"kind": "bpe", "vocab": []})
    with pytest.raises(CorpusError, match="special tokens"):
        tokenizer_from_dict({"kind": "char", "vocab": ["a", "b", "c", "d"]})
    with pytest.raises(CorpusError, match="no text"):
        CharTokenizer.fit(["", "\n"])
    with pytest.raises(CorpusError, match="max vocabulary"):
        CharTokenizer.fit(TEXTS, max_vocab=2)

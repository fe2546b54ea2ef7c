"""Tokenizers round-trip, have data-independent (or deterministic) vocabularies and serialise."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dpcore.data import (
    EOS_ID,
    PAD_ID,
    UNK_ID,
    ByteTokenizer,
    CharTokenizer,
    WordTokenizer,
    make_tokenizer,
    public_word_tokenizer,
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


@pytest.mark.parametrize("kind", ["char", "word", "byte"])
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


def test_byte_tokenizer_round_trips_any_script_with_a_fixed_vocabulary() -> None:
    tok = ByteTokenizer()
    assert tok.kind == "byte" and tok.vocab_size == 259 and tok.eos_id == EOS_ID
    assert tok.itos[:3] == ["<pad>", "<unk>", "<eos>"] and len(set(tok.itos)) == 259
    assert tok.stoi["a"] == ord("a") + 3 and tok.itos[3 + 0xE4] == "<0xE4>"
    for text in ["call me at (555) 123-4567!", "Crème brûlée à la café, Ærø, Łódź", "我们去公园散步", "🙂 ✓"]:
        assert tok.decode(tok.encode(text)) == text
    ascii_text = "Dana Whitfield's PIN is 4 9 1 7"
    assert tok.encode(ascii_text) == [ord(c) + 3 for c in ascii_text]  # one token per character
    assert len(tok.encode("我们")) == 6
    assert tok.encode("a\nb") == [ord("a") + 3, EOS_ID, ord("b") + 3]
    assert tok.decode([*tok.encode("hi"), EOS_ID, *tok.encode("yo"), PAD_ID, PAD_ID]) == "hi\nyo"
    assert ByteTokenizer() == tok and make_tokenizer("byte", ["Ж"]) == tok


def test_byte_decode_drops_cut_characters_and_replaces_invalid_bytes() -> None:
    tok = ByteTokenizer()
    ids = tok.encode("公园散步")
    for cut in range(1, len(ids)):
        head, tail = tok.decode(ids[:cut]), tok.decode(ids[cut:])
        assert "\ufffd" not in head + tail
        assert head == "公园散步"[: cut // 3] and tail == "公园散步"[-(-cut // 3) :]
    assert tok.decode([ids[1]]) == "" and tok.decode([ids[0]]) == ""  # one generated byte alone
    assert tok.decode([*ids[:2], EOS_ID, *ids[3:6]]) == "\n园"  # cut before a record end
    assert tok.decode([*tok.encode("a"), 0xFF + 3, *tok.encode("b")]) == "a\ufffdb"  # invalid byte
    assert tok.decode([UNK_ID, 9999]) == "\ufffd\ufffd"


def test_byte_tokenizer_refuses_a_changed_vocabulary() -> None:
    vocab = ByteTokenizer().to_dict()["vocab"]
    vocab[40] = "Ж"
    with pytest.raises(CorpusError, match="256 UTF-8 byte values"):
        tokenizer_from_dict({"kind": "byte", "vocab": vocab})


def test_public_word_vocabulary_is_fixed_punctuation_digits_and_common_words() -> None:
    tok = public_word_tokenizer(300)
    assert tok.kind == "word" and tok.vocab_size == 300 and tok.itos[:3] == ["<pad>", "<unk>", "<eos>"]
    assert tok.itos[3:8] == ["!", '"', "#", "$", "%"] and "~" in tok.stoi
    assert all(d in tok.stoi for d in "0123456789")
    assert {"the", "and", "you", "t", "don"} <= set(tok.itos)  # "don't" -> don ' t: its pieces too
    assert all(t == t.lower() for t in tok.itos[3:])
    assert UNK_ID not in tok.encode("Don't do it, I'm there at 9!")
    assert public_word_tokenizer(300) == tok and public_word_tokenizer(2000).itos[:300] == tok.itos
    assert public_word_tokenizer(20).vocab_size == 20
    with pytest.raises(CorpusError, match="max vocabulary"):
        public_word_tokenizer(3)


def test_importing_dpcore_does_not_load_wordfreq() -> None:
    code = "import sys, dpcore, dpcore.data, dpcore.training.loop; print('wordfreq' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

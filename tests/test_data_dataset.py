"""Splits are by user, windows never cross users, tails are padded or dropped as specified."""

from __future__ import annotations

import pytest
import torch

from dpcore.data.builtin import builtin_corpus
from dpcore.data.corpus import Canary, Corpus, Record, add_canary
from dpcore.data.dataset import build_lm_data, split_users
from dpcore.data.tokenizer import PAD_ID
from dpcore.errors import CorpusError


def _letters_corpus(n_users: int = 20, records: int = 3, length: int = 30) -> Corpus:
    """User i writes only letter i, so a window mixing letters would have crossed users."""
    recs = [Record(f"u{i:02d}", chr(ord("a") + i) * length) for i in range(n_users) for _ in range(records)]
    return Corpus("letters", recs, [], {})


def test_split_is_by_user_and_seeded() -> None:
    corpus = _letters_corpus()
    train, val = split_users(corpus, 0.2, split_seed=0)
    assert sorted(train + val) == corpus.users() and not set(train) & set(val)
    assert len(val) == 4
    assert split_users(corpus, 0.2, split_seed=0) == (train, val)
    assert split_users(corpus, 0.2, split_seed=1) != (train, val)
    assert len(split_users(corpus, 0.001, 0)[1]) == 1  # at least one validation user


def test_windows_shape_owner_and_no_crossing() -> None:
    corpus = _letters_corpus()
    data = build_lm_data(corpus, seq_len=16, val_fraction=0.2)
    assert data.train.dtype == torch.long and data.train.shape[1] == 17 and data.val.shape[1] == 17
    assert data.seq_len == 16
    assert len(data.train_example_users) == data.train.shape[0]
    assert len(data.val_example_users) == data.val.shape[0]
    assert set(data.train_example_users) == set(data.train_users)
    assert not set(data.train_users) & set(data.val_users)
    tok = data.tokenizer
    for rows, owners in ((data.train, data.train_example_users), (data.val, data.val_example_users)):
        for row, user in zip(rows.tolist(), owners, strict=True):
            letters = set(tok.decode(row)) - {"\n", "\ufffd"}  # val users' letters are UNK
            assert letters <= {chr(ord("a") + int(user[1:]))}, "a window crossed users"
    assert all(set(tok.decode(r)) - {"\n"} for r in data.train.tolist())


def test_tail_is_padded_with_at_least_8_tokens_else_dropped() -> None:
    # one record of 40 chars + "\n" = 41 tokens: 2 windows of 17, a tail of 7 -> dropped
    short = Corpus("c", [Record(u, "x" * 40) for u in ("a", "b", "c")], [], {})
    data = build_lm_data(short, seq_len=16, val_fraction=0.3)
    assert data.train.shape == (4, 17) and not (data.train == PAD_ID).any()
    # 44 chars + "\n" = 45 tokens: 2 full windows and a padded tail of 11 real tokens
    longer = Corpus("c", [Record(u, "x" * 44) for u in ("a", "b", "c")], [], {})
    data = build_lm_data(longer, seq_len=16, val_fraction=0.3)
    assert data.train.shape == (6, 17)
    tail = data.train[2]
    assert (tail[:11] != PAD_ID).all() and (tail[11:] == PAD_ID).all()
    assert data.tokenizer.decode(tail.tolist()) == "x" * 10 + "\n"


def test_records_are_joined_with_the_eos_separator() -> None:
    corpus = Corpus("c", [Record(u, t) for u in "abcd" for t in ("hello", "world there")], [], {})
    data = build_lm_data(corpus, seq_len=32, val_fraction=0.25)
    assert data.tokenizer.decode(data.train[0].tolist()) == "hello\nworld there\n"


def test_canary_users_train_and_canaries_stay_whole() -> None:
    corpus = add_canary(_letters_corpus(), "zz code ", "1 2", insertions=3, seed=0)
    for seed in range(5):
        data = build_lm_data(corpus, seq_len=16, val_fraction=0.3, split_seed=seed)
        assert set(corpus.canary_users()) <= set(data.train_users)
        rows = data.canary_rows["canary-00"]
        assert len(rows) == 3
        assert {data.tokenizer.decode(data.train[i].tolist()) for i in rows} == {"zz code 1 2\n"}


def test_word_level_data() -> None:
    records = [Record(f"u{i}", f"the cat number {i} sat on the mat again") for i in range(10)]
    corpus = Corpus("w", records, [], {})
    data = build_lm_data(corpus, tokenizer="word", seq_len=8, val_fraction=0.2)
    assert data.tokenizer.kind == "word" and data.train.shape[1] == 9
    assert data.tokenizer.decode(data.train[0].tolist()).startswith("the cat number")


def test_builtin_at_seq_len_64() -> None:
    data = build_lm_data(builtin_corpus(), seq_len=64)
    s = data.summary()
    assert s["num_train_examples"] > 2000 and s["num_val_examples"] > 100
    assert s["num_train_users"] + s["num_val_users"] == 400 and s["num_val_users"] == 40
    assert s["vocab_size"] < 100


@pytest.mark.parametrize(
    ("corpus", "kwargs", "match"),
    [
        (Corpus("c", [Record("a", "x" * 100)], [], {}), {}, "at least 2"),
        (Corpus("c", [Record("a", "x" * 20), Record("b", "y" * 200)], [], {}), {"split_seed": 1}, "example"),
        (_letters_corpus(2, 1, 3), {"seq_len": 4}, "training users give only 0"),
        (
            Corpus(
                "c",
                [Record("a", "pin 1"), Record("a", "x" * 99), Record("b", "pin 1"), Record("c", "tiny")],
                [Canary("canary-00", "pin ", "1", 2, "0123456789", 1, " ")],
                {},
            ),
            {"seq_len": 16},
            "validation users give no examples",
        ),
        (_letters_corpus(), {"val_fraction": 1.5}, "validation fraction"),
        (_letters_corpus(), {"tokenizer": "bpe"}, "tokenizer must be one of"),
        (_letters_corpus(), {"seq_len": 0}, "sequence length"),
    ],
)
def test_impossible_data_raises(corpus: Corpus, kwargs: dict, match: str) -> None:
    with pytest.raises(CorpusError, match=match):
        build_lm_data(corpus, **kwargs)


def test_every_user_holding_a_canary_is_refused() -> None:
    corpus = Corpus("c", [Record("a", "pin 1"), Record("b", "pin 1")], [], {})
    corpus = Corpus("c", corpus.records, add_canary(_letters_corpus(2), "pin ", "1", 1, 0).canaries, {})
    with pytest.raises(CorpusError, match="every user holds a canary"):
        split_users(corpus, 0.5, 0)

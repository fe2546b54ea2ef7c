"""Splits are by user; windows are cut per record, never cross records or users, start with EOS."""

from __future__ import annotations

import pytest
import torch

from dpcore.data.builtin import builtin_corpus
from dpcore.data.corpus import Canary, Corpus, Record, add_canary
from dpcore.data.dataset import _record_windows, build_lm_data, split_users
from dpcore.data.tokenizer import EOS_ID, PAD_ID
from dpcore.errors import CorpusError


def _letters_corpus(n_users: int = 20, records: int = 3, length: int = 30) -> Corpus:
    """User i writes only letter i, so a window mixing letters would have crossed users."""
    recs = [Record(f"u{i:02d}", chr(ord("a") + i) * length) for i in range(n_users) for _ in range(records)]
    return Corpus("letters", recs, [], {})


def test_split_is_by_user_and_seeded() -> None:
    corpus = _letters_corpus()
    train, val = split_users(corpus, 0.2, split_seed=0)
    assert sorted(train + val) == corpus.users() and not set(train) & set(val)
    assert 1 <= len(val) <= 10  # Binomial(20, 0.2): each user is placed on their own
    assert split_users(corpus, 0.2, split_seed=0) == (train, val)
    assert split_users(corpus, 0.2, split_seed=1) != (train, val)
    with pytest.raises(CorpusError, match="no user of the 20 fell into validation"):
        split_users(corpus, 0.001, 0)


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


def test_each_record_is_eos_tokens_eos_cut_into_padded_windows() -> None:
    # 40 chars -> [EOS] + 40 + [EOS] = 42 tokens: windows of 17, 17 and a padded tail of 8
    corpus = Corpus("c", [Record(u, "x" * 40) for u in ("a", "b", "c")], [], {})
    data = build_lm_data(corpus, seq_len=16, val_fraction=0.3)
    assert data.train.shape == (6, 17)
    first, second, tail = data.train[:3]
    assert first[0] == EOS_ID and (first[1:] == data.tokenizer.encode("x")[0]).all()
    assert second[0] != EOS_ID and not (second == PAD_ID).any()  # no overlap: it goes on from x 17
    assert (tail[:8] != PAD_ID).all() and (tail[8:] == PAD_ID).all() and tail[7] == EOS_ID
    assert data.tokenizer.decode(first.tolist() + second.tolist() + tail.tolist()) == "\n" + "x" * 40 + "\n"
    s = data.summary()
    assert s["num_records"] == 3 and s["num_train_records"] == 2 and s["num_multiwindow_records"] == 2


def test_a_window_needs_two_real_tokens() -> None:
    # 15 chars -> 17 tokens: exactly one window; 16 chars -> 18 tokens: the lone final EOS is dropped
    for n, rows in ((15, 1), (16, 1), (17, 2)):
        corpus = Corpus("c", [Record(u, "y" * n) for u in ("a", "b", "c")], [], {})
        data = build_lm_data(corpus, seq_len=16, val_fraction=0.3)
        assert data.train.shape[0] == 2 * rows, n
        assert ((data.train != PAD_ID).sum(dim=1) >= 2).all()


def test_records_never_share_a_window_and_each_starts_with_eos() -> None:
    corpus = Corpus("c", [Record(u, t) for u in "abcd" for t in ("hello", "world there")], [], {})
    data = build_lm_data(corpus, seq_len=32, val_fraction=0.25)
    assert data.train.shape[0] == 6 and (data.train[:, 0] == EOS_ID).all()
    assert data.tokenizer.decode(data.train[0].tolist()) == "\nhello\n"
    assert data.tokenizer.decode(data.train[1].tolist()) == "\nworld there\n"
    assert data.summary()["num_multiwindow_records"] == 0


@pytest.mark.parametrize("tokenizer", ["char", "word"])
def test_editing_one_record_changes_only_its_own_rows(tokenizer: str) -> None:
    corpus = builtin_corpus(seed=3, num_users=40)
    data = build_lm_data(corpus, tokenizer=tokenizer, seq_len=16, val_fraction=0.2)
    victim_user = data.train_users[0]
    index = next(i for i, r in enumerate(corpus.records) if r.user_id == victim_user)
    records = list(corpus.records)
    old_text = records[index].text
    records[index] = Record(victim_user, " ".join([old_text] * 3))  # longer, no new token
    edited = build_lm_data(Corpus(corpus.name, records, corpus.canaries, corpus.metadata), tokenizer=tokenizer,
                           seq_len=16, val_fraction=0.2)
    assert edited.tokenizer == data.tokenizer and edited.train_users == data.train_users
    before, after = data.train.tolist(), edited.train.tolist()
    # the user's first record comes first among the user's rows
    start = data.train_example_users.index(victim_user)
    old_rows = len(_record_windows(data.tokenizer.encode(old_text), 17))
    new_rows = len(_record_windows(data.tokenizer.encode(records[index].text), 17))
    assert after[:start] == before[:start]
    assert after[start + new_rows :] == before[start + old_rows :]  # every later row is unchanged
    assert new_rows > old_rows and len(after) == len(before) + new_rows - old_rows
    assert after[start : start + new_rows] != before[start : start + old_rows]
    assert after[start][0] == EOS_ID and after[start + new_rows][0] == EOS_ID
    assert torch.equal(edited.val, data.val)


def test_word_level_data() -> None:
    records = [Record(f"u{i}", f"the cat number {i} sat on the mat again") for i in range(10)]
    corpus = Corpus("w", records, [], {})
    data = build_lm_data(corpus, tokenizer="word", seq_len=8, val_fraction=0.2)
    assert data.tokenizer.kind == "word" and data.train.shape[1] == 9
    assert data.tokenizer.decode(data.train[0].tolist()).startswith("\nthe cat number")


def test_builtin_at_seq_len_64() -> None:
    data = build_lm_data(builtin_corpus(num_users=400), seq_len=64)
    s = data.summary()
    assert s["num_train_examples"] > 2000 and s["num_val_examples"] > 100
    # each user validates on their own with probability 0.1: Binomial(400, 0.1), mean 40, sd 6
    assert s["num_train_users"] + s["num_val_users"] == 400 and 16 <= s["num_val_users"] <= 64
    assert s["vocab_size"] < 100


@pytest.mark.parametrize(
    ("corpus", "kwargs", "match"),
    [
        (Corpus("c", [Record("a", "x" * 100)], [], {}), {}, "at least 2"),
        # split seed 4 at fraction 0.5 draws "b" and "u00" for validation, "a" and "u01" for training
        (Corpus("c", [Record("a", "x" * 20), Record("b", "y" * 200)], [], {}), {"split_seed": 4, "val_fraction": 0.5},
         "training users give only 1 example"),
        (_letters_corpus(2, 1, 3), {"seq_len": 4, "split_seed": 4, "val_fraction": 0.5}, "training users give only 1"),
        (Corpus("c", [Record("a", "x" * 200), Record("b", "y" * 200)], [], {}), {"split_seed": 1},
         "no user of the 2 fell into validation"),
        (
            Corpus(
                "c",
                [Record("a", "pin 1"), Record("a", "x" * 99), Record("b", "pin 1"), Record("c", "")],
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

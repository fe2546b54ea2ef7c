"""The built-in corpus is deterministic and its canaries are planted exactly as recorded."""

from __future__ import annotations

import json
import re

import pytest

from dpcore.data import builtin as builtin_mod
from dpcore.data.builtin import builtin_corpus, builtin_vocabulary
from dpcore.data.corpus import Canary, Corpus, Record, add_canary
from dpcore.data.dataset import build_lm_data, split_users
from dpcore.data.tokenizer import EOS_ID, UNK_ID
from dpcore.errors import CorpusError


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return builtin_corpus(seed=0)


def test_same_seed_gives_identical_records(corpus: Corpus) -> None:
    again = builtin_corpus(seed=0)
    assert again.records == corpus.records
    assert again.canaries == corpus.canaries
    assert json.dumps(again.to_dict()) == json.dumps(corpus.to_dict())


def test_different_seed_differs(corpus: Corpus) -> None:
    other = builtin_corpus(seed=1)
    assert other.records != corpus.records
    assert [c.secret for c in other.canaries] != [c.secret for c in corpus.canaries]


def test_size_and_shape(corpus: Corpus) -> None:
    assert len(corpus.users()) == 4000
    assert 1_500_000 <= corpus.num_chars() <= 3_000_000
    assert 150_000 <= builtin_corpus(seed=0, num_users=400).num_chars() <= 300_000
    canary_texts = {c.text() for c in corpus.canaries}
    per_user: dict[str, int] = {}
    for r in corpus.records:
        assert "\n" not in r.text
        if r.text not in canary_texts:
            assert 20 <= len(r.text) <= 120
            per_user[r.user_id] = per_user.get(r.user_id, 0) + 1
    assert set(per_user.values()) <= set(range(5, 13))


def test_canary_format_and_counts(corpus: Corpus) -> None:
    assert sorted(c.insertions for c in corpus.canaries) == [1, 1, 3, 3, 10, 10, 30, 30]
    assert len({c.prefix for c in corpus.canaries}) == 8
    assert len({c.id for c in corpus.canaries}) == 8
    for c in corpus.canaries:
        assert re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+'s PIN is \d \d \d \d", c.text())
        assert (c.alphabet, c.length, c.separator) == ("0123456789", 4, " ")
        assert sum(r.text == c.text() for r in corpus.records) == c.insertions
        # the prefix (the name) occurs only in the planted records
        name = c.prefix.split("'")[0]
        assert sum(name in r.text for r in corpus.records) == c.insertions
    meta = {m["id"]: m for m in corpus.metadata["canaries"]}
    assert {c.id: c.insertions for c in corpus.canaries} == {i: m["insertions"] for i, m in meta.items()}
    assert sorted(corpus.metadata["canary_users"]) == corpus.canary_users()


def test_canary_names_are_disjoint_from_the_word_lists() -> None:
    for full in builtin_mod.CANARY_NAMES:
        first, last = full.split()
        assert first not in builtin_mod.FIRST_NAMES and last not in builtin_mod.LAST_NAMES


@pytest.mark.parametrize("split_seed", [0, 1, 7])
def test_canary_users_always_train(corpus: Corpus, split_seed: int) -> None:
    train, val = split_users(corpus, 0.1, split_seed)
    assert set(corpus.canary_users()) <= set(train)
    assert not set(train) & set(val)


def test_each_insertion_is_one_whole_training_window(corpus: Corpus) -> None:
    data = build_lm_data(corpus, seq_len=64)
    for c in corpus.canaries:
        rows = data.canary_rows[c.id]
        assert len(rows) == c.insertions
        for i in rows:
            assert data.train[i, 0] == EOS_ID  # scored as [EOS] + prefix from a zero state
            assert data.tokenizer.decode(data.train[i].tolist()) == "\n" + c.text() + "\n"
            assert data.train_example_users[i] in data.train_users


def test_generator_vocabulary_covers_every_record_it_can_produce() -> None:
    big = builtin_corpus(seed=11, num_users=3000)
    tok = build_lm_data(big, seq_len=64).tokenizer
    assert tok.itos[3:] == builtin_vocabulary("char")
    assert tok.vocab_size < 100
    for r in big.records:
        assert UNK_ID not in tok.encode(r.text), r.text
    words = build_lm_data(big, tokenizer="word", seq_len=64).tokenizer
    assert words.itos[3:] == builtin_vocabulary("word")
    for c in big.canaries:  # names, "PIN is" and single digits: canary scoring never meets UNK
        assert UNK_ID not in words.encode(c.text()), c.text()
    assert len(builtin_vocabulary("word", max_vocab=50)) == 47


@pytest.mark.parametrize("tokenizer", ["char", "word"])
def test_a_private_token_does_not_change_the_builtin_vocabulary(corpus: Corpus, tokenizer: str) -> None:
    data = build_lm_data(corpus, tokenizer=tokenizer, seq_len=32)
    user = data.train_users[0]
    extra = Corpus(corpus.name, [*corpus.records, Record(user, "Жанна zorblaxiquent Ж")], corpus.canaries,
                   corpus.metadata)
    again = build_lm_data(extra, tokenizer=tokenizer, seq_len=32)
    assert user in again.train_users
    assert again.tokenizer.to_dict() == data.tokenizer.to_dict()
    assert UNK_ID in again.tokenizer.encode("Ж")
    s = again.summary()
    assert "generator" in s["vocabulary"] and s["vocabulary_epsilon"] == 0.0
    other = build_lm_data(builtin_corpus(seed=9, num_users=50), tokenizer=tokenizer, seq_len=32)
    assert other.tokenizer.to_dict() == data.tokenizer.to_dict()  # the same for every seed and size


def test_canary_methods() -> None:
    c = Canary("canary-00", "Dana Whitfield's PIN is ", "4 9 1 7", 3, "0123456789", 4, " ")
    assert c.candidates_count() == 10_000
    assert c.format_secret(("4", "9", "1", "7")) == "4 9 1 7"
    assert c.text() == "Dana Whitfield's PIN is 4 9 1 7"


def _small_corpus(n_users: int = 10) -> Corpus:
    records = [
        Record(f"u{i}", f"message {j} from user {i} about nothing") for i in range(n_users) for j in range(4)
    ]
    return Corpus("small", records, [], {})


def test_add_canary_plants_copies_without_touching_the_input() -> None:
    base = _small_corpus()
    out = add_canary(base, "my locker code is ", "3 1 4", insertions=5, seed=0)
    assert len(base.records) == 40 and not base.canaries
    (c,) = out.canaries
    assert (c.id, c.length, c.candidates_count()) == ("canary-00", 3, 1000)
    assert sum(r.text == "my locker code is 3 1 4" for r in out.records) == 5
    holders = out.canary_users()
    assert 1 <= len(holders) <= 5 and holders == out.metadata["canary_users"]
    assert add_canary(base, "my locker code is ", "3 1 4", 5, seed=0).records == out.records
    # records of every user stay together
    seen: list[str] = []
    for r in out.records:
        if not seen or seen[-1] != r.user_id:
            assert r.user_id not in seen
            seen.append(r.user_id)


def test_add_canary_keeps_half_the_users_free() -> None:
    corpus = _small_corpus(6)
    for i in range(4):
        corpus = add_canary(corpus, f"secret number {i} is ", "1 2", insertions=6, seed=i)
    assert len(corpus.canary_users()) <= 3
    train, val = split_users(corpus, 0.3, 0)
    assert val and set(corpus.canary_users()) <= set(train)


@pytest.mark.parametrize(
    ("prefix", "secret", "insertions", "match"),
    [
        ("message 1 from user", "1 2 3 4", 1, "already appears"),
        ("", "1 2 3 4", 1, "prefix is empty"),
        ("pin: ", "1 2 x 4", 1, "single characters"),
        ("pin: ", "12 3", 1, "single characters"),
        ("pin: ", "1 2 3 4", 0, "insertions"),
        ("pin:\n", "1 2 3 4", 1, "one line"),
    ],
)
def test_add_canary_rejects_bad_input(prefix: str, secret: str, insertions: int, match: str) -> None:
    with pytest.raises(CorpusError, match=match):
        add_canary(_small_corpus(), prefix, secret, insertions, seed=0)


def test_corpus_dict_round_trip(corpus: Corpus) -> None:
    again = Corpus.from_dict(json.loads(json.dumps(corpus.to_dict())))
    assert again.records == corpus.records
    assert again.canaries == corpus.canaries
    assert again.metadata == corpus.metadata
    with pytest.raises(CorpusError, match="malformed"):
        Corpus.from_dict({"name": "x"})


def test_builtin_rejects_too_few_users() -> None:
    with pytest.raises(CorpusError, match="at least 20 users"):
        builtin_corpus(num_users=5)

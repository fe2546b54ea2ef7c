"""Neighbouring files give neighbouring training sets (dp-correctness.md, "Neighbouring files").

The privacy claim is about the uploaded *file*: adding or removing one person, with all their
records, must change the training set by that person's windows alone. Every data-dependent step
between the bytes and the batches is in the path here: parsing, the record cap, grouping by
user, the split by user and window cutting. hypothesis is not installed, so the property runs
over a seeded random loop of files, neighbours, split seeds and validation fractions.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from dpcore.data import upload as upload_mod
from dpcore.data.builtin import builtin_corpus
from dpcore.data.corpus import Corpus, Record, add_canary
from dpcore.data.dataset import LMData, _record_windows, build_lm_data, split_users
from dpcore.data.upload import load_corpus_bytes
from dpcore.errors import CorpusError

WORDS = ("the", "train", "was", "late", "again", "my", "doctor", "said", "pin", "is", "call", "mum", "at",
         "noon", "rain", "today", "bank", "card", "lost", "found", "42", "street", "café", "über")
SEQ_LEN = 12
CASES = 160

Person = tuple[str, list[str]]  # (user id, their records)


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 16)))  # 1 to 8 windows of 13 tokens


def _people(rng: random.Random, n: int, per_user: tuple[int, int]) -> list[Person]:
    people = [(f"p{i:03d}", [_text(rng) for _ in range(rng.randint(*per_user))]) for i in range(n)]
    for _ in range(rng.randint(0, 3)):  # identical records by different people
        (_, a), (_, b) = rng.sample(people, 2)
        b[0] = a[0]
    return people


def _file(kind: str, people: list[Person], order: list[int]) -> tuple[bytes, str, dict]:
    """``order`` interleaves the records: entry k is the person whose next record comes k-th."""
    queues = {i: list(recs) for i, (_, recs) in enumerate(people)}
    rows = [(people[i][0], queues[i].pop(0)) for i in order]
    if kind == "txt":
        return "\n".join(t for _, t in rows).encode(), "notes.txt", {}
    if kind == "rows":  # a CSV without a user column: each row is its own user, as in a .txt
        return ("text\n" + "\n".join(t for _, t in rows) + "\n").encode(), "notes.csv", {"text_column": "text"}
    body = "\n".join(f'{k},"{t}",{u}' for k, (u, t) in enumerate(rows))
    return f"id,text,author\n{body}\n".encode(), "notes.csv", {"text_column": "text", "user_column": "author"}


def _order(rng: random.Random, people: list[Person]) -> list[int]:
    order = [i for i, (_, recs) in enumerate(people) for _ in recs]
    rng.shuffle(order)
    return order


def _view(data: LMData) -> tuple[Counter, Counter, Counter, set[str], set[str]]:
    """Train windows, train users and val users as multisets of their windows, and the user names.

    A user is compared by content (the multiset of their windows): a .txt names users by line
    number, and those names shift when a line is added above them, without changing any unit.
    """
    def grouped(rows: list[list[int]], owners: list[str]) -> Counter:
        by_user: dict[str, list[tuple[int, ...]]] = {}
        for row, user in zip(rows, owners, strict=True):
            by_user.setdefault(user, []).append(tuple(row))
        return Counter(tuple(sorted(w)) for w in by_user.values())

    train, val = data.train.tolist(), data.val.tolist()
    return (Counter(map(tuple, train)), grouped(train, data.train_example_users),
            grouped(val, data.val_example_users), set(data.train_users), set(data.val_users))


def _build(data: bytes, name: str, kwargs: dict, split_seed: int, val_fraction: float) -> LMData:
    corpus = load_corpus_bytes(data, name, **kwargs)
    return build_lm_data(corpus, seq_len=SEQ_LEN, val_fraction=val_fraction, split_seed=split_seed)


def _windows(data: LMData, texts: list[str]) -> list[tuple[int, ...]]:
    return [tuple(w) for t in texts for w in _record_windows(data.tokenizer.encode(t), SEQ_LEN + 1)]


def _check_neighbours(small: LMData, big: LMData, texts: list[str], user: str, named: bool) -> str:
    """``big`` is ``small`` plus one person (``texts``): their windows went to train or to val, nothing else moved."""
    u = _windows(big, texts)
    unit = Counter([tuple(sorted(u))])
    s_windows, s_train, s_val, s_train_names, s_val_names = _view(small)
    b_windows, b_train, b_val, b_train_names, b_val_names = _view(big)
    side = "train" if b_windows != s_windows else "val"
    if side == "train":
        assert b_windows == s_windows + Counter(u), "the training windows changed by more than the person's"
        assert (b_train, b_val) == (s_train + unit, s_val), "another user changed side or content"
    else:
        assert (b_train, b_val) == (s_train, s_val + unit), "another user changed side or content"
    if named:  # a user column: names are stable, so the user lists differ by this person alone
        assert (b_train_names - s_train_names, b_val_names - s_val_names) == (
            ({user}, set()) if side == "train" else (set(), {user}))
        assert (s_train_names <= b_train_names, s_val_names <= b_val_names) == (True, True)
    return side


def test_adding_or_removing_one_person_changes_the_training_set_by_their_records_alone(monkeypatch) -> None:
    rng = random.Random(28)
    outcomes: Counter = Counter()
    for case in range(CASES):
        kind = rng.choice(("txt", "rows", "csv", "csv"))
        one = kind != "csv"  # one record per person: a line or row is a user
        people = _people(rng, rng.randint(60, 110), (1, 1) if one else (1, 6))
        order = _order(rng, people)
        split_seed, val_fraction = rng.randrange(2**32), rng.uniform(0.05, 0.5)
        # the cap sits near the file's size, so some neighbours cross it (and must be refused whole)
        monkeypatch.setattr(upload_mod, "MAX_RECORDS", len(order) + rng.randint(-3, 8))
        direction = rng.choice(("add", "remove"))
        if direction == "add":
            extra = (f"p{len(people):03d}", [_text(rng) for _ in range(1 if one else rng.randint(1, 6))])
            small_people, big_people, small_order = people, [*people, extra], order
            big_order = list(order)
            for _ in extra[1]:  # the new person's records land anywhere in the file
                big_order.insert(rng.randint(0, len(big_order)), len(people))
        else:
            gone = rng.randrange(len(people))
            big_people, big_order = people, order
            small_people = [p for i, p in enumerate(people) if i != gone]
            small_order = [i - (i > gone) for i in order if i != gone]
            extra = people[gone]
        files = {}
        for label, (who, how) in {"small": (small_people, small_order), "big": (big_people, big_order)}.items():
            data, name, kwargs = _file(kind, who, how)
            try:
                files[label] = _build(data, name, kwargs, split_seed, val_fraction)
            except CorpusError as err:  # outside the domain of valid files: refused, never cut or reshuffled
                assert len(how) > upload_mod.MAX_RECORDS or "validation" in str(err), (case, str(err))
                files[label] = None
        if files["small"] is None or files["big"] is None:
            outcomes["refused"] += 1
            continue
        outcomes[_check_neighbours(files["small"], files["big"], extra[1], extra[0], kind == "csv")] += 1
    # the loop really exercised both sides and the refusals (a property over no case proves nothing)
    assert outcomes["train"] >= CASES // 3 and outcomes["val"] >= 5 and outcomes["refused"] >= 5, outcomes


def _old_split(corpus: Corpus, val_fraction: float, split_seed: int) -> set[str]:
    """The validation users of the rule before issue 28: a shuffle of all users, cut at round(f·N)."""
    users = corpus.users()
    n_val = min(max(1, round(val_fraction * len(users))), len(users) - 1)
    random.Random(split_seed).shuffle(users)
    return set(users[:n_val])


def _moved(lines: list[str], neighbour: list[str], split_seed: int, rule) -> int:
    """Users other than the one added or removed whose side differs (a .txt: users are known by their line)."""
    def sides(texts: list[str]) -> dict[str, bool]:
        corpus = load_corpus_bytes("\n".join(texts).encode(), "notes.txt")
        val = rule(corpus, split_seed)
        return {r.text: r.user_id in val for r in corpus.records}

    a, b = sides(lines), sides(neighbour)
    return sum(a[t] != b[t] for t in set(a) & set(b))


@pytest.mark.parametrize("split_seed", [0, 1, 2])
def test_no_other_user_moves_when_one_line_is_added_or_removed(split_seed: int) -> None:
    rng = random.Random(split_seed)
    lines = [f"person {i} wrote a line about the weather and the trains" for i in range(1001)]
    base = lines[:1000]
    added = list(base)
    added.insert(rng.randrange(1001), lines[1000])
    removed = list(base)
    del removed[rng.randrange(1000)]

    def new(c: Corpus, s: int) -> set[str]:
        return set(split_users(c, 0.1, s)[1])

    def old(c: Corpus, s: int) -> set[str]:
        return _old_split(c, 0.1, s)

    assert (_moved(base, added, split_seed, new), _moved(base, removed, split_seed, new)) == (0, 0)
    # the same measurement catches the old rule, so a zero above is not a measurement that cannot fail
    assert _moved(base, added, split_seed, old) > 0 and _moved(base, removed, split_seed, old) > 0


def test_the_split_is_deterministic_and_near_the_fraction() -> None:
    texts = [f"person {i} wrote a line about the weather and the trains" for i in range(1000)]
    corpus = load_corpus_bytes("\n".join(texts).encode(), "notes.txt")
    train, val = split_users(corpus, 0.1, 5)
    assert split_users(corpus, 0.1, 5) == (train, val)
    assert 100 - 4 * 9.5 <= len(val) <= 100 + 4 * 9.5  # Binomial(1000, 0.1): sd 9.5
    assert set(split_users(corpus, 0.1, 6)[1]) != set(val)


def test_canary_holders_and_the_split_ignore_the_rest_of_the_crowd() -> None:
    # 511 -> 512 people: the old random.sample over the user list reshuffled most of the 88 holders here
    small, big = builtin_corpus(num_users=511), builtin_corpus(num_users=512)
    new = set(big.users()) - set(small.users())
    assert set(big.canary_users()) - new == set(small.canary_users()) - new
    for split_seed in (0, 1, 2):
        s_val, b_val = set(split_users(small, 0.1, split_seed)[1]), set(split_users(big, 0.1, split_seed)[1])
        assert b_val - new == s_val
    # removing someone who holds no canary leaves every canary with the same holders
    base = Corpus("c", [Record(f"u{i:03d}", f"message {j} from person {i} about lunch") for i in range(60)
                        for j in range(3)], [], {})
    planted = add_canary(base, "the door code is ", "1 2 3", insertions=5, seed=9)
    free = sorted(set(base.users()) - set(planted.canary_users()))
    for gone in free[:10]:
        fewer = Corpus("c", [r for r in base.records if r.user_id != gone], [], {})
        assert add_canary(fewer, "the door code is ", "1 2 3", insertions=5, seed=9).canary_users() == \
            planted.canary_users()

"""The built-in corpus's crowd size (TrainConfig.builtin_users) and the public corpora beside it."""

from __future__ import annotations

import pytest

from dpcore.config import TrainConfig
from dpcore.data import Corpus, Record, build_lm_data, load_corpus
from dpcore.data.builtin import DEFAULT_USERS, MAX_USERS, MIN_USERS, builtin_corpus, generate_people
from dpcore.data.public import PUBLIC_SEED, public_builtin_corpus, public_corpus, public_text_corpus
from dpcore.errors import ConfigError, CorpusError
from dpcore.runs.preview import data_summary


def _people_records(corpus):
    planted = {c.text() for c in corpus.canaries}
    return [r for r in corpus.records if r.text not in planted]


def test_the_default_crowd_is_the_config_default_and_thousands_strong() -> None:
    assert DEFAULT_USERS == TrainConfig().builtin_users == 4000
    assert (MIN_USERS, MAX_USERS) == (20, 10_000)
    corpus = load_corpus("builtin")
    assert len(corpus.users()) == DEFAULT_USERS and corpus.metadata["num_users"] == DEFAULT_USERS
    assert corpus.records == builtin_corpus(seed=0).records  # deterministic


def test_crowds_are_nested_and_share_their_canaries() -> None:
    small, large = builtin_corpus(seed=0, num_users=400), builtin_corpus(seed=0, num_users=1000)
    assert len(large.users()) == 1000
    first = set(small.users())
    assert [r for r in _people_records(large) if r.user_id in first] == _people_records(small)
    key = [(c.id, c.prefix, c.secret, c.insertions) for c in small.canaries]
    assert key == [(c.id, c.prefix, c.secret, c.insertions) for c in large.canaries]
    assert sorted(c.insertions for c in large.canaries) == [1, 1, 3, 3, 10, 10, 30, 30]
    for c in large.canaries:
        assert sum(r.text == c.text() for r in large.records) == c.insertions


@pytest.mark.parametrize("bad", [MIN_USERS - 1, MAX_USERS + 1, True, 400.0])
def test_out_of_range_crowds_are_refused(bad: object) -> None:
    with pytest.raises(CorpusError, match="at least 20 users and at most 10,000"):
        builtin_corpus(num_users=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="people in the built-in corpus"):
        TrainConfig(builtin_users=bad).validate()  # type: ignore[arg-type]


def test_load_corpus_and_the_preview_follow_the_crowd_size() -> None:
    assert len(load_corpus("builtin", builtin_users=1000).users()) == 1000
    small = data_summary(TrainConfig(builtin_users=400))
    large = data_summary(TrainConfig(builtin_users=4000))
    assert small["num_train_users"] + small["num_val_users"] == 400
    assert large["num_train_users"] + large["num_val_users"] == 4000
    assert large["num_train_examples"] > 8 * small["num_train_examples"]


def test_a_stored_config_from_before_the_crowd_choice_keeps_its_400_people() -> None:
    stored = TrainConfig().to_dict()
    del stored["builtin_users"]
    assert TrainConfig.from_dict(stored).builtin_users == 400
    assert TrainConfig.from_dict(TrainConfig(builtin_users=1000).to_dict()).builtin_users == 1000


# ------------------------------------------------------------------------------ the public corpora
def test_the_public_crowd_shares_no_user_and_no_canary_with_the_private_corpus() -> None:
    public = public_builtin_corpus()
    assert PUBLIC_SEED != 0 and public.canaries == [] and not public.metadata.get("canaries")
    assert public.metadata["public"] is True
    for size in (DEFAULT_USERS, MAX_USERS):
        private = builtin_corpus(seed=0, num_users=size)
        assert not set(public.users()) & set(private.users())
        texts = [r.text for r in public.records]
        for c in private.canaries:
            name = c.prefix.split("'")[0]
            assert not any(name in t or c.secret in t for t in texts), c.prefix
    assert all(u.startswith("public-") for u in public.users())
    # other people, not the same people renamed: the first public person's messages are not the first private one's
    assert [r.text for r in generate_people(PUBLIC_SEED, 20, prefix="public")[:5]] != [
        r.text for r in generate_people(0, 20)[:5]]


def test_the_public_text_for_uploads_is_prose_shipped_with_python() -> None:
    text = public_text_corpus()
    assert public_corpus("/any/upload.csv") is text and public_corpus("builtin") is public_builtin_corpus()
    assert len(text.records) > 1000 and text.canaries == []
    assert all(20 <= len(r.text) <= 400 and "\n" not in r.text for r in text.records)
    assert all(r.user_id.startswith("doc-") for r in text.records)
    private = builtin_corpus(seed=0)
    for c in private.canaries:
        assert not any(c.prefix.split("'")[0] in r.text or c.secret in r.text for r in text.records)


@pytest.mark.parametrize("tokenizer", ["char", "word"])
def test_each_public_corpus_gets_the_vocabulary_of_the_runs_it_serves(tokenizer: str) -> None:
    def tok(corpus):
        return build_lm_data(corpus, tokenizer=tokenizer, seq_len=16, max_vocab=500).tokenizer

    assert tok(public_builtin_corpus()) == tok(builtin_corpus(seed=0, num_users=60))
    upload = Corpus("notes.txt", [Record(f"line-{i}", f"note number {i} about the weather") for i in range(40)],
                    [], {"source": "upload"})
    assert tok(public_text_corpus()) == tok(upload)


def test_the_crowd_size_and_the_start_reach_the_cli_and_links_from_the_config() -> None:
    from dpcore.cli.args import Parser, add_train_arguments, config_from_args
    from dpcore.views.urlstate import config_to_params, params_to_config

    parser = Parser()
    add_train_arguments(parser)
    config = config_from_args(parser.parse_args(["--builtin-users", "1000", "--init", "public"]))
    assert (config.builtin_users, config.init) == (1000, "public")
    params = config_to_params(config, None)
    assert params["builtin_users"] == "1000" and params["init"] == "public"
    assert params_to_config(params).config == config
    assert "must be a whole number from 20 to 10000" in params_to_config({"builtin_users": "5"}).messages[0]


def test_the_lesson_presets_change_only_the_crowd_or_the_start() -> None:
    from dpcore.config.presets import CROWD_SIZES, crowd_choices, get_preset

    base = get_preset("workshop-eps8-person").config
    assert base.builtin_users == DEFAULT_USERS and base.init == "public"
    assert get_preset("lesson-eps8-400").config == base.replace(builtin_users=400)
    assert get_preset("lesson-eps8-scratch").config == base.replace(init="scratch")
    assert DEFAULT_USERS in CROWD_SIZES and crowd_choices(2500) == [400, 1000, 2500, 4000, 10_000]

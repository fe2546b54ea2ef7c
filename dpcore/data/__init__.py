"""The data layer: corpora (built-in or uploaded), canaries, data-independent tokenizers and LM windows.

Nothing here imports streamlit: the CLI, the worker and the dashboard all load data the same way.
Importing this package does not import torch either (only :func:`build_lm_data` makes tensors);
the dashboard sizes a corpus with :func:`summarize_lm_data`.
"""

from dpcore.data.builtin import builtin_corpus, builtin_vocabulary
from dpcore.data.corpus import Canary, Corpus, Record, add_canary, normalize_text
from dpcore.data.dataset import LMData, build_lm_data, split_users, summarize_lm_data
from dpcore.data.tokenizer import (
    EOS_ID,
    PAD_ID,
    UNK_ID,
    ByteTokenizer,
    CharTokenizer,
    Tokenizer,
    WordTokenizer,
    make_tokenizer,
    public_word_tokenizer,
    tokenizer_from_dict,
)
from dpcore.data.upload import (
    EXTENSIONS,
    MAX_UPLOAD_BYTES,
    MIN_CORPUS_CHARS,
    csv_columns,
    load_corpus,
    load_corpus_bytes,
)

__all__ = [
    "EOS_ID",
    "EXTENSIONS",
    "MAX_UPLOAD_BYTES",
    "MIN_CORPUS_CHARS",
    "PAD_ID",
    "UNK_ID",
    "ByteTokenizer",
    "Canary",
    "CharTokenizer",
    "Corpus",
    "LMData",
    "Record",
    "Tokenizer",
    "WordTokenizer",
    "add_canary",
    "build_lm_data",
    "builtin_corpus",
    "builtin_vocabulary",
    "csv_columns",
    "load_corpus",
    "load_corpus_bytes",
    "make_tokenizer",
    "normalize_text",
    "public_word_tokenizer",
    "split_users",
    "summarize_lm_data",
    "tokenizer_from_dict",
]

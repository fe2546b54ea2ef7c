"""How readable private decoding is at each ε per token: the measurement behind the operating points.

    python -m dpcore train --out runs/default --quiet      # the default run (Gaussian, ε = 8, characters)
    python bench/decoding_points.py --checkpoint runs/default/model.pt [--texts 200]

Each setting continues the same prompts ``--texts`` times (up to 16 tokens, as the operating points)
and the table shows, for each: the ε per token, the most one text may spend, the mean ε a text
really spent (it stops early at the end of a record), and the share of the letters it wrote that
belong to real words of three letters or more (wordfreq's 30,000 most frequent English words, or a
word of the public built-in corpus: names and places count) — plain sampling at the same
temperature is the ceiling, uniformly random characters the floor. The operating points
(``dpcore.privacy.decoders.OPERATING_POINTS``) are the rows marked ◀. Private decoders draw secret
randomness, so two invocations differ by a few points.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PROMPTS = ("my phone number is", "I ", "the ", "Reminder: ", "call ")
MAX_TOKENS = 16


def _real_words() -> set[str]:
    import wordfreq

    from dpcore.data import builtin_corpus

    words = set(wordfreq.top_n_list("en", 30_000))
    words.update(w for r in builtin_corpus().records for w in re.findall(r"[a-z]+", r.text.lower()))
    return words


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--texts", type=int, default=200)
    args = parser.parse_args(argv)

    import torch

    from dpcore.privacy.decoders import OPERATING_POINTS, DecoderSpec, mix_weight_for
    from dpcore.training.checkpoint import load_checkpoint
    from dpcore.training.generate import decode

    torch.set_num_threads(1)
    ckpt = load_checkpoint(args.checkpoint)
    vocab = ckpt.tokenizer.vocab_size
    real = _real_words()
    rows: list[tuple[str, DecoderSpec, int, bool]] = [
        ("plain, T 0.8", DecoderSpec("plain", temperature=0.8), MAX_TOKENS, False),
        ("plain, T 0.5", DecoderSpec("plain", temperature=0.5), MAX_TOKENS, False),
        ("uniform characters", DecoderSpec("mix", mix=0.0), MAX_TOKENS, False),
    ]
    rows += [(f"exponential B 4, T {t:g}", DecoderSpec("exponential", logit_bound=4.0, temperature=t), MAX_TOKENS,
              False) for t in (8.0, 2.0, 1.0)]
    rows += [(f"mix ε₀ {e:g}, T 0.5", DecoderSpec("mix", mix=mix_weight_for(e, vocab), temperature=0.5),
              MAX_TOKENS, False) for e in (2.0, 4.0, 6.0, 10.0)]
    rows += [(f"{p.name}: mix ε₀ {p.epsilon_per_token:g}, T {p.temperature:g}", p.spec(vocab), p.max_tokens, True)
             for p in OPERATING_POINTS.values()]
    print(f"checkpoint {args.checkpoint} ({ckpt.tokenizer.kind}, V = {vocab}), {args.texts} texts per row, "
          f"prompts {PROMPTS}")
    print(f"{'setting':34s} {'ε/token':>8s} {'ε/text ≤':>9s} {'ε spent':>8s} {'real-word letters':>17s}  example")
    for label, spec, tokens, point in rows:
        found = total = 0
        spent = 0.0
        example = ""
        for i in range(args.texts):
            prompt = PROMPTS[i % len(PROMPTS)]
            out = decode(ckpt.model, ckpt.tokenizer, prompt, spec, max_tokens=tokens, seed=i)
            words = re.findall(r"[a-z]+", out.text[len(prompt):].lower())
            found += sum(len(w) for w in words if len(w) >= 3 and w in real)
            total += sum(len(w) for w in words)
            spent += out.epsilon_basic_total or 0.0
            example = example or (out.text if i == 0 else "")
        eps = spec.epsilon_per_token(vocab) if spec.has_guarantee or spec.name == "mix" else None
        cols = (f"{eps:8.3g} {eps * tokens:9.3g} {spent / args.texts:8.3g}" if eps is not None
                else f"{'—':>8s} {'—':>9s} {'—':>8s}")
        print(f"{label:34s} {cols} {found / max(total, 1):17.0%}  {example!r}{' ◀' if point else ''}")


if __name__ == "__main__":
    main()

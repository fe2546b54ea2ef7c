"""DP-RNN Lab's core: everything the dashboard and ``python -m dpcore`` do, with no UI.

The package map, from the bottom layer up (imports point downwards only; see docs/architecture.md):

* ``errors``, ``events``, ``paths``, ``records`` — one-sentence errors, what the trainer emits (and
  ``RunInfo``), where data lives, typed records that round-trip their JSON exactly.
* ``privacy/`` — mechanisms and accountants as registered objects, ε accounting and calibration,
  the δ rules, the plan of a run, secure noise, private decoders and their composition.
* ``config/`` — :class:`~dpcore.config.TrainConfig`, the one definition of a run, and its presets.
* ``data/`` — corpora, tokenizers, the user-level split, public texts.
* ``training/`` — the GRU, its engines, the loop and its typed result (``RunResult``), the public
  model, generation.
* ``runs/`` — a run's record (run), the store (one facade over one module per job: db, schema,
  records, ledger, upload_store, quota), executors, the worker, quotas, rooms, the gallery (and its shipped snapshot),
  uploads, the preview, the attack lab's games, and the one check of who may read a model's text.
* ``audit/`` — canaries, membership and one-run lower bounds on ε.
* ``views/`` — what pages and reports draw: sentences, tables, charts (no torch, no streamlit).
* ``cli/`` — the command line.
"""

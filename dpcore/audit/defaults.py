"""Audit defaults, in a module that imports nothing heavy: the CLI's ``--help`` reads them."""

#: Confidence of the empirical ε lower bound.
CONFIDENCE = 0.95
#: Members and non-members attacked, each (the built-in corpus has ~256 held-out windows).
MAX_EXAMPLES = 2000
#: Fewer held-out windows than this and membership inference is skipped (its numbers would be noise).
MIN_EXAMPLES = 20
#: How the calibrated attack gets its reference: "model" trains one, "none" skips that attack.
REFERENCES = ("model", "none")
#: The reference model trains for the run's steps, but at most this many.
MAX_REFERENCE_STEPS = 300

#: Canaries of the one-run audit (Steinke et al. 2023), about half of them trained on. Power grows with
#: m: with every guess right, 1000 canaries can show ε up to 5.3 at 95 % (500: 4.6); at ε = 8 the
#: black-box attack showed ε ≥ 0.62 with 1000. Cost: scoring 1000 windows takes ~1 s, and on the
#: built-in corpus (5937 real windows of 32 characters) the ~500 included add ~8 % to N and to the
#: epoch, not to the steps.
AUDIT_CANARIES = 1000
#: Fractions of the canaries guessed (half "in", half "out"), fixed before training; the bound pays
#: for trying them all with a union bound (α divided by their number).
ONE_RUN_GUESS_FRACTIONS = (0.04, 0.1, 0.2, 0.5, 1.0)
#: Shuffled copies per canary that calibrate the one-run score.
ONE_RUN_SHUFFLES = 4

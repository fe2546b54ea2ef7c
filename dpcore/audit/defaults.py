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

"""User-facing errors.

Every problem a user can cause (a bad ε, an empty upload, an unknown run id) is raised as a
:class:`DPCoreError` whose message is one plain sentence naming the problem and, where possible,
the fix. The CLI prints it on one line with exit code 2; the dashboard shows it next to the
control. Anything else that escapes is a bug.
"""

from __future__ import annotations


class DPCoreError(ValueError):
    """A problem with the user's input or request, explained in ``str(err)``."""


class ConfigError(DPCoreError):
    """An invalid training or accounting configuration (ε ≤ 0, δ ≥ 1/N, ...)."""


class CorpusError(DPCoreError):
    """A corpus that cannot be used: empty, binary, wrongly encoded, oversized, missing a column."""


class CheckpointError(DPCoreError):
    """A checkpoint file that is missing, corrupt or was not written by dpcore."""


class TrainingDiverged(DPCoreError):
    """The loss became NaN or infinite on a non-empty batch (the trainer stops the run at once)."""


class TextRefused(DPCoreError):
    """Text from a model without a guarantee asked for by someone the disclosure rule keeps it from."""

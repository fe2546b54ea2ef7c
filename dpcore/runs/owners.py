"""Owner keys: what the store accepts as one, and the prefix of the server's own pinned runs.

Every run, upload and private-decoding charge belongs to an owner key (a browser's, or ``cli:...``);
:func:`check_owner` is the one check of it, shared by every part of the run store.
"""

from __future__ import annotations

from dpcore.errors import DPCoreError

#: Owner keys that start with this are the server's own pinned runs (the demo gallery): no browser
#: or CLI user holds one, and retention never deletes them.
PINNED_OWNER_PREFIX = "pinned:"


def check_owner(owner: str) -> str:
    """``owner`` if it is a usable owner key (1 to 200 characters, not blank), else a one-sentence error."""
    if not isinstance(owner, str) or not owner.strip() or len(owner) > 200:
        raise DPCoreError("a run or upload needs an owner key (1 to 200 characters)")
    return owner

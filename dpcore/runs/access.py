"""Who may read text from a stored model: the one rule below every page, report, export and CLI path.

Text sampled from a model without a DP guarantee can quote the text it was trained on. For the
built-in corpus that text is synthetic and public, and from a DP-trained model any text is
post-processing that its training ε covers, so anyone may read it, with any decoder. A model
without a guarantee trained on an *upload* is different (:func:`owner_only`):

* its owner reads every decoder's text on their own model;
* anyone else gets a decoder with a guarantee of its own (exponential, noisy-max, mix and the
  operating points) and nothing else: plain sampling and naive-logits are refused with
  :class:`~dpcore.errors.TextRefused`;
* and everyone but the owner together spends at most the model's *stranger budget* on it
  (:data:`dpcore.runs.limits.DEFAULT_STRANGER_BUDGET`, ε = 8 unless the owner raised it), enforced
  by :meth:`dpcore.runs.store.RunStore.charge_inference` in the same transaction as the charge.

:func:`text_access` is the check every path calls with (run, viewer, decoder); a viewer of None is
someone unknown (an exported file, a share link), so it is treated as a stranger. The local
``python -m dpcore generate --checkpoint`` needs no check: whoever holds the weights holds the text.
No torch and no streamlit here: the store and the views import this.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from dpcore.errors import TextRefused


class TextAccess(str, Enum):
    """Why a viewer may read a text: the answer of :func:`text_access` when it does not refuse."""

    PUBLIC = "public"  # a DP-trained model (post-processing) or the built-in corpus (public text): anyone
    OWNER = "owner"  # the model's owner, on their own model: every decoder
    STRANGER = "stranger"  # anyone else, with a private decoder: charged to the model's stranger budget


class RunLike(Protocol):
    """What the rule reads of a run (the store's ``Run`` is one)."""

    owner: str
    config: Mapping[str, Any]

    @property
    def guarantee(self) -> str: ...


class DecoderLike(Protocol):
    """What the rule reads of a decoder (a :class:`dpcore.privacy.decoders.DecoderSpec` is one)."""

    name: str

    @property
    def has_guarantee(self) -> bool: ...


@dataclass(frozen=True)
class TextSource:
    """Text made by something other than a decoder here, named by how it was drawn."""

    name: str
    has_guarantee: bool = False


#: The samples a worker stores while training (plain sampling of the model at that step).
STORED_SAMPLES = TextSource("plain")


@dataclass(frozen=True)
class StrangerBudget:
    """What everyone but the owner has spent on private decoding of an owner-only model, and may spend."""

    budget: float
    is_default: bool  # False: the owner set it on purpose (the statement says so)
    spent: float
    default: float  # the server's default, named next to an owner's raise

    @property
    def remaining(self) -> float:
        return max(0.0, self.budget - self.spent)

    @property
    def raised(self) -> bool:
        """The owner allowed strangers more than the default."""
        return not self.is_default and self.budget > self.default


def owner_only(run: RunLike) -> bool:
    """Whether text without a guarantee from this run's model is for its owner only (no DP, an upload)."""
    return str(run.config.get("corpus", "builtin")) != "builtin" and str(run.guarantee) != "dp"


def is_stranger(run: RunLike, viewer: str | None) -> bool:
    """Anyone but the run's owner; None (an export, an unknown reader) counts as a stranger."""
    return viewer is None or viewer != run.owner


def text_access(run: RunLike, viewer: str | None, decoder: DecoderLike) -> TextAccess:
    """How ``viewer`` may read ``decoder``'s text from the run's model, or :class:`TextRefused`.

    The one check: pages, reports, exports and the CLI call it before any text from a stored model
    is drawn or shown, so no new decoder or view can bypass it.
    """
    if not owner_only(run):
        return TextAccess.PUBLIC
    if not is_stranger(run, viewer):
        return TextAccess.OWNER
    if decoder.has_guarantee:
        return TextAccess.STRANGER
    raise TextRefused(
        f"{decoder.name} text from this model is for its owner only: the model was trained without a privacy "
        "guarantee on its owner's uploaded text, which such text can quote; choose a private decoder "
        "(exponential, noisy-max, mix or an operating point), whose ε is charged to the model's stranger budget"
    )


def may_read(run: RunLike, viewer: str | None, decoder: DecoderLike) -> bool:
    """:func:`text_access` as a yes or no, for views that leave text out instead of explaining why."""
    try:
        text_access(run, viewer, decoder)
    except TextRefused:
        return False
    return True

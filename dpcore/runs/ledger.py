"""The inference ledger: what private decoding of each stored model has spent, against its budgets.

One job: every text privately decoded from a run's model is charged here (who asked, the decoder,
tokens, ε per token, the text's ε) before it is decoded, in the same write transaction that checks
the model's budget (basic composition) and, for a model whose text is for its owner only
(:func:`dpcore.runs.access.owner_only`), the stranger budget of everyone but the owner.
:class:`InferenceLedger` is the part of :class:`~dpcore.runs.store.RunStore` that does it.
"""

from __future__ import annotations

import math
import sqlite3
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from dpcore.errors import DPCoreError
from dpcore.runs import access
from dpcore.runs.limits import DEFAULT_INFERENCE_BUDGET, DEFAULT_STRANGER_BUDGET  # noqa: F401 - re-exported
from dpcore.runs.owners import check_owner

if TYPE_CHECKING:
    from dpcore.runs.run import Run




class InferenceBudgetExceeded(DPCoreError):
    """A private decoding charge that would take a model's inference ledger past its budget."""


class StrangerBudgetExceeded(InferenceBudgetExceeded):
    """A non-owner's private decoding charge past what everyone but the owner may spend on the model."""


@dataclass(frozen=True)
class LedgerEntry:
    """One privately decoded text: ``epsilon`` = ``tokens`` × ``epsilon_per_token`` (basic composition)."""

    id: int
    run_id: str
    ts: float
    viewer: str  # the owner key of whoever asked (never shown)
    decoder: str
    tokens: int
    epsilon_per_token: float
    epsilon: float


@dataclass(frozen=True)
class LedgerState:
    """A run's inference ledger read in one transaction. ``spent`` is the basic-composition total."""

    run_id: str
    budget: float
    budget_is_default: bool
    entries: tuple[LedgerEntry, ...]
    charged: LedgerEntry | None = None  # the entry :meth:`RunStore.charge_inference` just wrote
    owner: str = ""
    strangers_capped: bool = False  # the model's text is for its owner only: the stranger budget applies
    stranger_budget: float = DEFAULT_STRANGER_BUDGET
    stranger_budget_is_default: bool = True

    @property
    def spent(self) -> float:
        return math.fsum(e.epsilon for e in self.entries)

    @property
    def remaining(self) -> float:
        return max(0.0, self.budget - self.spent)

    @property
    def stranger_spent(self) -> float:
        """The basic-composition total of every text decoded by someone other than the owner."""
        return math.fsum(e.epsilon for e in self.entries if e.viewer != self.owner)

    @property
    def stranger_remaining(self) -> float:
        return max(0.0, self.stranger_budget - self.stranger_spent)

    @property
    def strangers(self) -> access.StrangerBudget | None:
        """The stranger budget and what it has left; None when the model's text is not for its owner only."""
        if not self.strangers_capped:
            return None
        return access.StrangerBudget(self.stranger_budget, self.stranger_budget_is_default, self.stranger_spent,
                                     DEFAULT_STRANGER_BUDGET)

    @property
    def tokens(self) -> int:
        return sum(e.tokens for e in self.entries)


class InferenceLedger:
    """The run store's private-decoding ledger (a part of :class:`~dpcore.runs.store.RunStore`).

    Uses the store's ``transaction``, ``get_run`` and ``_owner_update`` (an owner-only change of one
    ``runs`` column).
    """

    def charge_inference(self, run_id: str, viewer: str, decoder: str, epsilon_per_token: float,
                         tokens: int) -> LedgerState:
        """Record that ``viewer`` decodes up to ``tokens`` tokens privately, if the budget allows.

        The budget check and the insert are ONE write transaction (``BEGIN IMMEDIATE`` serialises
        writers across threads and processes), so concurrent viewers can never overspend. Raises
        :class:`InferenceBudgetExceeded` (and records nothing) when the charge would take the
        basic-composition total past the run's budget, and :class:`StrangerBudgetExceeded` when
        ``viewer`` is not the owner of a model whose text is for its owner only
        (:func:`dpcore.runs.access.owner_only`) and the charge would take everyone-but-the-owner's
        total past the stranger budget: the same transaction checks both. Charge the most a text may
        spend *before* decoding it, then :meth:`settle_inference` down to what it used.
        """
        viewer = check_owner(viewer)
        eps0, tokens = float(epsilon_per_token), int(tokens)
        if not (math.isfinite(eps0) and eps0 > 0):
            raise DPCoreError(f"ε per token must be a positive number, got {epsilon_per_token!r}")
        if tokens < 0:
            raise DPCoreError(f"a text cannot spend a negative number of tokens ({tokens})")
        cost = eps0 * tokens
        with self.transaction() as conn:
            run = self.get_run(run_id, conn=conn)
            state = self._ledger(conn, run)
            if (state.strangers_capped and viewer != run.owner
                    and state.stranger_spent + cost > state.stranger_budget * (1 + 1e-12)):
                raise StrangerBudgetExceeded(
                    f"this text may spend ε = {cost:.3g} ({tokens} tokens × {eps0:.3g}), but everyone other than "
                    f"the owner may spend ε = {state.stranger_budget:.3g} in total on this model (its stranger "
                    f"budget, {'the default' if state.stranger_budget_is_default else 'set by its owner'}) and "
                    f"{state.stranger_remaining:.3g} is left: the model has no privacy guarantee of its own, so "
                    f"ask for fewer tokens or a smaller ε per token, or ask the run's owner"
                )
            if state.spent + cost > state.budget * (1 + 1e-12):
                raise InferenceBudgetExceeded(
                    f"this text may spend ε = {cost:.3g} ({tokens} tokens × {eps0:.3g}), but the model's "
                    f"private-decoding budget of ε = {state.budget:.3g} has {state.remaining:.3g} left: ask for "
                    f"fewer tokens or a smaller ε per token, or ask the run's owner to raise the budget"
                )
            row = conn.execute(
                "INSERT INTO inference_ledger (run_id, ts, viewer, decoder, tokens, epsilon_per_token, epsilon) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *",
                (run_id, time.time(), viewer, str(decoder), tokens, eps0, cost),
            ).fetchone()
            entry = LedgerEntry(**dict(row))
            return replace(state, entries=(*state.entries, entry), charged=entry)

    def settle_inference(self, entry_id: int, tokens: int) -> None:
        """Lower a charged entry to the ``tokens`` a text really used (never raises a charge)."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE inference_ledger SET tokens = ?, epsilon = ? * epsilon_per_token "
                "WHERE id = ? AND tokens >= ?",
                (int(tokens), int(tokens), int(entry_id), int(tokens)),
            )

    def ledger(self, run_id: str) -> LedgerState:
        """The run's inference ledger: every private text's charge, its budget and totals."""
        with self.transaction(write=False) as conn:
            return self._ledger(conn, self.get_run(run_id, conn=conn))

    def _ledger(self, conn: sqlite3.Connection, run: Run) -> LedgerState:
        rows = conn.execute("SELECT * FROM inference_ledger WHERE run_id = ? ORDER BY id", (run.id,)).fetchall()
        return LedgerState(run.id, run.effective_inference_budget, run.inference_budget is None,
                           tuple(LedgerEntry(**dict(r)) for r in rows), owner=run.owner,
                           strangers_capped=access.owner_only(run), stranger_budget=run.effective_stranger_budget,
                           stranger_budget_is_default=run.stranger_budget is None)

    def set_inference_budget(self, run_id: str, owner: str, epsilon: float | None) -> Run:
        """The owner sets the ε budget for private decoding of their run's model (None: the default)."""
        if epsilon is not None:
            epsilon = float(epsilon)
            if not (math.isfinite(epsilon) and epsilon >= 0):
                raise DPCoreError(f"the inference budget must be a number ≥ 0, got {epsilon!r}")
        return self._owner_update(run_id, owner, "inference_budget", epsilon)

    def set_stranger_budget(self, run_id: str, owner: str, epsilon: float | None) -> Run:
        """The owner raises (or cuts) what everyone else may spend on private decoding of their model.

        A deliberate choice, kept on the run and named in its privacy statement; None goes back to
        :data:`~dpcore.runs.limits.DEFAULT_STRANGER_BUDGET`. Anyone but the owner is refused with
        :class:`RunNotFound`, as every owner-only change is.
        """
        if epsilon is not None:
            epsilon = float(epsilon)
            if not (math.isfinite(epsilon) and epsilon >= 0):
                raise DPCoreError(f"the stranger budget must be a number ≥ 0, got {epsilon!r}")
        return self._owner_update(run_id, owner, "stranger_budget", epsilon)

"""Frontier sweeps: one action launches a grid of runs over ε that share every other setting.

A sweep is a list of configs (:func:`sweep_configs`: the base config at each ε, plus a non-private
baseline if asked) submitted through any executor (:func:`submit_sweep`), and a small record
``<data folder>/sweeps/<sweep id>.json`` (owner key, run ids, ε values, time) that groups them. The
record lives beside the store, not in it: sweeps need no schema change, and a run that is deleted
simply drops out of its sweep (:func:`load_sweep` keeps the runs that still exist).

A sweep is all or nothing at submit: every config is checked against the server's limits first, and
the owner must have room for all of its runs (queued or running), so a refused sweep leaves no half
grid behind. Compare opens on a sweep with ``?runs=<its ids>``.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dpcore.config import PRIVATE_MECHANISMS, TrainConfig
from dpcore.errors import DPCoreError
from dpcore.privacy.registry import NONE
from dpcore.runs.executors.base import Executor, check_submission
from dpcore.runs.store import QuotaExceeded, RunStore

MAX_SWEEP_VALUES = 12
_SWEEP_ID_RE = re.compile(r"^[0-9a-f]{12}$")


@dataclass(frozen=True)
class Sweep:
    """A launched grid: ``run_ids`` in the order of ``epsilons`` (then the baseline, if any)."""

    id: str
    owner: str
    run_ids: tuple[str, ...]
    epsilons: tuple[float, ...]
    baseline: bool
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_epsilons(text: str | Sequence[float]) -> list[float]:
    """"0.5, 1, 2" (or numbers) -> sorted distinct positive ε values; one sentence when that fails."""
    items = [s for s in re.split(r"[,\s;]+", text.strip()) if s] if isinstance(text, str) else list(text)
    values: list[float] = []
    for item in items:
        try:
            value = float(item)
        except (TypeError, ValueError):
            raise DPCoreError(f"{item!r} is not a number: give ε values such as 0.5, 1, 2, 4, 8") from None
        if not (math.isfinite(value) and 0 < value <= 1000):
            raise DPCoreError(f"every ε of a sweep must be a number above 0 and at most 1000, got {item}")
        values.append(value)
    values = sorted(set(values))
    if not values:
        raise DPCoreError("a sweep needs at least one ε value, such as 0.5, 1, 2, 4, 8")
    if len(values) > MAX_SWEEP_VALUES:
        raise DPCoreError(f"a sweep takes at most {MAX_SWEEP_VALUES} ε values, got {len(values)}")
    return values


def sweep_configs(base: TrainConfig, epsilons: Sequence[float], *, with_baseline: bool = False) -> list[TrainConfig]:
    """The base config at each ε (every other setting shared), then its non-private baseline if asked.

    The base must use a private mechanism (ε means nothing otherwise). The baseline is the same data,
    model and training with ``mechanism="none"``, the config's own rules repairing what no longer
    applies (no accountant for a non-private run, and so on).
    """
    if base.mechanism not in PRIVATE_MECHANISMS:
        raise DPCoreError(
            f"a sweep over ε needs a private mechanism ({', '.join(sorted(PRIVATE_MECHANISMS))}), "
            f"not {base.mechanism!r}: choose one, or tick the baseline to include a run without privacy"
        )
    configs = [base.replace(epsilon=float(e)) for e in parse_epsilons(list(epsilons))]
    if with_baseline:
        configs.append(base.replace_consistent(given={"mechanism"}, mechanism=NONE.name))
    return configs


def submit_sweep(
    executor: Executor, owner: str, base: TrainConfig, epsilons: Sequence[float], *, with_baseline: bool = False,
    allow_local_paths: bool = False,
) -> Sweep:
    """Check every run of the sweep, then submit them all and record the sweep; returns it."""
    store = executor.store
    configs = sweep_configs(base, epsilons, with_baseline=with_baseline)
    limits = executor.limits
    for config in configs:  # all or nothing: a refused run refuses the sweep before anything is queued
        check_submission(store, owner, config, allow_local_paths=allow_local_paths, limits=limits)
    active = len(store.list_runs(owner, status=("queued", "running")))
    room = limits.max_runs_per_owner - active
    if len(configs) > room:
        raise QuotaExceeded(
            f"this sweep has {len(configs)} runs, but this server lets one person have {limits.max_runs_per_owner} "
            f"queued or running and you have {active}: sweep fewer ε values, or wait for your runs to finish"
        )
    run_ids = tuple(executor.submit(owner, c, allow_local_paths=allow_local_paths) for c in configs)
    sweep = Sweep(id=secrets.token_hex(6), owner=owner, run_ids=run_ids,
                  epsilons=tuple(c.epsilon for c in configs if c.mechanism in PRIVATE_MECHANISMS),
                  baseline=with_baseline, created_at=time.time())
    _write_record(store, sweep)
    return sweep


def load_sweep(store: RunStore, sweep_id: str, owner: str | None = None) -> Sweep:
    """A sweep by id (``owner``'s only, when given), keeping only its runs that still exist."""
    path = _record_path(store, sweep_id)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise DPCoreError(f"no sweep with id {sweep_id!r}") from None
    if owner is not None and data.get("owner") != owner:
        raise DPCoreError(f"no sweep with id {sweep_id!r}")
    existing = {r.id for r in store.list_runs(data["owner"])}
    data["run_ids"] = tuple(r for r in data["run_ids"] if r in existing)
    data["epsilons"] = tuple(data["epsilons"])
    return Sweep(**data)


def list_sweeps(store: RunStore, owner: str) -> list[Sweep]:
    """``owner``'s sweeps, newest first."""
    folder = store.data_dir / "sweeps"
    found = []
    for path in folder.glob("*.json") if folder.is_dir() else ():
        try:
            found.append(load_sweep(store, path.stem, owner))
        except DPCoreError:
            continue
    return sorted(found, key=lambda s: s.created_at, reverse=True)


def _record_path(store: RunStore, sweep_id: str) -> Path:
    if not _SWEEP_ID_RE.match(str(sweep_id)):
        raise DPCoreError(f"{sweep_id!r} is not a sweep id")
    return store.data_dir / "sweeps" / f"{sweep_id}.json"


def _write_record(store: RunStore, sweep: Sweep) -> None:
    path = _record_path(store, sweep.id)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(sweep.to_dict(), fh)

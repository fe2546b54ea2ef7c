"""The calibrated noise of a setting, computed once and reused by the preview, the launch and the worker.

Calibrating σ to a target ε costs several evaluations of the accountant: milliseconds with RDP,
seconds with PRV or PLD on a busy machine. The New run preview computes it, the worker used to
compute it again before its first step. This cache keys the answer by everything that determines it
(:class:`CalibrationKey`: mechanism, target ε, δ, q, steps, accountant, tolerance, and the versions
of the accountant code) and keeps it

* in memory, per process: values this process computed with :func:`calibrate_noise`, trusted, with
  the exact ε values that calibration evaluated (the next target for the same setting starts from
  them);
* optionally in a folder (:func:`use_folder`; the dashboard and the worker use the server's data
  folder), one small JSON file per key, written by :func:`persist` (the dashboard, at launch) and
  by the worker after computing. A value read from a file is **not trusted**: one evaluation of the
  exact accountant must show ε(σ) ≤ target and ε(σ) ≥ (1 − 2·tolerance)·target (σ not wastefully
  large), or σ below 1.5 × ``MIN_NOISE`` where calibration stops; otherwise σ is recomputed and
  the file replaced. A wrong file can cost time, never privacy.

The preview's fast approximations (:mod:`dpcore.privacy.preview_noise`) are never stored here: only
:func:`calibrate_noise` results are.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dpcore.privacy.registry import accountant_of

#: Bumped whenever calibration or an accountant here changes what σ a key gets.
REVISION = 2
#: Files kept in a cache folder (the oldest are removed past this).
MAX_FILES = 256
_SUFFIX = ".json"


@dataclass(frozen=True)
class CalibrationKey:
    """Everything σ depends on (the versions of the accountant code are added on disk)."""

    mechanism: str
    epsilon: float
    delta: float
    sample_rate: float
    steps: int
    accountant: str
    tolerance: float = 0.005

    def with_accountant(self, accountant: str) -> CalibrationKey:
        return CalibrationKey(self.mechanism, self.epsilon, self.delta, self.sample_rate, self.steps,
                              accountant, self.tolerance)


#: Keys remembered per process (the dashboard sees one per ε slider position; oldest dropped past this).
MAX_MEMORY = 4096
_memory: OrderedDict[CalibrationKey, float] = OrderedDict()
_computing: dict[CalibrationKey, threading.Event] = {}
_lock = threading.Lock()
_folder: Path | None = None


#: Exact ε values this process computed while calibrating, per setting (mechanism, q, steps, δ, accountant),
#: least recently used dropped past :data:`MAX_SETTINGS`: the brackets the next target for the same
#: setting starts from (the New run form's ε slider). Kept here, beside the σ they led to: one store.
MAX_SETTINGS = 64
_points: OrderedDict[tuple[str, float, int, float, str], Any] = OrderedDict()


def _known_epsilons(setting: tuple[str, float, int, float, str]) -> Any:
    from dpcore.privacy.accounting import KnownEpsilons  # numpy and scipy: imported on first use (see below)

    with _lock:
        known = _points.get(setting)
        if known is None:
            known = _points[setting] = KnownEpsilons()
            while len(_points) > MAX_SETTINGS:
                _points.popitem(last=False)
        else:
            _points.move_to_end(setting)
        return known


def calibrate_noise(*args: Any, **kwargs: Any) -> float:
    """:func:`dpcore.privacy.accounting.calibrate_noise` with this process's known ε values, imported on first use.

    This module is imported by the worker before anything else to set its folder; the accounting
    module brings numpy and scipy (a slow import a worker that fails early should not pay).
    """
    from dpcore.privacy.accounting import calibrate_noise as calibrate

    return calibrate(*args, known=_known_epsilons, **kwargs)


def clear_calibration_memo() -> None:
    """Forget the ε values calibration found (tests and benchmarks that time calibration from scratch)."""
    with _lock:
        _points.clear()


def use_folder(path: str | os.PathLike[str] | None) -> None:
    """Keep calibrations in ``path`` too (created private to this user), or in memory only (None)."""
    global _folder
    if path is None:
        _folder = None
        return
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    _folder = folder


def folder() -> Path | None:
    return _folder


def peek(key: CalibrationKey) -> float | None:
    """σ for ``key`` if this process already knows it (no file is read, nothing is computed)."""
    with _lock:
        return _memory.get(key)


def calibrated_noise(key: CalibrationKey, *, read_files: bool = True, write_files: bool = True) -> float:
    """σ for ``key`` by the exact accountant: from memory, else a checked file, else computed.

    Two threads asking for the same key compute it once. A computed value is written to the
    folder when one is set (so the next worker or launch with the same key reuses it), unless
    ``write_files`` is False; ``read_files`` False skips the folder (and its one-evaluation check),
    for callers to whom computing is as cheap as checking (RDP in the preview).
    """
    while True:
        with _lock:
            if key in _memory:
                return _memory[key]
            waiting = _computing.get(key)
            if waiting is None:
                _computing[key] = threading.Event()
                break
        waiting.wait()
    try:
        noise = _read_checked(key) if read_files else None
        if noise is None:
            noise = calibrate_noise(key.mechanism, key.epsilon, key.delta, key.sample_rate, key.steps,
                                    key.accountant, key.tolerance)
            if write_files:
                _write(key, noise)
        with _lock:
            _memory[key] = noise
            while len(_memory) > MAX_MEMORY:
                _memory.popitem(last=False)
        return noise
    finally:
        with _lock:
            _computing.pop(key).set()


def persist(key: CalibrationKey, to: str | os.PathLike[str] | None = None) -> bool:
    """Write the σ this process knows for ``key`` to ``to`` (default: the folder set); False if unknown."""
    noise = peek(key)
    target = Path(to) if to is not None else _folder
    if noise is None or target is None:
        return False
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write(key, noise, target)
    return True


def hand_over(key: CalibrationKey, to: str | os.PathLike[str], when: Future | None = None) -> None:
    """Write σ for ``key`` to ``to`` now if this process knows it, else once ``when`` finishes computing it.

    What a launch does for its worker (which checks the file before use): a full or read-only disk only
    costs the worker a calibration, so write errors are swallowed.
    """
    def write(_done: Future | None = None) -> None:
        with contextlib.suppress(OSError):
            persist(key, to)

    try:
        if persist(key, to) or when is None:
            return
    except OSError:  # an unwritable data folder: the worker calibrates itself
        return
    when.add_done_callback(write)


def folder_in(data_dir: str | os.PathLike[str]) -> Path:
    """Where a server keeps its calibrations: inside its data folder (private to the server's user)."""
    return Path(data_dir) / "cache" / "calibration"


def clear_memory() -> None:
    """Forget what this process computed, σ and ε values alike (tests; benchmarks timing a cold start)."""
    with _lock:
        _memory.clear()
        _points.clear()


# ------------------------------------------------------------------------------- files
@functools.lru_cache(maxsize=4)
def _versions(accountant: str) -> dict[str, str]:
    from importlib import metadata

    versions = {"dpcore-calibration": str(REVISION)}
    package = accountant_of(accountant).package
    if package:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "missing"
    return versions


def _record(key: CalibrationKey) -> dict[str, Any]:
    return {"key": asdict(key), "versions": _versions(key.accountant)}


def _path(key: CalibrationKey, where: Path | None = None) -> Path | None:
    where = where if where is not None else _folder
    if where is None:
        return None
    digest = hashlib.sha256(json.dumps(_record(key), sort_keys=True).encode()).hexdigest()[:40]
    return where / f"{digest}{_SUFFIX}"


def _write(key: CalibrationKey, noise: float, where: Path | None = None) -> None:
    path = _path(key, where)
    if path is None:
        return
    data = json.dumps({**_record(key), "noise": noise}, sort_keys=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError:  # a full or read-only disk only costs the next worker a calibration
        with contextlib.suppress(OSError):
            tmp.unlink()
        return
    _prune(path.parent)


def _prune(folder_path: Path) -> None:
    try:
        files = [p for p in folder_path.iterdir() if p.suffix == _SUFFIX and not p.name.startswith(".")]
        if len(files) <= MAX_FILES:
            return
        files.sort(key=lambda p: p.stat().st_mtime)
        for p in files[: len(files) - MAX_FILES]:
            p.unlink()
    except OSError:
        pass


def _read_checked(key: CalibrationKey) -> float | None:
    """σ from the key's file if it is well formed, for this very key, and passes the exact check."""
    path = _path(key)
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or {k: data.get(k) for k in ("key", "versions")} != _record(key):
        return None
    noise = data.get("noise")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)):
        return None
    noise = float(noise)
    return noise if trustworthy(key, noise) else None


def trustworthy(key: CalibrationKey, noise: float) -> bool:
    """One exact evaluation: does ``noise`` meet the target without being wastefully large?

    The same acceptance as :func:`calibrate_noise`'s answer: ε(σ) ≤ target, and ε(σ) within
    2 × tolerance of the target (calibration stops within 1 ×) unless σ sits at the small end where
    calibration stops early.
    """
    from dpcore.privacy.accounting import MAX_NOISE, MIN_NOISE, compute_epsilon

    if not (math.isfinite(noise) and MIN_NOISE / 2 <= noise <= MAX_NOISE):
        return False
    try:
        eps = compute_epsilon(key.mechanism, noise, key.sample_rate, key.steps, key.delta, key.accountant)
    except Exception:  # noqa: BLE001 - anything odd about a stored value means: recompute
        return False
    if not eps <= key.epsilon:
        return False
    return eps >= (1.0 - 2.0 * key.tolerance) * key.epsilon or noise < 1.5 * MIN_NOISE

"""The gallery shipped with the project (``assets/gallery/``): written from a prepared store, loaded into a fresh one.

Why a snapshot and not a quicker preparation: ``demo prepare`` trains nine audited runs at the
workshop presets' model and steps, about 20 s each on a 2-core CPU (worker start-up, 300 steps, the
audit) and three minutes or more in all; under a minute would take a third of the steps or no audit,
a gallery that no longer shows the presets a visitor then trains. Loading the snapshot takes well
under a second, so a fresh server shows the whole trade-off on its first visit. ``make gallery``
rebuilds it (a fresh ``demo prepare``, then :func:`write_snapshot`); ``tests/runs/test_gallery_snapshot.py``
fails when the snapshot no longer matches what ``demo prepare`` would train: the same configs as
:func:`~dpcore.runs.gallery.gallery_specs`, and the same ε, σ, q, δ and steps from the accountant.

Layout: ``manifest.json`` (format, version, the runs in gallery order), and one folder per gallery key
holding ``run.json`` (the store's row: config, info, result, device, last step), ``rows.json`` (the
store's metrics, evals and samples) and the run folder's files as the worker left them
(``result.json``, ``metrics.csv``, ``audit.json``, ``model.pt``, ``lab_canaries.npz``).

What it carries is what the store keeps on disk for any run, less the worker's log (pids and paths of
the machine that trained it) and timestamps. No secret of the training is in it: the DP noise and the
sampling came from the OS CSPRNG (``os.urandom``), so no seed of them exists; ``seed`` in a config is
the data's and the model's initialisation seed, public. ``audit.json`` keeps the audit coins' count and
the attack's outcome; its ``checkpoint`` path is replaced by the file name here and by the new run's path
on import. The one file with the coins is the attack lab's ``lab_canaries.npz`` (which synthetic canaries
were trained on, and the built-in corpus's synthetic PINs): they are the lab's answers, about no one's
data, and the Attack lab says on screen that a shipped model's answers can be read in the project's source.

Loading (:func:`import_snapshot`) writes each run through :class:`~dpcore.runs.store.RunStore`'s
public methods, as a worker would, under the gallery owner and the preparation lock, and skips a run
whose config no longer is the gallery's (``demo prepare`` then trains it). The dashboard loads it on a
fresh server's first script run (``DPCORE_DEMO_SNAPSHOT``: another folder, or ``off``).

No torch here: the dashboard imports this module.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpcore.config import TrainConfig
from dpcore.errors import DPCoreError
from dpcore.runs import gallery as demo
from dpcore.runs.executors.local import process_identity
from dpcore.runs.lifecycle import ARTIFACT_FILES, claim
from dpcore.runs.store import Run, RunStore, Status

FORMAT = "dpcore-gallery"
VERSION = 1
MANIFEST = "manifest.json"
RUN_FILE = "run.json"
ROWS_FILE = "rows.json"
#: The run folder's files a snapshot carries (artifact name → file name): all but the worker's log.
SNAPSHOT_ARTIFACTS = {name: filename for name, filename in ARTIFACT_FILES.items() if name != "log"}
#: The snapshot shipped in the repository.
SHIPPED = Path(demo.PROJECT_ROOT) / "assets" / "gallery"
ENV_SNAPSHOT = "DPCORE_DEMO_SNAPSHOT"
_OFF = ("0", "off", "no", "false", "none")
#: The store's fields of a run that the snapshot keeps (the rest is this server's: ids, pids, times).
_RUN_FIELDS = ("status", "config", "info", "result", "device", "last_step")


class SnapshotError(DPCoreError):
    """The snapshot folder is missing, unreadable or not a gallery snapshot of this format."""


def snapshot_folder(environ: Mapping[str, str] | None = None) -> Path | None:
    """The snapshot a fresh server loads: ``DPCORE_DEMO_SNAPSHOT`` (a folder, or ``off``), else the shipped one."""
    value = (os.environ if environ is None else environ).get(ENV_SNAPSHOT, "").strip()
    if value.lower() in _OFF:
        return None
    return Path(value).expanduser() if value else SHIPPED


# ------------------------------------------------------------------------------ writing
@dataclass(frozen=True)
class Written:
    folder: Path
    keys: tuple[str, ...]
    size_bytes: int


def write_snapshot(store: RunStore, out: str | os.PathLike[str]) -> Written:
    """Write the store's complete gallery (the finished run of each gallery spec's exact config) to ``out``.

    Refuses (:class:`SnapshotError`) unless every spec has one: a snapshot is the whole gallery. ``out``
    is replaced as a whole, so no file of an older snapshot stays behind.
    """
    out = Path(out)
    chosen: list[tuple[demo.GallerySpec, Run]] = []
    missing = []
    for spec in demo.gallery_specs():
        run = demo.finished_run(store, spec.config)
        if run is None:
            missing.append(spec.title)
        else:
            chosen.append((spec, run))
    if missing:
        raise SnapshotError("the gallery is not complete in this store (missing: " + ", ".join(missing)
                            + "): run `python -m dpcore demo prepare` first")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    entries = []
    for spec, run in chosen:
        folder = tmp / spec.key
        folder.mkdir()
        row = run.to_dict()  # info and result as the store keeps them (JSON)
        _write_json(folder / RUN_FILE, {field: row[field] for field in _RUN_FIELDS})
        metrics = [{k: v for k, v in row.items() if k != "ts"} for row in store.metrics(run.id)]
        evals = [{k: v for k, v in row.items() if k != "ts"} for row in store.evals(run.id)]
        samples = [{k: row[k] for k in ("step", "kind", "prompt", "text")} for row in store.samples(run.id)]
        _write_rows(folder / ROWS_FILE, {"metrics": metrics, "evals": evals, "samples": samples})
        files = store.artifacts(run.id)
        for name, filename in SNAPSHOT_ARTIFACTS.items():
            if name not in files:
                continue
            if name == "audit":
                audit = json.loads(Path(files[name]).read_text(encoding="utf-8"))
                if audit.get("checkpoint"):
                    audit["checkpoint"] = ARTIFACT_FILES["checkpoint"]  # not the path on the machine that trained it
                _write_json(folder / filename, audit)
            else:
                shutil.copyfile(files[name], folder / filename)
        entries.append({"key": spec.key, "title": spec.title, "folder": spec.key})
    _write_json(tmp / MANIFEST, {"format": FORMAT, "version": VERSION, "written_by": "python -m dpcore demo snapshot",
                                 "runs": entries})
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return Written(out, tuple(e["key"] for e in entries), size)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_rows(path: Path, tables: dict[str, list[dict[str, Any]]]) -> None:
    """JSON with one stored row a line: a third of the indented size, and a rebuild diffs row by row."""
    parts = []
    for name, rows in tables.items():
        lines = ",\n".join(json.dumps(row, sort_keys=True, ensure_ascii=False) for row in rows)
        parts.append(f"{json.dumps(name)}: [\n{lines}\n]")
    path.write_text("{\n" + ",\n".join(parts) + "\n}\n", encoding="utf-8")


# ------------------------------------------------------------------------------ reading
@dataclass(frozen=True)
class SnapshotRun:
    """One run of a snapshot as read from its folder."""

    key: str
    title: str
    folder: Path
    record: dict[str, Any]  # run.json

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.record["config"])

    @property
    def result(self) -> dict[str, Any]:
        return dict(self.record.get("result") or {})

    def rows(self) -> dict[str, list[dict[str, Any]]]:
        return _read_json(self.folder / ROWS_FILE)


def read_snapshot(folder: str | os.PathLike[str]) -> list[SnapshotRun]:
    """The runs of the snapshot in ``folder``, in gallery order; :class:`SnapshotError` if it is not one."""
    folder = Path(folder)
    manifest = _read_json(folder / MANIFEST)
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise SnapshotError(f"{folder} is not a gallery snapshot of format {FORMAT} v{VERSION}")
    runs = []
    for entry in manifest.get("runs") or []:
        sub = folder / str(entry["folder"])
        if sub.parent != folder:
            raise SnapshotError(f"{folder}: a run folder outside the snapshot ({entry['folder']!r})")
        runs.append(SnapshotRun(str(entry["key"]), str(entry["title"]), sub, _read_json(sub / RUN_FILE)))
    return runs


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise SnapshotError(f"no gallery snapshot file {path}") from err
    except (OSError, ValueError) as err:
        raise SnapshotError(f"cannot read the gallery snapshot file {path}: {err}") from err


# ------------------------------------------------------------------------------ importing
@dataclass(frozen=True)
class Imported:
    """What one import did: the keys it loaded, those already there, those it skipped as out of date."""

    loaded: tuple[str, ...] = ()
    present: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()
    seconds: float = 0.0
    busy: bool = False  # a preparation (or another import) holds the lock: nothing done


def import_snapshot(store: RunStore, folder: str | os.PathLike[str] | None = None, *,
                    report: Callable[[str], None] | None = None) -> Imported:
    """Load the snapshot's runs into ``store`` as the gallery owner's finished runs (missing ones only).

    A run whose config is not today's gallery config (a preset or the trainer's defaults changed since
    ``make gallery``) is skipped: ``demo prepare`` trains it. Holds the preparation lock, so it never
    runs beside a preparation; returns at once (``busy``) when one holds it.
    """
    say = report or (lambda _line: None)
    start = time.monotonic()
    runs = read_snapshot(folder or SHIPPED)
    wanted = {spec.key: spec.config.to_dict() for spec in demo.gallery_specs()}
    with demo.preparation_lock(store.data_dir) as mine:
        if not mine:
            say("the demo gallery is being prepared by another process: nothing imported")
            return Imported(busy=True)
        loaded, present, stale = [], [], []
        for snap in runs:
            if wanted.get(snap.key) != snap.config or snap.record.get("status") != Status.FINISHED:
                stale.append(snap.key)
                say(f"{snap.title}: the snapshot's run is not today's gallery run (rerun `make gallery`)")
                continue
            if demo.finished_run(store, TrainConfig.from_dict(snap.config)) is not None:
                present.append(snap.key)
                continue
            run_id = _load_one(store, snap)
            if run_id is not None:
                loaded.append(snap.key)
                say(f"{snap.title}: imported ({run_id})")
        return Imported(tuple(loaded), tuple(present), tuple(stale), time.monotonic() - start)


def _load_one(store: RunStore, snap: SnapshotRun) -> str | None:
    """One run, written as its worker would have: claimed, info, rows, files, then the final status."""
    run_id = store.create_run(demo.GALLERY_OWNER, snap.config)
    if claim(store, run_id, os.getpid(), pid_ident=process_identity(os.getpid())) is None:
        return None  # an executor took the queued row first: its worker trains it, like any gallery run
    try:
        record, rows = snap.record, snap.rows()
        store.set_run_info(run_id, record.get("info") or {}, device=record.get("device"))
        store.add_metrics(run_id, rows.get("metrics") or [])
        for row in rows.get("evals") or []:
            store.add_eval(run_id, row)
        for (step, kind, prompt), texts in _grouped(rows.get("samples") or []):
            store.add_samples(run_id, step, kind, prompt, texts)
        folder = store.run_dir(run_id)
        store.runs_dir.mkdir(mode=0o700, exist_ok=True)
        folder.mkdir(mode=0o700, exist_ok=True)
        for name, filename in SNAPSHOT_ARTIFACTS.items():
            source = snap.folder / filename
            if not source.exists():
                continue
            target = folder / filename
            data = source.read_bytes()
            if name == "audit":
                audit = json.loads(data)
                if audit.get("checkpoint"):
                    audit["checkpoint"] = str(folder / ARTIFACT_FILES["checkpoint"])
                data = json.dumps(audit).encode()
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # private, like a worker's files
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            store.add_artifact(run_id, name, target)
        store.finish_run(run_id, Status.FINISHED, result=snap.result)
    except BaseException as err:
        store.finish_run(run_id, Status.FAILED, error=f"the gallery snapshot could not be loaded: {err}")
        raise
    return run_id


def _grouped(samples: list[dict[str, Any]]) -> list[tuple[tuple[int, str, str], list[str]]]:
    """Consecutive samples of one (step, kind, prompt), in the order they were stored."""
    out: list[tuple[tuple[int, str, str], list[str]]] = []
    for row in samples:
        key = (int(row["step"]), str(row["kind"]), str(row["prompt"]))
        if out and out[-1][0] == key:
            out[-1][1].append(str(row["text"]))
        else:
            out.append((key, [str(row["text"])]))
    return out

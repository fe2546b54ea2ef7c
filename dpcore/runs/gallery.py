"""The instant demo: a pinned gallery of runs trained once, so a visitor sees the whole trade-off at once.

``python -m dpcore demo prepare`` trains, one after the other, the gallery on the built-in corpus:
Gaussian DP-SGD at ε = 0.5, 1, 2, 4, 8 and 16, the non-private baseline, the naive recipe (no
guarantee) and Laplace at ε = 8, each with the privacy audit (canary exposure, membership inference,
one-run ε lower bound). They are the workshop presets' model and steps, with one sample prompt
(:data:`DEMO_PROMPT`) so their samples read side by side.

The runs are ordinary runs in the run store, owned by :data:`GALLERY_OWNER`. No browser or CLI user
can hold that key (theirs are ``browser:…`` and ``cli:…``), so every visitor sees the gallery
read-only, like a shared link; the store's retention never deletes ``pinned:`` runs, so the gallery
survives restarts. Each run trains in ``python -m dpcore.runs.worker`` (the executor's worker: the
same memory cap, log and final status), started here rather than queued, so the gallery never takes a
visitor's place in the queue. A run the dashboard's executor happens to claim first is simply waited for.

One preparation at a time: an exclusive ``flock`` on ``<data folder>/demo/prepare.lock``, which the
system drops when the process ends, however it ends. The dashboard starts the command in the background
on first start when the gallery is missing (:func:`start_background`, when ``DPCORE_DEMO_AUTOPREPARE=1``,
as ``make app`` sets) and shows its progress from the store.

No torch here: the dashboard imports this module.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from dpcore.config import TrainConfig
from dpcore.config.presets import WORKSHOP, get_preset
from dpcore.privacy.registry import GAUSSIAN, Guarantee, mechanism_of
from dpcore.runs.store import PINNED_OWNER_PREFIX, Run, RunStore, Status

GALLERY_OWNER = PINNED_OWNER_PREFIX + "gallery"
GALLERY_EPSILONS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
#: Every gallery run samples from this prompt, so the samples read side by side (a canary's prefix
#: format: "my number is" is how the built-in chats give numbers away).
DEMO_PROMPT = "my number is"
ENV_AUTOPREPARE = "DPCORE_DEMO_AUTOPREPARE"
DEMO_FOLDER = "demo"
LOCK_NAME = "prepare.lock"
LOG_NAME = "prepare.log"
PROJECT_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding dpcore/


@dataclass(frozen=True)
class GallerySpec:
    """One picture of the gallery: its key (mechanism and ε), a title and the config that trains it."""

    key: str
    title: str
    config: TrainConfig


def gallery_key(config: TrainConfig | dict) -> str:
    """"gaussian-8", "laplace-8", "naive-1", "none": what a gallery run stands for, whatever its steps."""
    data = config.to_dict() if isinstance(config, TrainConfig) else config
    mech = str(data.get("mechanism"))
    if mechanism_of(mech).guarantee is not Guarantee.NONE:  # a private mechanism, or one that claims an ε
        return f"{mech}-{float(data.get('epsilon') or 0):g}"
    return mech


def gallery_specs(steps: int | None = None) -> list[GallerySpec]:
    """The gallery's runs in training order (baseline first: the reference line appears early).

    ``steps`` shortens every run (tests, a quick look); the default is the presets' own length.
    """
    def finish(config: TrainConfig) -> TrainConfig:
        config = config.replace(audit=True, sample_prompt=DEMO_PROMPT)
        if steps is not None:
            config = config.replace(max_steps=int(steps), epochs=None, eval_every=max(1, min(config.eval_every,
                                                                                            int(steps))))
        return config

    baseline = get_preset("workshop-none").config
    specs = [GallerySpec(gallery_key(baseline), "No privacy", finish(baseline))]
    for eps in GALLERY_EPSILONS:
        config = WORKSHOP.replace(mechanism=GAUSSIAN.name, epsilon=eps)
        specs.append(GallerySpec(gallery_key(config), f"ε = {eps:g}", finish(config)))
    naive = get_preset("workshop-naive").config
    specs.append(GallerySpec(gallery_key(naive), "Naive recipe (no guarantee)", finish(naive)))
    laplace = get_preset("workshop-laplace").config
    specs.append(GallerySpec(gallery_key(laplace), "Laplace, ε = 8", finish(laplace)))
    return specs


# ------------------------------------------------------------------------------ reading the gallery
@dataclass(frozen=True)
class GalleryState:
    """The gallery as stored now: the newest run of each spec (None: not trained yet)."""

    entries: tuple[tuple[GallerySpec, Run | None], ...]
    preparing: bool

    @property
    def runs(self) -> list[Run]:
        return [run for _, run in self.entries if run is not None]

    @property
    def finished(self) -> list[Run]:
        return [run for run in self.runs if run.status == "finished"]

    @property
    def complete(self) -> bool:
        return all(run is not None and run.status == "finished" for _, run in self.entries)

    @property
    def exists(self) -> bool:
        return bool(self.finished)

    @property
    def progress(self) -> float:
        """0..1: finished runs plus the running one's share of its steps."""
        done = 0.0
        for _, run in self.entries:
            if run is None:
                continue
            done += 1.0 if run.is_terminal else (run.progress or 0.0)
        return done / max(1, len(self.entries))


def gallery_state(store: RunStore, steps: int | None = None) -> GalleryState:
    """The newest gallery run per spec (any length), and whether a preparation is running."""
    newest: dict[str, Run] = {}
    for run in store.list_runs(GALLERY_OWNER):  # newest first
        newest.setdefault(gallery_key(run.config), run)
    entries = tuple((spec, newest.get(spec.key)) for spec in gallery_specs(steps))
    return GalleryState(entries, is_preparing(store.data_dir))


# ------------------------------------------------------------------------------ the lock
def _demo_dir(data_dir: Path) -> Path:
    folder = Path(data_dir) / DEMO_FOLDER
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def preparation_lock(data_dir: Path, *, note_pid: bool = True) -> Iterator[bool]:
    """Hold the preparation lock for the block; yields False (holding nothing) when another process has it."""
    fd = os.open(_demo_dir(data_dir) / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        if note_pid:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        yield True
    finally:
        os.close(fd)  # closing drops the lock


def is_preparing(data_dir: Path) -> bool:
    """Is some process preparing the gallery in this data folder right now?"""
    path = Path(data_dir) / DEMO_FOLDER / LOCK_NAME
    if not path.exists():
        return False
    with preparation_lock(Path(data_dir), note_pid=False) as mine:
        return not mine


# ------------------------------------------------------------------------------ preparing
@dataclass(frozen=True)
class Prepared:
    """What one ``prepare`` did: the gallery's runs, which it trained now, how long it took."""

    runs: tuple[Run, ...]
    trained: tuple[str, ...]  # keys trained by this call (the others were already there)
    seconds: float
    busy: bool = False  # another process was preparing: nothing done

    @property
    def failed(self) -> list[Run]:
        return [r for r in self.runs if r.status != "finished"]


def prepare(store: RunStore, *, steps: int | None = None, train_fn: str | None = None,
            python: str | None = None, report: Callable[[str], None] | None = None) -> Prepared:
    """Train every gallery run that has no finished run of exactly its config yet, one at a time.

    ``steps`` shortens the runs; ``train_fn`` replaces the trainer in the worker (tests only, never
    from user input). ``report`` gets one line per event. Returns at once (``busy``) if another
    process holds the lock.
    """
    say = report or (lambda _line: None)
    start = time.monotonic()
    with preparation_lock(store.data_dir) as mine:
        if not mine:
            say("the demo gallery is already being prepared by another process")
            return Prepared((), (), 0.0, busy=True)
        specs = gallery_specs(steps)
        trained: list[str] = []
        runs: list[Run] = []
        for i, spec in enumerate(specs, 1):
            done = finished_run(store, spec.config)
            if done is not None:
                say(f"[{i}/{len(specs)}] {spec.title}: already in the gallery ({done.id})")
                runs.append(done)
                continue
            t0 = time.monotonic()
            run = _train_one(store, spec.config, train_fn=train_fn, python=python)
            trained.append(spec.key)
            runs.append(run)
            say(f"[{i}/{len(specs)}] {spec.title}: {run.status} in {time.monotonic() - t0:.0f} s ({run.id})"
                + (f": {run.error}" if run.error else ""))
        return Prepared(tuple(runs), tuple(trained), time.monotonic() - start)


def finished_run(store: RunStore, config: TrainConfig) -> Run | None:
    """The gallery's finished run of exactly ``config`` (trained here or loaded from the snapshot), if any."""
    wanted = config.to_dict()
    for run in store.list_runs(GALLERY_OWNER, status="finished"):
        if run.config == wanted:
            return run
    return None


def _train_one(store: RunStore, config: TrainConfig, *, train_fn: str | None, python: str | None) -> Run:
    """Queue the run under the gallery owner and train it in a worker process now; the run when it ends."""
    run_id = store.create_run(GALLERY_OWNER, config)
    folder = store.run_dir(run_id)
    store.runs_dir.mkdir(mode=0o700, exist_ok=True)
    folder.mkdir(mode=0o700, exist_ok=True)
    cmd = [python or sys.executable, "-m", "dpcore.runs.worker", "--data-dir", str(store.data_dir), "--run-id", run_id]
    if train_fn:
        cmd += ["--train-fn", train_fn]
    fd = os.open(folder / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as log:
        done = subprocess.run(cmd, cwd=folder, env=worker_env(store), stdin=subprocess.DEVNULL, stdout=log,
                              stderr=subprocess.STDOUT, check=False)
    run = store.get_run(run_id)
    if done.returncode != 0 and run.status == Status.QUEUED:  # the worker never started it: fail, never wait
        store.finish_run(run_id, Status.FAILED, error=f"the gallery worker exited with code {done.returncode} "
                         "before it took the run (see worker.log)", only_if_running=False)
        run = store.get_run(run_id)
    while not run.is_terminal:  # the dashboard's executor claimed it first: its worker trains it
        time.sleep(1.0)
        run = store.get_run(run_id)
    return run


def worker_env(store: RunStore) -> dict[str, str]:
    """The environment of a gallery worker: the project on the path, the server's limits, one math thread."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PROJECT_ROOT, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(store.limits.to_env())
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")  # see LocalExecutor._child_env: one thread per worker is fastest here
    return env


# ------------------------------------------------------------------------------ in the background
def autoprepare_enabled(environ: dict[str, str] | None = None) -> bool:
    """Should the dashboard prepare a missing gallery on its own? (``DPCORE_DEMO_AUTOPREPARE=1``: make app.)"""
    value = (os.environ if environ is None else environ).get(ENV_AUTOPREPARE, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def start_background(store: RunStore, *, steps: int | None = None,
                     python: str | None = None) -> subprocess.Popen[bytes] | None:
    """Start ``python -m dpcore demo prepare`` detached (own session, output in demo/prepare.log).

    Returns None (starting nothing) when the gallery is complete or a preparation holds the lock.
    The caller should wait() on the process (a thread) so it leaves no zombie.
    """
    state = gallery_state(store, steps)
    if state.preparing or all(finished_run(store, spec.config) for spec, _ in state.entries):
        return None
    cmd = [python or sys.executable, "-m", "dpcore", "demo", "prepare", "--data-dir", str(store.data_dir)]
    if steps is not None:
        cmd += ["--steps", str(int(steps))]
    log: IO[bytes]
    fd = os.open(_demo_dir(store.data_dir) / LOG_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as log:
        return subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=worker_env(store), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


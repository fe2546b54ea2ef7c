"""``python -m dpcore demo ...``: the instant demo's gallery (see :mod:`dpcore.runs.gallery`).

``prepare`` trains the missing gallery runs one after the other (a few minutes on a laptop CPU) and
prints one line per run; ``snapshot`` writes a prepared gallery to a folder (``make gallery``:
``assets/gallery``, shipped in the repository), ``import`` loads such a folder into a store (the
dashboard does it on a fresh server's first start, in well under a second); ``status`` says what the
gallery holds. Exit codes: 0 complete (or another process is preparing it), 1 a gallery run failed or
the gallery is incomplete (``snapshot``), 2 a bad option.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dpcore.cli.args import positive_int
from dpcore.paths import ENV_DATA_DIR
from dpcore.runs import gallery as demo
from dpcore.runs import gallery_snapshot as snapshot
from dpcore.runs.store import RunStore


def register(subparsers: Any) -> None:
    """Add the ``demo`` command group to ``python -m dpcore``'s subparsers."""
    group = subparsers.add_parser("demo", help="the instant demo: prepare the pinned gallery of runs",
                                  description="The gallery: ε = " + ", ".join(f"{e:g}" for e in demo.GALLERY_EPSILONS)
                                  + ", no privacy, the naive recipe and Laplace at ε = 8, each audited, "
                                  "on the built-in corpus. The dashboard's Home shows it.")
    sub = group.add_subparsers(dest="demo_command", metavar="COMMAND", required=True)
    p = sub.add_parser("prepare", help="train the gallery runs that are missing (once; kept across restarts)")
    p.add_argument("--steps", type=positive_int, default=None, metavar="N",
                   help="train every gallery run for N steps instead of the presets' length (a quick gallery)")
    _common(p, cmd_prepare)
    p = sub.add_parser("snapshot", help="write the prepared gallery to a folder (make gallery: assets/gallery)")
    p.add_argument("--out", default=str(snapshot.SHIPPED), metavar="DIR",
                   help="the snapshot folder, replaced as a whole (default: the shipped assets/gallery)")
    _common(p, cmd_snapshot)
    p = sub.add_parser("import", help="load a gallery snapshot into the store (what a fresh dashboard does)")
    p.add_argument("--from", dest="source", default=str(snapshot.SHIPPED), metavar="DIR",
                   help="the snapshot folder (default: the shipped assets/gallery)")
    _common(p, cmd_import)
    p = sub.add_parser("status", help="what the gallery holds")
    _common(p, cmd_status)


def _common(p: argparse.ArgumentParser, handler: Any) -> None:
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help=f"where runs are kept (default: ${ENV_DATA_DIR}, else ~/.local/share/dp-rnn-lab)")
    p.set_defaults(func=handler)


def cmd_prepare(args: argparse.Namespace) -> int:
    store = RunStore(args.data_dir)
    done = demo.prepare(store, steps=args.steps, report=lambda line: print(line, flush=True))
    if done.busy:
        return 0
    failed = done.failed
    print(f"gallery: {len(done.runs) - len(failed)} of {len(done.runs)} runs finished, {len(done.trained)} trained "
          f"now in {done.seconds:.0f} s")
    if failed:
        print("failed: " + ", ".join(f"{r.id} ({r.error or r.status})" for r in failed), file=sys.stderr)
        return 1
    return 0


def cmd_snapshot(args: argparse.Namespace) -> int:
    try:
        written = snapshot.write_snapshot(RunStore(args.data_dir), args.out)
    except snapshot.SnapshotError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"gallery snapshot: {len(written.keys)} runs in {written.folder} ({written.size_bytes / 2**20:.2f} MiB)")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    try:
        done = snapshot.import_snapshot(RunStore(args.data_dir), args.source,
                                        report=lambda line: print(line, flush=True))
    except snapshot.SnapshotError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not done.busy:
        print(f"gallery snapshot: {len(done.loaded)} runs imported, {len(done.present)} already there, "
              f"{len(done.stale)} out of date, in {done.seconds:.2f} s")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state = demo.gallery_state(RunStore(args.data_dir))
    for spec, run in state.entries:
        print(f"{spec.title:32} {run.status if run else 'missing':10} {run.id if run else ''}")
    print("complete" if state.complete else "preparing" if state.preparing else "incomplete")
    return 0

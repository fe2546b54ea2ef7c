"""``python -m dpcore runs ...``: background runs from a terminal.

``submit`` takes the same training options as ``train`` and prints the run id as its last line;
``sweep`` submits one run per ε (``--epsilon 0.5,1,2,4,8``, plus ``--with-baseline``) sharing every
other option and prints the Compare link; ``list``, ``show``, ``cancel`` and ``wait`` read and steer
runs through the same store and executor as the dashboard; ``delete``, ``uploads`` and
``delete-upload`` free the owner's disk. There is no daemon: each of these calls also reaps dead
workers and starts queued runs. ``--executor local|ray`` (default ``$DPCORE_EXECUTOR``, else local)
picks where runs train. ``dpcore.cli`` adds this group with :func:`register`.

Exit codes: 0 ok (``wait``: the run finished), 1 (``wait``: it failed or was cancelled),
2 unknown run or upload id, bad option, or a server limit (runs per owner, steps, memory, disk
quota, a full disk: one line on stderr), 124 (``wait``: the timeout passed first).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dpcore.cli.args import add_executor_argument, add_train_arguments, config_from_args, epsilon_list
from dpcore.errors import DPCoreError
from dpcore.paths import ENV_DATA_DIR, cli_owner
from dpcore.privacy.registry import PRIVATE_MECHANISMS
from dpcore.runs.executors.base import Executor, wait_for
from dpcore.runs.executors.registry import make_executor
from dpcore.runs.store import Run, RunStore
from dpcore.runs.sweeps import submit_sweep
from dpcore.views.disclosure import may_show_samples

EXIT_TIMEOUT = 124
Handler = Callable[[argparse.Namespace], int]


def register(subparsers: Any) -> None:
    """Add the ``runs`` command group to ``python -m dpcore``'s subparsers."""
    runs = subparsers.add_parser(
        "runs", help="train in the background: submit, sweep, list, show, cancel, wait, delete, uploads",
        description="Runs live in a store outside this process: they go on after the command "
                    "returns and can be followed from the dashboard. Each command also reaps dead "
                    "workers and starts queued runs.",
        epilog=f"Exit codes: 0 ok; 2 unknown id, bad option or a server limit. 'wait': 0 finished, "
               f"1 failed or cancelled, {EXIT_TIMEOUT} timed out.",
    )
    sub = runs.add_subparsers(dest="runs_command", metavar="COMMAND", required=True)

    p = sub.add_parser("submit", help="queue a training run; prints its id as the last line")
    add_train_arguments(p)
    p.add_argument("--max-concurrent", type=int, default=None, metavar="N",
                   help="runs allowed at once (default: $DPCORE_MAX_CONCURRENT, one per GPU, "
                        "else half the CPU cores)")
    _common(p, cmd_submit)

    p = sub.add_parser(
        "sweep", conflict_handler="resolve",
        help="one run per ε sharing every other option (the privacy-utility frontier); prints the run ids",
        description="Submit one run per ε value, all with the same data, model and training, grouped under "
                    "a sweep id; open them on Compare to see the frontier fill in as they finish.",
    )
    add_train_arguments(p)
    p.add_argument("--epsilon", dest="sweep_epsilons", type=epsilon_list, required=True, metavar="E1,E2,...",
                   help="the target ε of each run, comma-separated (e.g. 0.5,1,2,4,8)")
    p.add_argument("--with-baseline", action="store_true",
                   help="add the same run without privacy (mechanism none) as the frontier's reference line")
    p.add_argument("--wait", action="store_true", help="wait for every run to end and print the frontier")
    p.add_argument("--max-concurrent", type=int, default=None, metavar="N",
                   help="runs allowed at once by the local executor (on Ray, the cluster decides)")
    _common(p, cmd_sweep)

    p = sub.add_parser("list", help="your runs, newest first")
    p.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    p.add_argument("--all-owners", action="store_true", help="include runs of every owner")
    _common(p, cmd_list)

    p = sub.add_parser("show", help="one run: status, pid, error, config, latest metrics")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--json", action="store_true", help="one JSON object")
    _common(p, cmd_show)

    p = sub.add_parser("cancel", help="stop a run (it keeps its metrics and checkpoint)")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--no-wait", action="store_true", help="return without waiting for it to stop")
    _common(p, cmd_cancel)

    p = sub.add_parser("wait", help="block until a run ends; exit 0 finished, 1 failed/cancelled")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help=f"give up after S seconds (exit {EXIT_TIMEOUT})")
    _common(p, cmd_wait)

    p = sub.add_parser("delete", help="delete a run that has ended: its metrics, checkpoint and files")
    p.add_argument("run_id", metavar="RUN_ID")
    _common(p, cmd_delete)

    p = sub.add_parser("uploads", help="your uploaded corpora: size and the runs trained on each")
    p.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    _common(p, cmd_uploads)

    p = sub.add_parser("delete-upload", help="delete an uploaded corpus (and, asked, the runs trained on it)")
    p.add_argument("upload_id", metavar="UPLOAD_ID")
    p.add_argument("--with-runs", action="store_true",
                   help="also delete your runs trained on it, with their checkpoints")
    _common(p, cmd_delete_upload)


def _common(p: argparse.ArgumentParser, handler: Handler) -> None:
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help=f"where runs are kept (default: ${ENV_DATA_DIR}, else ~/.local/share/dp-rnn-lab)")
    p.add_argument("--owner", default=cli_owner(),
                   help="owner key of the runs (default: %(default)s)")
    add_executor_argument(p)
    p.set_defaults(func=handler)  # cli.main turns a DPCoreError into one line and exit code 2


def _executor(args: argparse.Namespace) -> Executor:
    """The executor the flags ask for; a terminal never starts a Ray of its own (its runs would die with it)."""
    return make_executor(RunStore(args.data_dir), getattr(args, "executor", None),
                         max_concurrent=getattr(args, "max_concurrent", None), start_ray=False)


def _at_a_time(ex: Executor) -> str:
    cap = ex.max_concurrent
    return f"{cap} at a time" if cap else "as the Ray cluster's resources allow"


# ---------------------------------------------------------------------- handlers
def cmd_submit(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    config = _pin_corpus(config)
    ex = _executor(args)
    run_id = ex.submit(args.owner, config, allow_local_paths=True)
    run = ex.store.get_run(run_id)
    if run.status == "queued":
        print(f"queued run {run_id} (position {ex.store.queue_position(run_id)}, {_at_a_time(ex)})")
    else:
        print(f"started run {run_id} (pid {run.pid}); follow it with: python -m dpcore runs show {run_id}")
    print(run_id)
    return 0


def _pin_corpus(config: Any) -> Any:
    """The worker runs elsewhere (its run folder, another node): a corpus path must be absolute."""
    if config.corpus == "builtin":
        return config
    path = Path(config.corpus).expanduser()
    if not path.is_file():
        raise DPCoreError(f"no such corpus file {str(path)!r}; give 'builtin' or a .txt/.csv path")
    return config.replace(corpus=str(path.resolve()))


def cmd_sweep(args: argparse.Namespace) -> int:
    base = _pin_corpus(config_from_args(args))
    ex = _executor(args)
    sweep = submit_sweep(ex, args.owner, base, args.sweep_epsilons, with_baseline=args.with_baseline,
                         allow_local_paths=True)
    print(f"sweep {sweep.id}: {len(sweep.run_ids)} runs ({_at_a_time(ex)})")
    for run_id in sweep.run_ids:
        print(f"  {run_id}  {_privacy(ex.store.get_run(run_id))}")
    print(f"compare them on the dashboard: /compare?runs={','.join(sweep.run_ids)}")
    if args.wait:
        try:
            runs = [wait_for(ex, run_id, poll_s=0.5) for run_id in sweep.run_ids]
        except KeyboardInterrupt:
            print("interrupted; the runs go on in the background", file=sys.stderr)
            return 130
        print("the frontier (final validation perplexity against ε spent):")
        for run in runs:
            spent, ppl = (run.result.epsilon, run.result.val_perplexity) if run.result is not None else (None, None)
            print(f"  {_privacy(run):<22} {run.status:<9} ε spent {'-' if spent is None else f'{spent:.3g}':<6} "
                  f"val perplexity {'-' if ppl is None else f'{ppl:.3f}'}")
        return 0 if all(r.status == "finished" for r in runs) else 1
    print(" ".join(sweep.run_ids))
    return 0


def _privacy(run: Run) -> str:
    mech = run.config.get("mechanism")
    return f"{mech} ε={run.config.get('epsilon'):g}" if mech in PRIVATE_MECHANISMS else f"{mech} (no privacy)"


def cmd_list(args: argparse.Namespace) -> int:
    ex = _executor(args)
    runs = ex.list(None if args.all_owners else args.owner)
    if args.json:
        print(json.dumps([_jsonable(_summary(r)) for r in runs], indent=1))
        return 0
    if not runs:
        print(f"no runs for {args.owner} in {ex.store.data_dir}")
        return 0
    rows = [("ID", "STATUS", "STEP", "MECHANISM", "CREATED", "ERROR")]
    for r in runs:
        step = f"{r.last_step or 0}/{r.total_steps or '?'}"
        rows.append((r.id, r.status, step, r.config.get("mechanism", "?"), _when(r.created_at),
                     _short(r.error or "", 60)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    ex = _executor(args)
    ex.poll()
    store = ex.store
    with store.transaction(write=False) as conn:  # one consistent view of the run and its rows
        run = store.get_run(args.run_id, conn=conn)
        latest = store.latest_metrics(run.id, conn=conn)
        count = store.metric_count(run.id, conn=conn)
        evals = store.evals(run.id, conn=conn)
    shown = run.to_dict()
    if shown.get("result") and not may_show_samples(run, viewer=args.owner):  # the disclosure rule, as on screen
        shown["result"] = {**shown["result"], "samples": "(for the run's owner only: no privacy guarantee)"}
    info = {
        **shown, "metric_rows": count, "latest_metrics": latest,
        "latest_eval": evals[-1] if evals else None, "artifacts": store.artifacts(run.id),
        "queue_position": store.queue_position(run.id), "run_dir": str(store.run_dir(run.id)),
    }
    if args.json:
        print(json.dumps(_jsonable(info), indent=1, sort_keys=True))
        return 0
    total = run.total_steps
    progress = f" (step {run.last_step or 0}/{total or '?'})" if run.status != "queued" else (
        f" (position {info['queue_position']} in the queue)")
    lines = [
        ("run", run.id), ("owner", run.owner), ("status", run.status + progress),
        ("pid", f"{run.pid or '-'} on {run.host or '-'}" + (f", GPU {run.gpu}" if run.gpu else "")),
        ("device", run.device or "-"), ("created", _when(run.created_at)),
        ("started", _when(run.started_at)), ("finished", _when(run.finished_at)),
        ("error", run.error or "-"),
        ("metrics", f"{count} rows" + (f"; latest: {_fmt_row(latest)}" if latest else "")),
        ("eval", _fmt_row(info["latest_eval"]) if evals else "-"),
        ("run dir", info["run_dir"]),
    ]
    lines += [(name, path) for name, path in sorted(info["artifacts"].items())]
    lines.append(("config", " ".join(f"{k}={v}" for k, v in sorted(run.config.items()))))
    for key, value in lines:
        print(f"{key:<10}{value}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    ex = _executor(args)
    before = ex.store.get_run(args.run_id)
    if before.is_terminal:
        print(f"run {before.id} already {before.status}; nothing to cancel")
        return 0
    run = ex.cancel(args.run_id)
    if not run.is_terminal and not args.no_wait:
        run = ex.wait(run.id, timeout=ex.grace_s + 30)
    print(f"run {run.id}: {run.status}" + ("" if run.is_terminal else " (stop requested)"))
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    ex = _executor(args)
    ex.store.get_run(args.run_id)  # unknown id: one line, exit 2, before any waiting
    try:
        run = ex.wait(args.run_id, timeout=args.timeout, poll_s=0.5)
    except KeyboardInterrupt:
        print("interrupted; the run goes on in the background", file=sys.stderr)
        return 130
    if not run.is_terminal:
        print(f"run {run.id}: still {run.status} after {args.timeout:g} s")
        return EXIT_TIMEOUT
    print(f"run {run.id}: {run.status}" + (f": {run.error}" if run.error else ""))
    return 0 if run.status == "finished" else 1


def cmd_delete(args: argparse.Namespace) -> int:
    ex = _executor(args)
    ex.poll()  # a worker that just died is settled before the running check
    ex.store.delete_run(args.run_id, args.owner)
    print(f"deleted run {args.run_id}")
    return 0


def cmd_uploads(args: argparse.Namespace) -> int:
    store = _executor(args).store
    rows = []
    for upload in store.list_uploads(args.owner):
        runs = store.runs_using_upload(args.owner, upload.id)
        rows.append({"id": upload.id, "filename": upload.filename, "size": upload.size,
                     "created_at": upload.created_at, "runs": [r.id for r in runs]})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print(f"no uploads for {args.owner} in {store.data_dir}")
        return 0
    table = [("ID", "SIZE", "CREATED", "NAME", "RUNS")]
    for row in rows:
        table.append((row["id"], _bytes(row["size"]), _when(row["created_at"]), row["filename"],
                      ",".join(row["runs"]) or "-"))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    used, quota = store.disk_usage(args.owner), store.limits.disk_quota_bytes
    print(f"disk used: {_bytes(used)}" + (f" of {_bytes(quota)}" if quota else ""))
    return 0


def cmd_delete_upload(args: argparse.Namespace) -> int:
    store = _executor(args).store
    upload = store.get_upload(args.owner, args.upload_id)
    deleted = store.delete_upload(args.owner, args.upload_id, delete_runs=args.with_runs)
    print(f"deleted upload {upload.id} ({upload.filename})"
          + (f" and {len(deleted)} run(s): {', '.join(deleted)}" if deleted else ""))
    return 0


# ---------------------------------------------------------------------- formatting
def _bytes(n: int) -> str:
    if n >= 2**20:
        return f"{n / 2**20:.1f} MB"
    if n >= 2**10:
        return f"{n / 2**10:.1f} KB"
    return f"{n} B"


def _summary(run: Run) -> dict[str, Any]:
    return {
        "id": run.id, "owner": run.owner, "status": run.status, "created_at": run.created_at,
        "started_at": run.started_at, "finished_at": run.finished_at, "last_step": run.last_step,
        "total_steps": run.total_steps, "mechanism": run.config.get("mechanism"),
        "target_epsilon": run.config.get("epsilon"), "device": run.device, "pid": run.pid,
        "error": run.error,
    }


def _jsonable(value: Any) -> Any:
    """Strict JSON: NaN/inf (a diverged loss in a result) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _when(ts: float | None) -> str:
    return "-" if ts is None else dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _fmt_row(row: dict[str, Any] | None) -> str:
    if not row:
        return "-"
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in row.items() if k != "ts" and v is not None)

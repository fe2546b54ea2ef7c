"""Where a run's files travel when its worker is on another machine: ``DPCORE_ARTIFACTS``.

The dashboard and the CLI read a run's files (checkpoint, result, metrics CSV, log, audit) from the
run's folder in the data folder, so every artifact must end up there, on the app's server. A worker
on the same machine writes them in place. A worker elsewhere has two ways back, chosen by the
operator:

* ``DPCORE_ARTIFACTS`` unset (the default): each file is sent back through Ray to the store-writer
  actor on the app's server, which writes it into the run's folder. Nothing shared is needed.
* ``DPCORE_ARTIFACTS`` set: a folder every node can write (an NFS mount) or any fsspec URI
  (``s3://bucket/dp-rnn-lab``, ``gs://…``, ``hdfs://…``; the matching fsspec backend must be
  installed on every node). The worker uploads ``<location>/<run id>/<file>``; the app's server
  fetches each file into the run's folder when the run reports it and then deletes the remote copy,
  so deleting a run (or everything of a visitor) still deletes every copy of its weights.

No torch and no Ray here: both sides import this module.
"""

from __future__ import annotations

import os
from pathlib import Path

from dpcore.errors import DPCoreError

ENV_ARTIFACTS = "DPCORE_ARTIFACTS"


def artifacts_location(environ: dict[str, str] | None = None) -> str | None:
    """The configured artifacts location (folder or URI), or None: files travel through Ray."""
    value = (os.environ if environ is None else environ).get(ENV_ARTIFACTS, "").strip()
    return value.rstrip("/") or None


def _fs(uri: str):
    try:
        import fsspec  # installed with torch; imported here so the app never pays for it unused
    except ImportError as err:  # pragma: no cover - torch depends on fsspec
        raise DPCoreError(f"{ENV_ARTIFACTS} needs the fsspec package: pip install fsspec") from err
    try:
        return fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as err:
        raise DPCoreError(f"{ENV_ARTIFACTS}={uri!r} cannot be used on this machine: {err}") from err


def remote_uri(location: str, run_id: str, filename: str) -> str:
    """Where the worker puts one file of a run under ``location``."""
    return f"{location}/{run_id}/{filename}"


def upload(path: str | os.PathLike[str], location: str, run_id: str) -> str:
    """Copy a local file to ``<location>/<run id>/<name>``; returns that URI."""
    uri = remote_uri(location, run_id, Path(path).name)
    fs, target = _fs(uri)
    try:
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(path), target)
    except OSError as err:
        raise DPCoreError(f"could not upload {Path(path).name} to {uri}: {err}") from err
    return uri


def fetch(uri: str, dest: str | os.PathLike[str], *, remove: bool = True) -> Path:
    """Copy ``uri`` to the local file ``dest`` (created 0600), then delete the remote copy if asked."""
    fs, source = _fs(uri)
    dest = Path(dest)
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out, fs.open(source, "rb") as src:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        os.replace(part, dest)
    except OSError as err:
        part.unlink(missing_ok=True)
        raise DPCoreError(f"could not fetch {uri} into {dest}: {err}") from err
    if remove:
        try:
            fs.rm_file(source)
        except OSError:
            pass  # the run's folder holds the file; a leftover remote copy is the operator's to clean
    return dest

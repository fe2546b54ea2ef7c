"""Stored uploads: the corpora each owner uploaded, as private files and rows of ``uploads``.

One job: keep an owner's uploaded text files (``uploads/<hash of owner>/<id>/<name>``, folders 0700,
files 0600, written whole or not at all), list, find and delete them, and say which runs train on
one. :class:`UploadStore` is the part of :class:`~dpcore.runs.store.RunStore` that does it. (What
the New run form says of an upload is :mod:`dpcore.runs.uploads`; reading and checking the text is
:mod:`dpcore.data.upload`.)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dpcore.errors import DPCoreError
from dpcore.runs.db import disk_full, is_disk_full
from dpcore.runs.owners import check_owner

if TYPE_CHECKING:
    from dpcore.runs.run import Run


class UploadNotFound(DPCoreError):
    """No upload with that id among the caller's uploads."""


@dataclass(frozen=True)
class Upload:
    """A corpus file uploaded by one owner. ``path`` is what a run's ``corpus`` points at."""

    id: str
    owner: str
    filename: str
    path: str
    size: int
    sha256: str
    created_at: float


class UploadStore:
    """The run store's uploads (a part of :class:`~dpcore.runs.store.RunStore`).

    Uses the store's ``uploads_dir``, ``transaction``, ``_reader``, ``list_runs``, ``delete_run`` and
    ``check_disk_quota``.
    """

    def save_upload(self, owner: str, filename: str, data: bytes) -> Upload:
        """Store an uploaded corpus privately for ``owner``; the returned ``path`` goes in a config.

        Refused past the owner's disk quota; on a full disk raises :class:`DiskFull` and leaves no
        partial file behind.
        """
        from dpcore.data.upload import MAX_UPLOAD_BYTES  # the data layer owns the limit

        owner = check_owner(owner)
        if not data:
            raise DPCoreError(f"the uploaded file {filename!r} is empty")
        if len(data) > MAX_UPLOAD_BYTES:
            raise DPCoreError(
                f"the uploaded file {filename!r} is {len(data) / 2**20:.1f} MiB; the limit is "
                f"{MAX_UPLOAD_BYTES // 2**20} MiB"
            )
        self.check_disk_quota(owner, adding=len(data), what=f"the upload {filename!r}")
        upload_id = secrets.token_hex(8)
        folder = self.uploads_dir / _owner_folder(owner) / upload_id
        path = folder / _safe_filename(filename)
        tmp = path.with_name(path.name + ".part")
        try:
            for level in (self.uploads_dir, folder.parent):
                level.mkdir(mode=0o700, exist_ok=True)
            folder.mkdir(mode=0o700)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as err:
            _remove_upload_files(tmp, path)
            if is_disk_full(err):
                raise disk_full(f"the upload {filename!r} could not be stored") from err
            raise DPCoreError(f"the upload {filename!r} could not be stored: {err.strerror or err}") from err
        upload = Upload(
            id=upload_id, owner=owner, filename=str(filename), path=str(path), size=len(data),
            sha256=hashlib.sha256(data).hexdigest(), created_at=time.time(),
        )
        try:
            with self.transaction() as conn:
                conn.execute(
                    "INSERT INTO uploads (id, owner, filename, path, size, sha256, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    tuple(asdict(upload).values()),
                )
        except BaseException:
            _remove_upload_files(tmp, path)
            raise
        return upload

    def list_uploads(self, owner: str) -> list[Upload]:
        """``owner``'s uploads, newest first. Nobody else's, ever."""
        with self._reader(None) as c:
            rows = c.execute(
                "SELECT * FROM uploads WHERE owner = ? ORDER BY created_at DESC", (owner,)
            ).fetchall()
        return [Upload(**dict(r)) for r in rows]

    def get_upload(self, owner: str, upload_id: str) -> Upload:
        """One of ``owner``'s uploads; another owner's id is reported as unknown."""
        with self._reader(None) as c:
            row = c.execute(
                "SELECT * FROM uploads WHERE id = ? AND owner = ?", (upload_id, owner)
            ).fetchone()
        if row is None:
            raise UploadNotFound(f"no uploaded corpus with id {upload_id!r}")
        return Upload(**dict(row))

    def find_upload_by_path(self, owner: str, path: str | os.PathLike[str]) -> Upload | None:
        """The upload of ``owner`` stored at ``path``, if any (used to vet a run's corpus)."""
        wanted = os.path.realpath(path)
        for upload in self.list_uploads(owner):
            if os.path.realpath(upload.path) == wanted:
                return upload
        return None

    def runs_using_upload(self, owner: str, upload_id: str) -> list[Run]:
        """``owner``'s runs trained (or queued to train) on the upload, newest first."""
        wanted = os.path.realpath(self.get_upload(owner, upload_id).path)
        return [r for r in self.list_runs(owner)
                if os.path.realpath(str(r.config.get("corpus", ""))) == wanted]

    def delete_upload(self, owner: str, upload_id: str, delete_runs: bool = False) -> list[str]:
        """Delete one of ``owner``'s uploads; with ``delete_runs`` also the runs trained on it.

        Refused while a run still needs the file: a running one (cancel it first), or, without
        ``delete_runs``, a queued one. Returns the ids of the runs deleted with it.
        """
        upload = self.get_upload(owner, upload_id)
        users = self.runs_using_upload(owner, upload_id)
        blocking = [r for r in users if r.status == "running" or (r.status == "queued" and not delete_runs)]
        if blocking:
            run = blocking[0]
            raise DPCoreError(
                f"run {run.id} is {run.status} on {upload.filename!r}: cancel it first, then delete the file"
            )
        deleted = []
        if delete_runs:
            for run in users:
                self.delete_run(run.id, owner)
                deleted.append(run.id)
        with self.transaction() as conn:
            conn.execute("DELETE FROM uploads WHERE id = ? AND owner = ?", (upload_id, owner))
        _remove_upload_files(Path(upload.path + ".part"), Path(upload.path))
        return deleted


def _remove_upload_files(tmp: Path, path: Path) -> None:
    for leftover in (tmp, path):
        with contextlib.suppress(OSError):
            leftover.unlink()
    with contextlib.suppress(OSError):
        path.parent.rmdir()


def _owner_folder(owner: str) -> str:
    """A folder name for an owner that cannot escape ``uploads/`` nor reveal the key."""
    return hashlib.sha256(owner.encode()).hexdigest()[:20]


def _safe_filename(filename: str) -> str:
    name = str(filename).replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:120]
    if not name or name.startswith("."):
        name = "upload" + (name if name.startswith(".") else "")
    return name

"""Where dp-rnn-lab keeps its runs and uploads, and who the CLI user is.

One rule for everyone (dashboard, CLI, worker): an explicit folder wins, then the
``DPCORE_DATA_DIR`` environment variable, then a per-user folder (``$XDG_DATA_HOME/dp-rnn-lab``,
usually ``~/.local/share/dp-rnn-lab``). The result is always absolute, because workers run
with their run folder as the working directory.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

APP_NAME = "dp-rnn-lab"
ENV_DATA_DIR = "DPCORE_DATA_DIR"
STORE_FILENAME = "runs.sqlite3"


def default_data_dir() -> Path:
    """The per-user data folder used when nothing else is configured."""
    if os.name == "nt":  # pragma: no cover - the local executor is POSIX-only, but paths still work
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / APP_NAME
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / APP_NAME


def resolve_data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data folder: ``explicit`` if given, else ``$DPCORE_DATA_DIR``, else the default."""
    chosen = explicit if explicit not in (None, "") else os.environ.get(ENV_DATA_DIR) or default_data_dir()
    return Path(chosen).expanduser().resolve()


def cli_owner() -> str:
    """The owner key of runs submitted from a terminal: ``cli:<OS user name>``."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        name = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"cli:{name}"


def file_version(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(mtime in ns, size) of a file, (0, 0) when it cannot be read: the key under which a cached
    reading of the file stays valid until the file changes."""
    try:
        st = os.stat(path)
    except OSError:
        return (0, 0)
    return (st.st_mtime_ns, st.st_size)

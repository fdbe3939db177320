"""Storage faults (read-only state dir, full disk, corrupt database) as one line that says what to do.

Why one place: every component opens the same SQLite file and writes job and cache files under the
state directory, and a fault there surfaced as a 20-line traceback (CLI) or the SDK's bare "Error
executing tool X" (MCP). The CLI's ``main`` and the MCP server's tool wrapper both pass whatever
escaped a command through :func:`storage_error`; what it recognises becomes a :class:`StorageError`
(a :class:`PreflightError`, so exit 2 / a tool error), anything else keeps propagating. Nothing here
deletes or repairs a file: a corrupt database is the audit trail, so the advice is to move it aside.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.common.state import DB_FILE_NAME, state_dir

_ENV = "PREFLIGHT_STATE_DIR"


class StorageError(PreflightError):
    """A fault of the state directory or database, not of the caller's input."""

    def __init__(self, path: str, problem: str, advice: str) -> None:
        self.path, self.problem, self.advice = path, problem, advice
        super().__init__("state", path, advice, problem)

    def one_line(self) -> str:
        return f"state: {self.path}: {self.problem}; {self.advice}"


def _state_path(filename: str | None) -> str:
    """The file to name: the one the OS reported, else the database file."""
    if filename:
        return str(filename)
    try:
        return str(state_dir(create=False) / DB_FILE_NAME)
    except (OSError, RuntimeError):  # pragma: no cover - no HOME at all
        return DB_FILE_NAME


def _read_only(path: str) -> StorageError:
    where = Path(path).parent
    return StorageError(path, "cannot write there (read-only file system or no permission)",
                        f"make {where} writable, or set {_ENV} to a writable directory")


def _full(path: str) -> StorageError:
    return StorageError(path, "the disk is full",
                        f"free space on that file system, or set {_ENV} to a directory with room")


def _corrupt(path: str, detail: str) -> StorageError:
    return StorageError(path, f"the database is corrupt or truncated ({detail})",
                        f"move it aside (mv '{path}' '{path}.corrupt'; never delete it, it is the audit trail) "
                        f"and run again to start a fresh one, or set {_ENV} to another directory")


def storage_error(exc: BaseException) -> StorageError | None:
    """The one-line :class:`StorageError` for a storage fault, or None when ``exc`` is something else.

    >>> storage_error(sqlite3.OperationalError("database or disk is full")).problem
    'the disk is full'
    >>> storage_error(ValueError("x")) is None
    True
    """
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, sqlite3.Error):
        text = str(exc).lower()
        path = _state_path(None)
        if "disk is full" in text:
            return _full(path)
        if "readonly" in text or "read-only" in text or "unable to open database" in text:
            return _read_only(path)
        if "locked" in text or "busy" in text:
            return StorageError(path, "the database stayed locked by another process past the busy timeout",
                                "retry; if it persists, look for a stuck preflight process")
        if isinstance(exc, sqlite3.DatabaseError) and (
                "not a database" in text or "malformed" in text or "corrupt" in text or "disk i/o" in text):
            return _corrupt(path, str(exc))
        return None
    if isinstance(exc, OSError) and exc.errno is not None:
        path = _state_path(exc.filename if isinstance(exc.filename, str) else None)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return _full(path)
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return _read_only(path)
    return None

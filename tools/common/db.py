"""The one SQLite file every gpu-preflight process of a user shares, and its migrations.

Why per-component migrations: the checklist, the dispatcher and telemetry each own tables and
evolve on their own. Each registers an ordered list of SQL scripts under its component name;
``schema_migrations`` records how far each component got, so adding a table to one never
renumbers another's. WAL lets readers run beside one writer across processes; ``busy_timeout``
makes a second writer wait instead of failing; every migration runs in one transaction, so a
process killed half-way leaves the schema as it was.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from gpu_preflight.tools.common.state import db_path

BUSY_TIMEOUT_MS = 10_000


def connect(path: Path | None = None) -> sqlite3.Connection:
    """Open the state database with WAL, foreign keys and a busy timeout.

    ``isolation_level=None`` puts the connection in autocommit mode: callers open explicit
    ``BEGIN IMMEDIATE`` transactions (see :func:`transaction`) so a write never upgrades a read
    lock half-way, the classic source of ``database is locked`` under concurrency.
    """
    target = path if path is not None else db_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(target), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    _enable_wal(conn)
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " component TEXT PRIMARY KEY, version INTEGER NOT NULL, applied_at TEXT NOT NULL)"
    )
    return conn


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL, retrying: when two processes create a fresh file at once, the journal-mode change
    can answer "database is locked" at once instead of waiting out ``busy_timeout``."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay_s = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, 0.2)


class transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on any exception)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


def migrate(conn: sqlite3.Connection, component: str, scripts: Sequence[str]) -> int:
    """Apply ``scripts[version:]`` for ``component``; return the version reached.

    Script ``i`` brings the component from version ``i`` to ``i + 1``. Each runs in its own
    immediate transaction together with the version bump, so concurrent processes starting at
    once apply each script exactly once.
    """
    for index, script in enumerate(scripts):
        with transaction(conn):
            row = conn.execute(
                "SELECT version FROM schema_migrations WHERE component = ?", (component,)
            ).fetchone()
            current = int(row["version"]) if row else 0
            if current > index:
                continue
            for statement in _split(script):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations(component, version, applied_at)"
                " VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ','now'))"
                " ON CONFLICT(component) DO UPDATE SET version = excluded.version,"
                " applied_at = excluded.applied_at",
                (component, index + 1),
            )
    return len(scripts)


def _split(script: str) -> list[str]:
    """Split a migration script on ``;`` line ends (``executescript`` would COMMIT for us)."""
    return [part.strip() for part in script.split(";\n") if part.strip().strip(";")]

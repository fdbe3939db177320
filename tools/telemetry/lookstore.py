"""The looks taken at each training log (size, last write time, last step), kept in the shared state database.

Why a table and not memory: ``preflight check`` is a new process each time, ``preflight watch`` another,
and the MCP server a third. A log's write times only time its steps when two looks saw it at different
sizes, so every look any of them takes is recorded here, and each check derives the same step times
from the same record (:mod:`.writetimes`): the check itself stays a pure function of the files and this
record, as :mod:`.runcheck` wants.

A look is keyed by the log's real path and its device and inode: a rotated log (a new inode) starts a
new record and the old file's looks are dropped; a truncated one (``> log``: same inode, smaller) drops
the looks past its new size. :data:`MAX_LOOKS` bounds a file's record: ``watch`` every 10 s for a week
is 60,000 looks; the newest 2,000 cover the last 5.5 hours of it, and the windows that matter are recent.
"""

from __future__ import annotations

import os
import time

from gpu_preflight.tools.common.db import connect, migrate, transaction

from .tail import Look

COMPONENT = "telemetry"
SCRIPTS: list[str] = [
    """
    CREATE TABLE telemetry_log_looks (
        path TEXT NOT NULL,
        dev INTEGER NOT NULL,
        ino INTEGER NOT NULL,
        size_bytes INTEGER NOT NULL,
        written_epoch_s REAL NOT NULL,
        step INTEGER NOT NULL,
        seen_epoch_s REAL NOT NULL,
        PRIMARY KEY (path, dev, ino, size_bytes)
    );
    """,
]
MAX_LOOKS = 2000


def remember(path: str, look: Look, step: int) -> list[tuple[float, int]]:
    """Record ``look`` (its last record is at ``step``); every look of this file, oldest first: (written, step).

    A size seen before keeps its first write time: a later ``touch`` or a second look changes nothing.
    """
    key = (path if path.startswith("ssh://") else os.path.realpath(path), look.dev, look.ino)  # remotelog.look_key
    conn = connect()
    try:
        migrate(conn, COMPONENT, SCRIPTS)
        with transaction(conn):
            conn.execute("DELETE FROM telemetry_log_looks WHERE path = ? AND (dev != ? OR ino != ? OR size_bytes > ?)",
                         (*key, look.size_bytes))
            conn.execute("INSERT OR IGNORE INTO telemetry_log_looks VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (*key, look.size_bytes, look.written_epoch_s, step, time.time()))
            conn.execute("DELETE FROM telemetry_log_looks WHERE path = ? AND dev = ? AND ino = ? AND size_bytes NOT IN "
                         "(SELECT size_bytes FROM telemetry_log_looks WHERE path = ? AND dev = ? AND ino = ? "
                         "ORDER BY size_bytes DESC LIMIT ?)", (*key, *key, MAX_LOOKS))
            rows = conn.execute("SELECT written_epoch_s, step FROM telemetry_log_looks WHERE path = ? AND dev = ? "
                                "AND ino = ? ORDER BY size_bytes", key).fetchall()
    finally:
        conn.close()
    return [(float(row[0]), int(row[1])) for row in rows]

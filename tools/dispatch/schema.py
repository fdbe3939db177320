"""The dispatcher's tables in the shared state database, and one way to open it.

Why one migration list for audit and runs: both belong to the ``dispatch`` component, and
``db.migrate`` versions a component as one ordered list of scripts. Columns the lead's gated
``launch_run`` needs (checklist id, override reason, probe caps) exist from the start so the gate
can land without a migration.
"""

from __future__ import annotations

import sqlite3

from gpu_preflight.tools.common.db import connect, migrate

COMPONENT = "dispatch"
SCRIPTS: list[str] = [
    """
    CREATE TABLE dispatch_audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at TEXT NOT NULL,
        target TEXT NOT NULL,
        pane_id TEXT,
        server_key TEXT NOT NULL,
        mode TEXT NOT NULL,
        text_sha256 TEXT NOT NULL,
        text_preview TEXT NOT NULL,
        text_bytes INTEGER NOT NULL,
        status TEXT NOT NULL,
        reason TEXT NOT NULL,
        enter_count INTEGER NOT NULL,
        latency_ms REAL NOT NULL,
        confirm_latency_ms REAL,
        job_id TEXT,
        timings_json TEXT NOT NULL,
        evidence_json TEXT NOT NULL
    );
    CREATE INDEX dispatch_audit_pane ON dispatch_audit(server_key, pane_id, id);
    CREATE TABLE dispatch_runs (
        run_id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        target TEXT NOT NULL,
        pane_id TEXT,
        socket_name TEXT,
        socket_path TEXT,
        command TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('probe', 'full')),
        job_id TEXT,
        pid INTEGER,
        started_at_epoch_s REAL,
        log_path TEXT,
        predicted_tokens_per_s REAL,
        cap_steps INTEGER,
        cap_seconds REAL,
        checklist_id TEXT,
        override_reason TEXT,
        dispatch_status TEXT,
        audit_id INTEGER REFERENCES dispatch_audit(id)
    );
    CREATE INDEX dispatch_runs_pane ON dispatch_runs(pane_id, created_at);
    """,
    # The run log's layout (issue 15): a custom regex is detected as nothing, so the heartbeat's step count
    # and run_check need it recorded to read the log at all.
    """
    ALTER TABLE dispatch_runs ADD COLUMN log_format TEXT;
    ALTER TABLE dispatch_runs ADD COLUMN log_regex TEXT;
    """,
    # An HF Trainer log without a progress bar prints dicts with no step number: its logging_steps places
    # them while the run is live (issue 15), stated at launch or read from the command line (the source).
    """
    ALTER TABLE dispatch_runs ADD COLUMN logging_steps INTEGER;
    ALTER TABLE dispatch_runs ADD COLUMN logging_steps_source TEXT;
    """,
    # A run launched on a registered host keeps it (issue 17): its heartbeat then looks at that box's pane,
    # never at a pane with the same id on this machine.
    """
    ALTER TABLE dispatch_runs ADD COLUMN host TEXT;
    """,
]


def open_db() -> sqlite3.Connection:
    """Connect to the state database with the dispatch tables migrated. Caller closes it."""
    conn = connect()
    try:
        migrate(conn, COMPONENT, SCRIPTS)
    except BaseException:
        conn.close()
        raise
    return conn

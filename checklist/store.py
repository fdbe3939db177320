"""Checklist rows in the shared SQLite file: checklists, spec history, evidence, gate decisions.

Why append-only: evidence and gate decisions are an audit trail. A new record for an item adds a
row (the latest wins); a spec change adds a row to ``checklist_specs``; nothing is updated in place
except the checklist's current spec. Every write is one ``BEGIN IMMEDIATE`` transaction, so two
processes never interleave half-writes and a process killed mid-write leaves the last commit intact
(SQLite's WAL rolls the torn transaction back on the next open).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass, fields
from typing import Any

from gpu_preflight.tools.common.db import connect, migrate
from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.common.nextstep import call

COMPONENT = "checklist"
_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ','now')"

MIGRATIONS: list[str] = [
    f"""
CREATE TABLE checklists (
    id TEXT PRIMARY KEY,
    run_name TEXT NOT NULL CHECK (length(run_name) > 0),
    policy TEXT NOT NULL,
    policy_sha256 TEXT NOT NULL,
    spec_json TEXT,
    spec_hash TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT ({_NOW}),
    updated_at TEXT NOT NULL DEFAULT ({_NOW})
);
CREATE TABLE checklist_specs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    checklist_id TEXT NOT NULL REFERENCES checklists(id),
    spec_hash TEXT NOT NULL,
    spec_json TEXT,
    set_at TEXT NOT NULL DEFAULT ({_NOW})
);
CREATE TABLE evidence (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    checklist_id TEXT NOT NULL REFERENCES checklists(id),
    item TEXT NOT NULL,
    schema_name TEXT NOT NULL,
    evidence_json TEXT NOT NULL CHECK (json_valid(evidence_json)),
    spec_hash TEXT NOT NULL,
    source TEXT NOT NULL,
    recorded_at TEXT NOT NULL DEFAULT ({_NOW})
);
CREATE INDEX evidence_by_item ON evidence(checklist_id, item, id);
CREATE TABLE gate_decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    checklist_id TEXT NOT NULL REFERENCES checklists(id),
    kind TEXT NOT NULL CHECK (kind IN ('probe', 'full')),
    gate_open INTEGER NOT NULL CHECK (gate_open IN (0, 1)),
    allowed INTEGER NOT NULL CHECK (allowed IN (0, 1)),
    override_reason TEXT,
    missing_json TEXT NOT NULL CHECK (json_valid(missing_json)),
    spec_hash TEXT NOT NULL,
    offer TEXT,
    decided_at TEXT NOT NULL DEFAULT ({_NOW}),
    CHECK (allowed = gate_open OR (allowed = 1 AND length(trim(coalesce(override_reason, ''))) > 0))
);
CREATE INDEX gate_decisions_by_checklist ON gate_decisions(checklist_id, id);
CREATE VIEW gate_overrides AS
    SELECT id, checklist_id, kind, override_reason, missing_json, spec_hash, offer, decided_at
    FROM gate_decisions WHERE allowed = 1 AND gate_open = 0
""",
    # What one tool call computed its evidence for (GPU option, price), shared by every item of the call,
    # so the gate can tell items of one estimate from a mix of several (see checklist.evaluate).
    "ALTER TABLE evidence ADD COLUMN context_json TEXT CHECK (context_json IS NULL OR json_valid(context_json))",
]


@dataclass(frozen=True)
class ChecklistRow:
    id: str
    run_name: str
    policy: str
    policy_sha256: str
    spec_json: str | None
    spec_hash: str
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class EvidenceRow:
    id: int
    checklist_id: str
    item: str
    schema_name: str
    evidence: dict[str, Any]
    spec_hash: str
    source: str
    recorded_at: str
    context: dict[str, Any] | None = None


@dataclass(frozen=True)
class GateRow:
    id: int
    checklist_id: str
    kind: str
    gate_open: bool
    allowed: bool
    override_reason: str | None
    missing: list[str]
    spec_hash: str
    offer: str | None
    decided_at: str


def open_db() -> sqlite3.Connection:
    """Connect to the state database and bring the checklist tables up to date.

    A plain read of the version first: after the first start no write lock is taken just to learn
    that nothing needs migrating, which keeps concurrent recorders from queueing behind it.
    """
    conn = connect()
    row = conn.execute("SELECT version FROM schema_migrations WHERE component = ?", (COMPONENT,)).fetchone()
    if row is None or int(row["version"]) < len(MIGRATIONS):
        migrate(conn, COMPONENT, MIGRATIONS)
    return conn


def new_checklist_id() -> str:
    return "ck-" + uuid.uuid4().hex[:12]


def insert_checklist(conn: sqlite3.Connection, checklist_id: str, run_name: str, policy: str,
                     policy_sha256: str, spec_json: str | None, spec_hash: str) -> None:
    conn.execute(
        "INSERT INTO checklists(id, run_name, policy, policy_sha256, spec_json, spec_hash) VALUES (?,?,?,?,?,?)",
        (checklist_id, run_name, policy, policy_sha256, spec_json, spec_hash),
    )
    conn.execute("INSERT INTO checklist_specs(checklist_id, spec_hash, spec_json) VALUES (?,?,?)",
                 (checklist_id, spec_hash, spec_json))


def get_checklist(conn: sqlite3.Connection, checklist_id: object) -> ChecklistRow:
    """The checklist row, or a refusal that shows what an id looks like and the latest ones."""
    row = None
    if isinstance(checklist_id, str):
        row = conn.execute("SELECT * FROM checklists WHERE id = ?", (checklist_id,)).fetchone()
    if row is None:
        recent = [r["id"] for r in conn.execute("SELECT id FROM checklists ORDER BY rowid DESC LIMIT 3")]
        hint = f"latest: {', '.join(recent)}" if recent else f"no checklist exists yet: {call('checklist_start')}"
        raise PreflightError("checklist_id", checklist_id, f"an id returned by {call('checklist_start')} (ck-<12 hex>)",
                             hint)
    return ChecklistRow(**{f.name: row[f.name] for f in fields(ChecklistRow)})


def set_spec(conn: sqlite3.Connection, checklist_id: str, spec_json: str | None, spec_hash: str) -> None:
    conn.execute(f"UPDATE checklists SET spec_json = ?, spec_hash = ?, updated_at = {_NOW} WHERE id = ?",
                 (spec_json, spec_hash, checklist_id))
    conn.execute("INSERT INTO checklist_specs(checklist_id, spec_hash, spec_json) VALUES (?,?,?)",
                 (checklist_id, spec_hash, spec_json))


def insert_evidence(conn: sqlite3.Connection, checklist_id: str, item: str, schema_name: str,
                    evidence: dict[str, Any], spec_hash: str, source: str,
                    context: dict[str, Any] | None = None) -> EvidenceRow:
    cur = conn.execute(
        "INSERT INTO evidence(checklist_id, item, schema_name, evidence_json, spec_hash, source, context_json)"
        " VALUES (?,?,?,?,?,?,?) RETURNING *",
        (checklist_id, item, schema_name, json.dumps(evidence, sort_keys=True), spec_hash, source,
         None if context is None else json.dumps(context, sort_keys=True)),
    )
    row = cur.fetchone()
    cur.close()
    conn.execute(f"UPDATE checklists SET updated_at = {_NOW} WHERE id = ?", (checklist_id,))
    return _evidence_row(row)


def latest_evidence(conn: sqlite3.Connection, checklist_id: str) -> dict[str, EvidenceRow]:
    """The newest evidence row per item: a later record replaces an earlier one."""
    rows = conn.execute(
        "SELECT e.* FROM evidence e JOIN (SELECT item, max(id) AS id FROM evidence WHERE checklist_id = ?"
        " GROUP BY item) last ON e.id = last.id",
        (checklist_id,),
    ).fetchall()
    return {row["item"]: _evidence_row(row) for row in rows}


def insert_gate_decision(conn: sqlite3.Connection, checklist_id: str, kind: str, gate_open: bool, allowed: bool,
                         override_reason: str | None, missing: list[str], spec_hash: str,
                         offer: str | None) -> GateRow:
    cur = conn.execute(
        "INSERT INTO gate_decisions(checklist_id, kind, gate_open, allowed, override_reason, missing_json,"
        " spec_hash, offer) VALUES (?,?,?,?,?,?,?,?) RETURNING *",
        (checklist_id, kind, int(gate_open), int(allowed), override_reason, json.dumps(missing), spec_hash, offer),
    )
    row = cur.fetchone()
    cur.close()
    return _gate_row(row)


def gate_decisions(conn: sqlite3.Connection, checklist_id: str) -> list[GateRow]:
    rows = conn.execute("SELECT * FROM gate_decisions WHERE checklist_id = ? ORDER BY id", (checklist_id,))
    return [_gate_row(row) for row in rows]


def _evidence_row(row: sqlite3.Row) -> EvidenceRow:
    return EvidenceRow(id=int(row["id"]), checklist_id=row["checklist_id"], item=row["item"],
                       schema_name=row["schema_name"], evidence=json.loads(row["evidence_json"]),
                       spec_hash=row["spec_hash"], source=row["source"], recorded_at=row["recorded_at"],
                       context=json.loads(row["context_json"]) if row["context_json"] else None)


def _gate_row(row: sqlite3.Row) -> GateRow:
    return GateRow(id=int(row["id"]), checklist_id=row["checklist_id"], kind=row["kind"],
                   gate_open=bool(row["gate_open"]), allowed=bool(row["allowed"]),
                   override_reason=row["override_reason"], missing=list(json.loads(row["missing_json"])),
                   spec_hash=row["spec_hash"], offer=row["offer"], decided_at=row["decided_at"])

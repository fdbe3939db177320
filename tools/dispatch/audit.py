"""Every dispatch leaves a row: who was typed at, what (by hash and preview), and what came of it.

Why: "the agent said it started training" is the claim this project exists to check. The audit
table lets a later reader (or the lead's checklist) see each send, its status and its timings
without trusting the agent's transcript. The text itself is not stored, only a SHA-256 and a
short printable preview, so secrets pasted into prompts do not pile up in the state file.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from pydantic import BaseModel

from gpu_preflight.tools.common.db import transaction
from gpu_preflight.tools.common.errors import preview
from gpu_preflight.tools.dispatch.models import DispatchResult
from gpu_preflight.tools.dispatch.schema import open_db

PREVIEW_CHARS = 60


class AuditEntry(BaseModel):
    """One row of ``dispatch_audit``."""

    id: int
    created_at: str
    target: str
    pane_id: str | None
    server_key: str
    mode: str
    text_sha256: str
    text_preview: str
    text_bytes: int
    status: str
    reason: str
    enter_count: int
    latency_ms: float
    confirm_latency_ms: float | None
    job_id: str | None
    timings_ms: dict[str, float]
    evidence: list[str]


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_audit(result: DispatchResult, *, text: str, server_key: str) -> int:
    """Append ``result`` to the audit table; return the row id."""
    conn = open_db()
    try:
        with transaction(conn):
            cursor = conn.execute(
                "INSERT INTO dispatch_audit (created_at, target, pane_id, server_key, mode, text_sha256,"
                " text_preview, text_bytes, status, reason, enter_count, latency_ms, confirm_latency_ms, job_id,"
                " timings_json, evidence_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    datetime.now(UTC).isoformat(timespec="milliseconds"), result.target, result.pane_id,
                    server_key, result.mode, text_sha256(text), preview(text[:PREVIEW_CHARS]),
                    len(text.encode("utf-8")), result.status, result.reason, result.enter_count, result.latency_ms,
                    result.confirm_latency_ms, result.job_id, json.dumps(result.timings_ms),
                    json.dumps(result.evidence),
                ),
            )
            return int(cursor.lastrowid or 0)
    finally:
        conn.close()


def list_audit(limit: int = 50, pane_id: str | None = None) -> list[AuditEntry]:
    """The newest ``limit`` audit rows (optionally for one pane), newest first."""
    conn = open_db()
    try:
        sql = "SELECT * FROM dispatch_audit"
        args: tuple[object, ...] = ()
        if pane_id is not None:
            sql += " WHERE pane_id = ?"
            args = (pane_id,)
        rows = conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, int(limit))).fetchall()
    finally:
        conn.close()
    entries = []
    for row in rows:
        data = dict(row)
        data["timings_ms"] = json.loads(data.pop("timings_json"))
        data["evidence"] = json.loads(data.pop("evidence_json"))
        entries.append(AuditEntry(**data))
    return entries


def last_agent_prompt(server_key: str, pane_id: str) -> tuple[int, str, list[str]] | None:
    """(audit id, time, screen lines at the proof) of the newest dispatch into this pane when it was an
    agent prompt that went in.

    The heartbeat's memory of what ran in a pane: an agent TUI started from a shell leaves no trace once it
    exits (the shell is back at its prompt), but our own record says a prompt was submitted to one there.
    """
    conn = open_db()
    try:
        row = conn.execute("SELECT id, created_at, mode, status, evidence_json FROM dispatch_audit WHERE "
                           "server_key = ? AND pane_id = ? ORDER BY id DESC LIMIT 1", (server_key, pane_id)).fetchone()
    finally:
        conn.close()
    if row is None or row["mode"] != "tui" or row["status"] not in ("submitted", "queued"):
        return None
    return int(row["id"]), str(row["created_at"]), list(json.loads(row["evidence_json"]))

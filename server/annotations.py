"""Honest tool annotations (the spec's defaults are destructive and open-world, so those are always explicit).

A read-only tool states ``readOnlyHint`` and ``openWorldHint`` only: the spec reads ``destructiveHint`` and
``idempotentHint`` only when ``readOnlyHint`` is false, and ``tools/list`` is read by every session
(~45 bytes saved on each of 14 tools).
"""

from __future__ import annotations

from mcp.types import ToolAnnotations

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
"""Estimates, status, heartbeats: compute or read, change nothing."""

RECORDS_STATE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
"""Writes rows to the local state database (checklists, evidence, ingested samples)."""

SENDS_KEYS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
"""Types into a tmux pane: not read-only, but never destroys anything by itself."""

OPEN_WORLD_READ = ToolAnnotations(read_only_hint=True, open_world_hint=True)
"""Reads a live outside service (Vast offer search)."""

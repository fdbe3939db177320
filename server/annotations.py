"""Honest tool annotations, all four hints explicit (the spec's defaults are destructive and open-world)."""

from __future__ import annotations

from mcp.types import ToolAnnotations

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
"""Estimates, status, heartbeats: compute or read, change nothing."""

RECORDS_STATE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
"""Writes rows to the local state database (checklists, evidence, ingested samples)."""

SENDS_KEYS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
"""Types into a tmux pane: not read-only, but never destroys anything by itself."""

OPEN_WORLD_READ = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=False, open_world_hint=True
)
"""Reads a live outside service (Vast offer search)."""

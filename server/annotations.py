"""Honest tool annotations (the spec's defaults are destructive and open-world, so those are always explicit).

A read-only tool states ``readOnlyHint`` and ``openWorldHint`` only: the spec reads ``destructiveHint`` and
``idempotentHint`` only when ``readOnlyHint`` is false, and ``tools/list`` is read by every session
(~45 bytes saved on each of 14 tools).

:func:`allowed_read_only` reads these hints to decide what ``preflight serve --read-only`` registers.
"""

from __future__ import annotations

from mcp.types import ToolAnnotations

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
"""Estimates, status, heartbeats: compute or read, change nothing."""

RECORDS_STATE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
"""Writes rows to the local state database (checklists, evidence, ingested samples)."""

SENDS_KEYS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
"""Types into a tmux pane: never destroys anything by itself, but what it types runs in a shell or an
agent outside this server (open world), so ``serve --read-only`` does not register it."""

STOPS_RUN = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True)
"""Ctrl-C into a run's pane: it ends a job on purpose (destructive); a second call finds it ended (idempotent)."""

OPEN_WORLD_READ = ToolAnnotations(read_only_hint=True, open_world_hint=True)
"""Reads a live outside service (Vast offer search)."""


def allowed_read_only(hints: ToolAnnotations | None) -> bool:
    """Whether ``serve --read-only`` registers a tool with these hints.

    Kept: tools that only read (``readOnlyHint``), and closed-world writers that are not destructive,
    which write rows to the state database only (checklists, evidence, gate decisions). Dropped:
    any other writer, i.e. a tool that runs commands or types keys (``dispatch``, ``launch_run``) or
    that could destroy something. A tool without hints counts as the spec's default, destructive.
    """
    if hints is None:
        return False
    if hints.read_only_hint:
        return True
    return hints.destructive_hint is False and hints.open_world_hint is False

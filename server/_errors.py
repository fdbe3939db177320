"""Turn domain refusals into the SDK's ``ToolError``: the only exception whose text reaches the model."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mcp.server.mcpserver.exceptions import ToolError

from gpu_preflight.tools.common.errors import PreflightError


@contextmanager
def tool_errors() -> Iterator[None]:
    """Inside an MCP tool: re-raise :class:`PreflightError` as ``ToolError`` with its one-line text."""
    try:
        yield
    except PreflightError as exc:
        raise ToolError(exc.one_line()) from exc

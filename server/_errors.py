"""Turn domain refusals into the SDK's ``ToolError``: the only exception whose text reaches the model.

Two layers, because not every failure passes through a tool's body:

* :func:`tool_errors`, inside a tool: :class:`PreflightError` becomes a ``ToolError`` with its one line.
* :func:`install_strict_tools`, once for the whole server (every capability, telemetry included,
  inherits it): before the SDK validates arguments it refuses names the tool does not have (they were
  silently dropped, so ``dph_totl_usd`` gave a null cost), nesting deeper than
  ``limits.MAX_DEPTH`` (a RecursionError) and numbers no physical quantity has (Infinity, NaN,
  1e308, 400-digit integers); after, it rewrites the SDK's four-line pydantic report (with a URL) and
  anything that escaped as the bare "Error executing tool X" (a storage fault, a stray
  :class:`PreflightError`, a RecursionError) into the same one-line form as every other refusal.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp.server.mcpserver.tools.base import Tool
from pydantic import ValidationError

from gpu_preflight.tools.common.errors import PreflightError, from_validation_error
from gpu_preflight.tools.common.limits import MAX_DEPTH, check_value, field_name
from gpu_preflight.tools.common.storage import storage_error


@contextmanager
def _refusals_as(error: type[Exception]) -> Iterator[None]:
    try:
        yield
    except PreflightError as exc:
        raise error(exc.one_line()) from exc


def tool_errors() -> AbstractContextManager[None]:
    """Inside an MCP tool: re-raise :class:`PreflightError` as ``ToolError`` with its one-line text."""
    return _refusals_as(ToolError)


def resource_errors() -> AbstractContextManager[None]:
    """Inside a resource: a refusal (unknown name, policy or checklist) is "not found" with its one line."""
    return _refusals_as(ResourceNotFoundError)


def _one_line(tool: str, exc: BaseException) -> ToolError | None:
    """The one-line ``ToolError`` for what the SDK wrapped, or None to let the SDK's answer stand."""
    known: PreflightError | None = None
    if isinstance(exc, ValidationError):
        known = from_validation_error(exc)
    elif isinstance(exc, PreflightError):
        known = exc
    elif isinstance(exc, RecursionError):
        known = PreflightError("arguments", "nesting too deep", f"at most {MAX_DEPTH} levels")
    else:
        known = storage_error(exc)
    return None if known is None else ToolError(f"Error executing tool {tool}: {known.one_line()}")


class StrictTool(Tool):
    """The SDK's ``Tool`` with the checks and error wording described in the module docstring."""

    def known_arguments(self) -> list[str]:
        fields = self.fn_metadata.arg_model.model_fields
        return [info.alias or name for name, info in fields.items()]

    def check_arguments(self, arguments: dict[str, Any]) -> None:
        known = self.known_arguments()
        for name in arguments:
            if name not in known:
                close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]}?" if close else "arguments: " + ", ".join(known)
                raise PreflightError(field_name(name), arguments[name], f"an argument of {self.name}", hint)
        for name, value in arguments.items():
            check_value(value, field_name(name))

    async def run(self, arguments: dict[str, Any], context: Any, convert_result: bool = False) -> Any:
        try:
            self.check_arguments(arguments)
        except PreflightError as exc:
            raise ToolError(f"Error executing tool {self.name}: {exc.one_line()}") from exc
        try:
            return await super().run(arguments, context, convert_result=convert_result)
        except ToolError as exc:
            better = _one_line(self.name, exc.__cause__) if exc.__cause__ is not None else None
            if better is None:
                raise
            raise better from exc.__cause__


def install_strict_tools(mcp: MCPServer) -> None:
    """Make every registered tool a :class:`StrictTool` (same fields; only ``run`` differs)."""
    # The SDK offers no hook around argument validation; a subclass with no new fields is layout-compatible.
    for tool in mcp._tool_manager.list_tools():
        tool.__class__ = StrictTool

"""The MCP server: one ``MCPServer`` with the tools of every capability registered on it.

Each capability lives in its own ``server/mcp/*.py`` module exposing ``register(mcp)``; this module
only assembles them, so a new capability never edits another's wiring.
"""

from __future__ import annotations

import importlib
import inspect
import logging

from mcp.server import MCPServer

log = logging.getLogger("gpu_preflight")

INSTRUCTIONS = (
    "gpu-preflight plans and guards GPU training runs on rented machines. Before renting: "
    "checklist_start, then plan_options (the option table over real offers) and estimate_run for the chosen "
    "GPU, both with checklist_id; checklist_status says what is missing. Launch only after gate_check says "
    "allowed. Cold estimates are low confidence: probe, then re-estimate. Read agents.md for the full flow."
)

# Modules that register tools, resources and prompts, one per capability.
CAPABILITY_MODULES = (
    "gpu_preflight.server.mcp.estimate",
    "gpu_preflight.server.mcp.offers",
    "gpu_preflight.server.mcp.checklist",
    "gpu_preflight.server.mcp.dispatch",
    "gpu_preflight.server.mcp.telemetry",
)


def create_server(*, read_only: bool = False) -> MCPServer:
    """Build a fresh server (tests get one each; ``preflight serve`` runs one over stdio).

    ``read_only`` (``serve --read-only``): tools whose annotations say they run commands, type keys or
    may destroy something are not registered at all (see :func:`..annotations.allowed_read_only`), so a
    client cannot call them, whatever it sends.
    """
    from gpu_preflight.server import __version__
    from gpu_preflight.server._errors import install_strict_tools
    from gpu_preflight.server.outschemas import deferred_output_schemas

    mcp = MCPServer("preflight", version=__version__, instructions=INSTRUCTIONS)
    with deferred_output_schemas(mcp):  # output schemas: top-level shape, stored (see outschemas)
        for name in CAPABILITY_MODULES:
            module = importlib.import_module(name)
            module.register(mcp)
    if read_only:
        from gpu_preflight.server.annotations import allowed_read_only

        for tool in mcp._tool_manager.list_tools():
            if not allowed_read_only(tool.annotations):
                mcp.remove_tool(tool.name)
                log.info("read-only: %s not registered", tool.name)
    _compact_input_schemas(mcp)
    install_strict_tools(mcp)  # unknown arguments, extremes and one-line errors, for every capability
    return mcp


def _compact_input_schemas(mcp: MCPServer) -> None:
    """Input schemas without titles or bounds (output schemas are already reduced to their top level).

    ``tools/list`` is read on every session (goal < 24 KB). Arguments and results are validated
    against the pydantic models, not these schemas, so trimming them changes nothing but size.
    """
    from gpu_preflight.server.schemas import compact_schema

    # The SDK offers no public hook to rewrite a registered tool's schemas.
    for tool in mcp._tool_manager.list_tools():
        tool.description = inspect.cleandoc(tool.description or "")
        # Bounds stay enforced by the argument models; the error names the field and what is allowed.
        tool.parameters = compact_schema(tool.parameters, keep_bounds=False)

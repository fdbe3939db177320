"""The MCP server: one ``MCPServer`` with the tools of every capability registered on it.

Each capability lives in its own ``server/mcp_*.py`` module exposing ``register(mcp)``; this module
only assembles them, so a new capability never edits another's wiring.
"""

from __future__ import annotations

import importlib
import logging

from mcp.server import MCPServer

log = logging.getLogger("gpu_preflight")

INSTRUCTIONS = (
    "gpu-preflight plans and guards GPU training runs on rented machines. Before renting: "
    "estimate_run (memory fit, throughput, time/cost, setup tax) for a spec on a GPU. "
    "Numbers come with their formula path and assumptions; cold estimates are low confidence."
)

# Modules that register tools, resources and prompts; each is optional so a partial checkout still serves.
CAPABILITY_MODULES = (
    "gpu_preflight.server.mcp_estimate",
    "gpu_preflight.server.mcp_offers",
    "gpu_preflight.server.mcp_checklist",
    "gpu_preflight.server.mcp_dispatch",
    "gpu_preflight.server.mcp_telemetry",
)


def create_server() -> MCPServer:
    """Build a fresh server (tests get one each; ``preflight serve`` runs one over stdio)."""
    from gpu_preflight.server import __version__

    mcp = MCPServer("preflight", version=__version__, instructions=INSTRUCTIONS)
    for name in CAPABILITY_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(mcp)
    return mcp

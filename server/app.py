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
    "1) checklist_start(run_name, policy=\"pre-estimate\", spec) -> id. "
    "2) plan_options(spec, checklist_id=id): option table over real offers; pick a row. "
    "3) estimate_run(spec, gpu, dph_total_usd, checklist_id=id) for that row. "
    "4) checklist_status(id): fix every missing/stale/failed item as next_step says (checklist_record for what "
    "no tool supplies; checklist_update_spec after a plan change). "
    "5) gate_check(id, kind=\"probe\"|\"full\"): launch (launch_run) only when allowed. "
    "Cold estimates are low confidence: probe first (policy run-calibrated), then calibrate. Never say a job runs, "
    "ended or failed without heartbeat(run_id); run_check every ~10 min. Results are summaries "
    "(detail=\"full\" for breakdowns). GPUs: resource preflight://gpus. Whole guide: resource preflight://agents.md."
)
"""What a client shows the model before any tool schema (Claude Code's tool search shows only this and the
tool names): the whole short flow, within ~1 KB (tests/test_mcp_agent_view.py)."""

# Modules that register tools, resources and prompts, one per capability.
CAPABILITY_MODULES = (
    "gpu_preflight.server.mcp.estimate",
    "gpu_preflight.server.mcp.offers",
    "gpu_preflight.server.mcp.checklist",
    "gpu_preflight.server.mcp.dispatch",
    "gpu_preflight.server.mcp.telemetry",
    "gpu_preflight.server.mcp.hosts",
)


def create_server(*, read_only: bool = False) -> MCPServer:
    """Build a fresh server (tests get one each; ``preflight serve`` runs one over stdio).

    ``read_only`` (``serve --read-only``): tools whose annotations say they run commands, type keys or
    may destroy something are not registered at all (see :func:`..annotations.allowed_read_only`), so a
    client cannot call them, whatever it sends.
    """
    from gpu_preflight.server import __version__
    from gpu_preflight.server._errors import install_strict_tools
    from gpu_preflight.server.nextsteps import SpeakMcp
    from gpu_preflight.server.outschemas import deferred_output_schemas

    mcp = MCPServer("preflight", version=__version__, instructions=INSTRUCTIONS)
    mcp.middleware.append(SpeakMcp())  # refusals and next steps name MCP tools and resources
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
    """Input schemas without titles, bounds or null types, defaults said in the descriptions (output
    schemas are already reduced to their top level).

    ``tools/list`` is read on every session (goal < 24 KB). Arguments and results are validated
    against the pydantic models, not these schemas, so trimming them changes nothing but size.
    """
    from gpu_preflight.server.schemas import compact_schema, default_in_description, optional_without_null

    # The SDK offers no public hook to rewrite a registered tool's schemas.
    for tool in mcp._tool_manager.list_tools():
        tool.description = inspect.cleandoc(tool.description or "")
        # Bounds stay enforced by the argument models; the error names the field and what is allowed.
        params = optional_without_null(compact_schema(tool.parameters, keep_bounds=False))
        default_in_description(params.get("properties", {}))
        tool.parameters = params

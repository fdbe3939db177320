"""MCP tools for remote hosts (issue 17): ``hosts_add``, ``hosts_list``, ``hosts_check``, thin over
:mod:`gpu_preflight.tools.hosts`. Descriptions are one short sentence each: ``tools/list`` is read by every
session (< 24 KB, tests/test_mcp_agent_view.py)."""

from __future__ import annotations

from typing import Annotated

import anyio
from mcp.server import MCPServer
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field

from gpu_preflight.server._errors import tool_errors
from gpu_preflight.server.annotations import OPEN_WORLD_READ, READ_ONLY
from gpu_preflight.server.schemas import result
from gpu_preflight.tools.hosts import Host, HostCheck, add_host, check_host, list_hosts, make_host

REGISTERS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
"""Writes one row of the state database; the same call again changes nothing."""

HostName = Annotated[str, Field(min_length=1, max_length=64)]


class HostList(BaseModel):
    hosts: list[Host]


def register(mcp: MCPServer) -> None:
    @mcp.tool(name="hosts_add", annotations=REGISTERS)
    def hosts_add_tool(
        name: HostName,
        destination: Annotated[str, Field(min_length=1, max_length=320)],
        port: Annotated[int | None, Field(default=None, ge=1, le=65535)] = None,
        identity: Annotated[str | None, Field(default=None, max_length=1000)] = None,
        options: list[str] | None = None,
    ) -> Annotated[CallToolResult, HostList]:
        """Register (or replace) an SSH host: destination [user@]host or ssh alias; options ssh -o K=V."""
        with tool_errors():
            host = add_host(make_host(name, destination, port=port, identity=identity, options=options,
                                      allow_commands=False))
            hosts = list_hosts()
        return result(HostList(hosts=hosts), f"added **{host.name}** ({host.destination})")

    @mcp.tool(name="hosts_list", annotations=READ_ONLY)
    def hosts_list_tool() -> Annotated[CallToolResult, HostList]:
        """The registered SSH hosts."""
        with tool_errors():
            hosts = list_hosts()
        return result(HostList(hosts=hosts), ", ".join(h.name for h in hosts) or "no hosts")

    @mcp.tool(name="hosts_check", annotations=OPEN_WORLD_READ)
    async def hosts_check_tool(name: HostName) -> Annotated[CallToolResult, HostCheck]:
        """SSH to a host: latency, tmux, GPUs or the fault."""
        with tool_errors():
            checked = await anyio.to_thread.run_sync(lambda: check_host(name))
        md = f"**{checked.name}**: {checked.status}" + (f" ({checked.error})" if checked.error else "")
        return result(checked, md)

"""The dispatcher through a real MCP client (both protocol eras) and the installed CLI, on real tmux."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers_spec import EXAMPLES
from helpers_tmux import TmuxTestServer, retry_until
from mcp import Client
from mcp.types import TextContent

APPS = Path(__file__).parent / "tui_apps"




async def _call(client: Client, tool: str, **arguments: Any) -> Any:
    return await client.call_tool(tool, arguments)


def _text(result: Any) -> str:
    assert isinstance(result.content[0], TextContent)
    return str(result.content[0].text)


@pytest.mark.anyio
async def test_annotations_are_honest(mcp_client: Client) -> None:
    tools = {t.name: t.annotations for t in (await mcp_client.list_tools()).tools}
    for name in ("dispatch", "launch_run"):
        a = tools[name]
        assert a is not None and a.read_only_hint is False and a.destructive_hint is False
    for name in ("heartbeat", "heartbeat_all", "list_panes"):
        a = tools[name]
        assert a is not None and a.read_only_hint is True


async def _poll_heartbeat(client: Client, target: str, socket_name: str, state: str,
                          timeout_s: float = 10.0) -> dict[str, Any]:
    """Heartbeat until ``state`` (a retry loop, not a fixed sleep); return the last answer."""
    import anyio

    with anyio.move_on_after(timeout_s):
        while True:
            hb: dict[str, Any] = (await _call(client, "heartbeat", target=target, socket_name=socket_name)
                                  ).structured_content
            if hb["state"] == state:
                return hb
            await anyio.sleep(0.05)
    return hb


@pytest.mark.anyio
async def test_dispatch_then_heartbeat_and_list_panes(mcp_client: Client, tmux_srv: TmuxTestServer) -> None:
    pane = tmux_srv.shell()
    done = await _call(mcp_client, "dispatch", target=pane, text=f"{sys.executable} {APPS / 'exit_with.py'} 3",
                       socket_name=tmux_srv.socket_name)
    sc = done.structured_content
    assert sc["status"] == "submitted" and sc["enter_count"] == 1 and sc["pid"] > 0
    assert any("start record" in line for line in sc["evidence"])

    hb = await _poll_heartbeat(mcp_client, pane, tmux_srv.socket_name, "idle_at_prompt")
    assert hb["state"] == "idle_at_prompt" and hb["exit_code"] == 3
    panes = (await _call(mcp_client, "list_panes", socket_name=tmux_srv.socket_name)).structured_content
    assert pane in {p["pane_id"] for p in panes["panes"]}


@pytest.mark.anyio
async def test_launch_is_refused_while_the_gate_is_closed_and_types_nothing(
        mcp_client: Client, tmux_srv: TmuxTestServer) -> None:
    pane = tmux_srv.shell()
    spec = json.loads((EXAMPLES / "llama-3-8b-full.json").read_text())
    cid = (await _call(mcp_client, "checklist_start", run_name="gated", policy="pre-estimate", spec=spec)
           ).structured_content["id"]
    refused = await _call(mcp_client, "launch_run", checklist_id=cid, target=pane, command="echo should-not-run",
                          kind="full", socket_name=tmux_srv.socket_name)
    assert refused.is_error is True
    assert "memory_fit" in _text(refused)
    assert "should-not-run" not in tmux_srv.screen(pane)
    # An override with a written reason launches and is recorded on the run.
    launched = await _call(mcp_client, "launch_run", checklist_id=cid, target=pane, kind="full",
                           command=f"{sys.executable} {APPS / 'exit_with.py'} 0",
                           override_reason="smoke test of the launcher itself", socket_name=tmux_srv.socket_name)
    run = launched.structured_content["run"]
    assert launched.structured_content["dispatch"]["status"] == "submitted"
    assert run["override_reason"] == "smoke test of the launcher itself" and run["checklist_id"] == cid
    # The run's status is a resource too.
    read = await mcp_client.read_resource(f"preflight://runs/{run['run_id']}")
    status = json.loads(read.contents[0].text)  # type: ignore[union-attr]
    assert status["run"]["run_id"] == run["run_id"] and status["heartbeat"]["state"]


@pytest.mark.anyio
async def test_bad_target_is_a_tool_error(mcp_client: Client, tmux_srv: TmuxTestServer) -> None:
    bad = await _call(mcp_client, "dispatch", target="nosuch:9.9", text="echo hi", socket_name=tmux_srv.socket_name)
    if bad.is_error:
        assert "target" in _text(bad)
    else:
        assert bad.structured_content["status"] in ("refused", "lost")
    ok = await _call(mcp_client, "list_panes", socket_name=tmux_srv.socket_name)
    assert ok.is_error is False


PREFLIGHT = shutil.which("preflight")


@pytest.mark.skipif(PREFLIGHT is None, reason="console script not installed")
def test_cli_dispatch_contract(tmux_srv: TmuxTestServer) -> None:
    pane = tmux_srv.shell()
    env = dict(os.environ)
    out = subprocess.run([str(PREFLIGHT), "dispatch", pane, "echo cli-ok", "--mode", "shell", "-L",
                          tmux_srv.socket_name, "--json"], capture_output=True, text=True, timeout=60, env=env,
                         check=False)
    data = json.loads(out.stdout)
    assert out.returncode == 0 and data["status"] == "submitted"
    assert data["enter_count"] == 1 and data["latency_ms"] > 0
    retry_until(lambda: "cli-ok" in tmux_srv.screen(pane), what="echo output")
    # A busy pane is refused, and the exit code says so.
    busy = tmux_srv.window("sleep 30")
    refused = subprocess.run([str(PREFLIGHT), "dispatch", busy, "echo no", "-L", tmux_srv.socket_name, "--json"],
                             capture_output=True, text=True, timeout=60, env=env, check=False)
    assert refused.returncode != 0 and json.loads(refused.stdout)["status"] == "refused"

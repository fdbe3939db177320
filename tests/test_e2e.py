"""End to end, as an agent would: the installed server over stdio and over HTTP with a token, a real
tmux pane, a real process.

plan_options on the bundled offers with a checklist -> estimate_run fills the pre-estimate -> the
full-run gate is closed, then open -> launch_run starts a probe (a training-like program printing
nanoGPT log lines) -> heartbeat while it runs -> run_check against its prediction -> it exits with
its code, and the heartbeat and run_check say so.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from helpers_http import TOKEN, http_server
from helpers_spec import spec
from helpers_tmux import TmuxTestServer
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

pytestmark = [pytest.mark.anyio,
              pytest.mark.skipif(shutil.which("preflight") is None, reason="console script not installed")]
APPS = Path(__file__).parent / "tui_apps"


async def ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert result.is_error is False, (tool, result.content)
    assert result.structured_content is not None
    return result.structured_content


async def until(client: Client, run_id: str, states: set[str], timeout_s: float = 20.0) -> dict[str, Any]:
    """Heartbeat until one of ``states`` (polling, not a fixed sleep)."""
    last: dict[str, Any] = {}
    with anyio.move_on_after(timeout_s):
        while True:
            last = await ok(client, "heartbeat", run_id=run_id)
            if last["state"] in states:
                return last
            await anyio.sleep(0.1)
    raise AssertionError(f"heartbeat never reached {states}: {last}")


async def test_agent_flow_over_stdio(tmux_srv: TmuxTestServer, tmp_path: Path) -> None:
    params = StdioServerParameters(command=str(shutil.which("preflight")), args=["serve"],
                                   env={**os.environ, "PREFLIGHT_STATE_DIR": str(tmp_path / "state")})
    async with Client(params, mode="legacy") as client:
        await agent_flow(client, tmux_srv, tmp_path)


async def test_agent_flow_over_http_with_a_token(tmux_srv: TmuxTestServer, tmp_path: Path) -> None:
    with http_server(tmp_path) as srv:
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=httpx2.Timeout(30, read=60)
                               ) as http,
            Client(streamable_http_client(srv.url, http_client=http)) as client,
        ):
            await agent_flow(client, tmux_srv, tmp_path)
        # The same server refuses a request without the token, and one with a foreign Host header.
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "0"}}}
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        assert httpx2.post(srv.url, json=init, headers=headers, timeout=10).status_code == 401
        foreign = {**headers, "Authorization": f"Bearer {TOKEN}", "Host": "evil.example"}
        assert httpx2.post(srv.url, json=init, headers=foreign, timeout=10).status_code == 421


async def agent_flow(client: Client, tmux_srv: TmuxTestServer, tmp_path: Path) -> None:
    run_spec = spec(model={"name": "llama-3.2-1b"}, method="lora", lora_rank=16, seq_len=2048, micro_batch=2)
    cid = (await ok(client, "checklist_start", run_name="e2e", policy="pre-estimate", spec=run_spec))["id"]

    plan = await ok(client, "plan_options", spec=run_spec, checklist_id=cid)
    best = plan["rows"][0]
    assert plan["offers_captured_at"] and best["gpu_option"]

    closed = await ok(client, "gate_check", checklist_id=cid, kind="full")
    assert closed["allowed"] is False and "memory_fit" in closed["missing"]

    gpu = best["gpu_option"].split("x ", 1)[1]
    estimate = await ok(client, "estimate_run", spec=run_spec, gpu=gpu, dph_total_usd=best["dph_total_usd"],
                        checklist_id=cid)
    predicted = estimate["throughput"]["tokens_per_s"]["base"]
    status = await ok(client, "checklist_status", checklist_id=cid)
    assert status["gate"] == {"probe": True, "full": True}, status["missing"]

    pane = tmux_srv.shell()
    log = tmp_path / f"train-{cid}.log"
    command = (f"{sys.executable} {APPS / 'fake_train.py'} --log {log} --steps 25 --step-s 0.12 "
               f"--exit-code 0")
    launched = await ok(client, "launch_run", checklist_id=cid, target=pane, command=command, kind="probe",
                        log_path=str(log), expected_tokens_per_s=predicted, socket_name=tmux_srv.socket_name)
    assert launched["dispatch"]["status"] == "submitted"
    run_id = launched["run"]["run_id"]
    assert launched["run"]["cap_steps"] is not None  # a probe carries the policy's step cap

    running = await until(client, run_id, {"running"})
    assert running["pid"] if "pid" in running else running["job_id"]
    check: dict[str, Any] = {}
    with anyio.move_on_after(10):
        while not check.get("step_last"):  # the log's first lines arrive after a step or two
            check = await ok(client, "run_check", run_id=run_id, total_steps=25,
                             dph_total_usd=best["dph_total_usd"])
            await anyio.sleep(0.1)
    assert check["heartbeat"] is not None and check["heartbeat"]["state"] == "running"
    assert check["step_last"] >= 1 and check["decision"]["decision"] in ("keep", "wait")

    exited = await until(client, run_id, {"exited", "idle_at_prompt"})
    assert exited["exit_code"] == 0
    final = await ok(client, "run_check", run_id=run_id, total_steps=25, dph_total_usd=best["dph_total_usd"])
    assert final["step_last"] == 24
    assert final["decision"]["decision"] == "done"
    assert final["cost_so_far_usd"] is not None and final["cost_so_far_usd"] >= 0

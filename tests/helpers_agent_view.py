"""The README's example specs walked through MCP as agents.md says, and the size of what a client forwards.

Shared by ``tests/test_mcp_agent_view.py`` (asserts <= 2.5 KB per result) and ``bench/mcp.py`` (prints
each size beside that goal). Claude Code and Codex hand the model a result's ``structuredContent`` as
compact JSON and drop the text block, so that JSON's UTF-8 bytes is the size that counts.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.types import CallToolResult

EXAMPLES = sorted(p for p in (Path(__file__).resolve().parents[1] / "examples").iterdir()
                  if p.suffix in (".toml", ".json"))
"""The specs the README runs."""
RESULT_GOAL_BYTES = 2500


def load_example(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())
    return data


def forwarded_bytes(result: CallToolResult) -> int:
    """Bytes of the structured content as compact JSON (non-ASCII kept), as the agents forward it; for a
    refusal (no structured content), its text."""
    if result.structured_content is None:
        return sum(len(getattr(c, "text", "").encode()) for c in result.content)
    return len(json.dumps(result.structured_content, separators=(",", ":"), ensure_ascii=False).encode())


def _ok(result: CallToolResult, tool: str) -> CallToolResult:
    assert not result.is_error, f"{tool}: {result.content}"
    return result


async def example_flow(client: Client, path: Path) -> dict[str, CallToolResult]:
    """agents.md's pre-estimate walk on one example: start, plan, estimate the first row, status, gates,
    report; plus the estimator's two single-purpose tools on the same GPU. Every result, by tool name."""
    spec = load_example(path)
    out: dict[str, CallToolResult] = {}

    async def call(tool: str, **arguments: Any) -> dict[str, Any]:
        out[tool] = _ok(await client.call_tool(tool, arguments), tool)
        data: dict[str, Any] = out[tool].structured_content or {}
        return data

    started = await call("checklist_start", run_name=path.stem, policy="pre-estimate", spec=spec)
    cid = started["id"]
    plan = await call("plan_options", spec=spec, checklist_id=cid)
    rows = plan.get("rows") or []
    gpu, price = (rows[0]["gpu_option"].split("x ", 1)[1], rows[0]["dph_total_usd"]) if rows else ("H100 SXM", 2.5)
    await call("estimate_run", spec=spec, gpu=gpu, dph_total_usd=price, checklist_id=cid)
    await call("estimate_memory", spec=spec, gpu=gpu)
    await call("estimate_throughput", spec=spec, gpu=gpu)
    await call("checklist_status", checklist_id=cid)
    out["gate_check"] = await client.call_tool("gate_check", {"checklist_id": cid, "kind": "probe"})
    await call("checklist_report", checklist_id=cid)
    return out

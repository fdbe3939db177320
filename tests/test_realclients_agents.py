"""Real agent CLIs run headless with our server registered as the README says: Codex 0.171.0
(``codex exec``) and Claude Code 2.1.332 (``claude -p``), each against a scripted model on loopback that
walks agents.md's pre-estimate flow and records every tool result the agent sends back, which is what a
model really reads.

The script: the agent's own discovery calls (Codex: ``list_mcp_resources`` and
``list_mcp_resource_templates``; Claude Code: ``ToolSearch`` to load our tools' schemas, which it defers,
then ``ListMcpResourcesTool``), ``checklist_start`` with the README's example spec, ``plan_options`` with
the checklist id, ``estimate_run`` on the plan's first row (same GPU and price), ``checklist_status``;
then two refused calls (an unknown run id, an unknown GPU). One run per agent (5-10 s here) serves every
test of that agent.

Both agents forward a result's structured content as compact JSON and drop the text block (Codex puts
``Wall time: ...\\nOutput:\\n`` before it); sizes are measured on that JSON as forwarded.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from realclients.agents import AGENTS, AgentRun, find_agent, run_agent
from realclients.checks import (
    INSTRUCTIONS_LIMIT_BYTES,
    RESULT_LIMIT_BYTES,
    dead_references,
    example_spec,
    first_json,
    live_references,
    plan_pick,
)
from realclients.tool_server import ToolCall, ToolCallServer, ToolResult

FLOW = ("checklist_start", "plan_options", "estimate_run", "checklist_status")
BAD_RUN_ID, BAD_GPU = "no-such-run", "Z9000"
DONE = "pre-estimate recorded"
CONNECT_TRIES, CONNECT_PAUSE_S = 40, 0.25
_CLAUDE_LOAD = ",".join([f"mcp__preflight__{t}" for t in (*FLOW, "run_check")] + ["ListMcpResourcesTool"])
DISCOVERY: dict[str, list[ToolCall]] = {
    "codex": [ToolCall("list_mcp_resources", {"server": "preflight"}, builtin=True),
              ToolCall("list_mcp_resource_templates", {"server": "preflight"}, builtin=True)],
    "claude": [ToolCall("ToolSearch", {"query": f"select:{_CLAUDE_LOAD}", "max_results": 10}, builtin=True),
               ToolCall("ListMcpResourcesTool", {"server": "preflight"}, builtin=True)],
}


def _still_connecting(result: ToolResult) -> bool:
    """Claude Code answers ``ToolSearch`` with "Some MCP servers are still connecting: preflight. ... try
    searching again" while our server starts (``-p`` does not wait for it); a model searches again."""
    return "still connecting" in result.text


class PreEstimateScript:
    """The scripted model: each step reads the earlier results (checklist id, the plan's first row)."""

    def __init__(self, discovery: list[ToolCall]) -> None:
        self.spec = example_spec()
        self.discovery = discovery
        self.stopped: str | None = None

    def __call__(self, results: list[ToolResult]) -> ToolCall | str:
        try:
            return self._next(results)
        except (LookupError, AssertionError, ValueError) as exc:
            self.stopped = str(exc)
            return f"stopped: {exc}"

    @staticmethod
    def _json(results: list[ToolResult], tool: str) -> dict[str, Any]:
        found = [r for r in results if r.call.tool == tool]
        parsed = first_json(found[-1].text) if found else None
        if parsed is None or not isinstance(parsed[0], dict):
            raise LookupError(f"{tool} gave no JSON object: {found[-1].text[:300] if found else 'no result'}")
        return parsed[0]

    def _next(self, results: list[ToolResult]) -> ToolCall | str:
        tries = [r for r in results if r.call.builtin]
        answered = [r for r in tries if not _still_connecting(r)]
        if len(answered) < len(self.discovery):
            if tries and _still_connecting(tries[-1]):
                if len(tries) - len(answered) >= CONNECT_TRIES:
                    raise LookupError(f"our server still connecting after {CONNECT_TRIES} tries: {tries[-1].text}")
                time.sleep(CONNECT_PAUSE_S)
            return self.discovery[len(answered)]
        step, spec = len(results) - len(tries), self.spec
        if step == 0:
            return ToolCall("checklist_start", {"run_name": "agent-flow", "policy": "pre-estimate", "spec": spec})
        checklist_id = str(self._json(results, "checklist_start")["id"])
        if step == 1:
            return ToolCall("plan_options", {"spec": spec, "checklist_id": checklist_id})
        if step == 2:
            gpu, dph_total_usd = plan_pick(self._json(results, "plan_options"))
            return ToolCall("estimate_run", {"spec": spec, "gpu": gpu, "dph_total_usd": dph_total_usd,
                                             "checklist_id": checklist_id})
        if step == 3:
            return ToolCall("checklist_status", {"checklist_id": checklist_id})
        if step == 4:
            return ToolCall("run_check", {"run_id": BAD_RUN_ID})
        if step == 5:
            return ToolCall("estimate_run", {"spec": spec, "gpu": BAD_GPU})
        return DONE


@dataclass
class Walk:
    agent: str
    server: ToolCallServer
    script: PreEstimateScript
    run: AgentRun

    def result(self, tool: str, index: int = 0) -> ToolResult:
        found = [r for r in self.server.results if r.call.tool == tool]
        assert -len(found) <= index < len(found), f"no result #{index} for {tool}: {self.called()}"
        return found[index]

    def called(self) -> list[str]:
        return [r.call.tool for r in self.server.results]

    def discovered(self) -> str:
        """What the agent's discovery calls returned (tool schemas, resource lists), as the model read it."""
        return "\n".join(self.result(call.tool, -1).text for call in self.script.discovery)

    def our_tools(self) -> list[str]:
        """Our tools as the agent offers them to the model (Codex: the namespace; Claude Code: the deferred
        tool names it lists in the conversation)."""
        if self.agent == "codex":
            spaces = [t for t in self.server.tool_specs if t.get("name") == "mcp__preflight"]
            return [str(t.get("name")) for s in spaces for t in s.get("tools", [])]
        sent = str(self.server.requests[-1].body)
        return sorted(set(re.findall(r"mcp__preflight__([a-z_]+)", sent)))

    def resource_uris(self) -> list[str]:
        return sorted(set(re.findall(r"preflight://[\w./{}-]+", self.discovered())))


@pytest.fixture(scope="module", params=AGENTS)
def walk(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walk]:
    agent = str(request.param)
    exe, why = find_agent(agent)
    if exe is None:
        pytest.skip(why)
    state = tmp_path_factory.mktemp(f"{agent}-state")
    script = PreEstimateScript(DISCOVERY[agent])
    with ToolCallServer(script) as server:
        done = run_agent(agent, server, "Plan and pre-estimate the LoRA run in examples/llama-3.2-1b-lora.toml.",
                         Path(state))
        yield Walk(agent, server, script, done)


def test_the_agent_runs_the_whole_pre_estimate_flow(walk: Walk) -> None:
    """The agent connects, offers our tools, runs each scripted call and returns its result, and the
    checklist ends with both gates open (issue 20: four calls)."""
    assert walk.run.rc == 0, walk.run.stderr[-2000:]
    assert walk.script.stopped is None, walk.script.stopped
    assert walk.server.problems == [], walk.server.problems
    assert walk.server.final_text == DONE and DONE in walk.run.stdout
    assert set(FLOW) <= set(walk.our_tools()), walk.our_tools()
    ours = [r.call.tool for r in walk.server.results if not r.call.builtin]
    assert ours[:len(FLOW)] == list(FLOW), walk.called()
    status = first_json(walk.result("checklist_status").text)
    assert status is not None, walk.result("checklist_status").text[:500]
    assert status[0]["gate"] == {"probe": True, "full": True}, status[0].get("missing")
    estimate = walk.result("estimate_run")
    assert first_json(estimate.text) is not None and estimate.call.arguments["gpu"] in estimate.text


def test_every_result_the_model_reads_is_at_most_2_5_kb(walk: Walk) -> None:
    """The JSON the agent forwards for each flow call (structured content, compact) is <= 2,500 bytes."""
    sizes: dict[str, int] = {}
    for tool in FLOW:
        parsed = first_json(walk.result(tool).text)
        assert parsed is not None, f"{tool}: no JSON in what {walk.agent} forwarded: {walk.result(tool).text[:300]}"
        sizes[tool] = len(parsed[1].encode())
    over = {tool: size for tool, size in sizes.items() if size > RESULT_LIMIT_BYTES}
    assert not over, f"over {RESULT_LIMIT_BYTES} B as forwarded by {walk.agent}: {over} (all: {sizes})"


@pytest.mark.parametrize(("tool", "index", "field", "bad"), [("run_check", 0, "run_id", BAD_RUN_ID),
                                                             ("estimate_run", 1, "gpu", BAD_GPU)])
def test_refusals_the_model_reads_name_a_real_next_call(walk: Walk, tool: str, index: int, field: str,
                                                        bad: str) -> None:
    """What the agent forwards for a refused call names the field and what was sent, and points at a tool
    or resource the model can reach, never at a CLI command or a Python function."""
    result = walk.result(tool, index)
    assert result.is_error in (True, None) and "Error" in result.text, result.text
    assert field in result.text and bad in result.text, result.text
    tools, uris = walk.our_tools(), walk.resource_uris()
    assert dead_references(result.text, tools, uris) == [], result.text
    assert live_references(result.text, tools, uris, tool), f"names no tool or resource: {result.text}"


def test_the_instructions_reach_the_model_and_carry_the_flow(walk: Walk) -> None:
    """The server's instructions arrive whole (Codex: the namespace description; Claude Code: the system
    prompt, where with tool search on they are all the model sees besides tool names), within about 1 KB,
    naming the first tool, the gate and the heartbeat rule; a file they point to is a resource."""
    from gpu_preflight.server.app import create_server

    text = str(create_server().instructions or "")
    assert text and text in str(walk.server.requests[-1].body).replace("\\n", "\n"), "instructions not delivered"
    assert len(text.encode()) <= INSTRUCTIONS_LIMIT_BYTES, f"instructions are {len(text.encode())} B"
    for needed in ("checklist_start", "gate", "heartbeat"):
        assert needed in text, f"instructions do not mention {needed}: {text}"
    uris = walk.resource_uris()
    for doc in re.findall(r"[\w-]+\.md\b", text):
        assert any(doc.removesuffix(".md") in uri for uri in uris), f"{doc} named but not a resource: {uris}"

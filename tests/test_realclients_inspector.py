"""The MCP Inspector CLI (npm, pinned: realclients.inspector.VERSION) drives the server over stdio
(``preflight serve``) and streamable HTTP (``preflight serve --http`` with a bearer token), as issue 20
did by hand: ``--strict`` portability warnings on tools/list, result sizes of the structured JSON a client
forwards, the next step an error names, the compact GPU index, and what a client without the token reads.

Skips with the reason when node/npm or the package cannot be had. Each Inspector call is a fresh node
client (about 1-2 s), so the calls are few and grouped.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers_http import TOKEN, http_server
from realclients import inspector
from realclients.checks import (
    GPU_INDEX_LIMIT_BYTES,
    RESULT_LIMIT_BYTES,
    compact_bytes,
    dead_references,
    example_spec,
    live_references,
)


class Client:
    """Inspector calls against one server (each call costs a node start, and over stdio a server start)."""

    def __init__(self, run: Callable[..., inspector.Answer]) -> None:
        self.run = run

    def __call__(self, *args: str) -> inspector.Answer:
        return self.run(*args)


def server_catalogue() -> tuple[list[str], list[str]]:
    """(tool names, resource URIs and URI templates) of this tree's server: the yardstick for the names an
    error points at, listed in process (the Inspector would cost three node starts for the same lists)."""
    import anyio
    from mcp import Client as SdkClient

    from gpu_preflight.server.app import create_server

    async def listed() -> tuple[list[str], list[str]]:
        async with SdkClient(create_server()) as client:
            tools = (await client.list_tools()).tools
            resources = (await client.list_resources()).resources
            templates = (await client.list_resource_templates()).resource_templates
        return [t.name for t in tools], [str(r.uri) for r in resources] + [t.uri_template for t in templates]

    return anyio.run(listed)


@pytest.fixture(scope="module")
def launcher() -> Path:
    found = inspector.ensure_installed()
    if found is None:
        pytest.skip(inspector.why_missing())
    return found


def _stdio_target() -> list[str]:
    """The README's command line: ``preflight serve`` (the venv's console script when on PATH)."""
    exe = shutil.which("preflight")
    return [exe, "serve"] if exe else [sys.executable, "-m", "gpu_preflight.server", "serve"]


@pytest.fixture(scope="module", params=["stdio", "http"])
def call(request: pytest.FixtureRequest, launcher: Path, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Client]:
    """``call(*inspector_args)`` against one server of this transport with its own state folder."""
    tmp = tmp_path_factory.mktemp(f"inspector-{request.param}")
    if request.param == "stdio":
        env = {"PREFLIGHT_STATE_DIR": str(tmp / "state")}
        yield Client(lambda *args: inspector.run(_stdio_target(), *args, env=env))
        return
    with http_server(tmp) as srv:
        auth = ("--transport", "http", "--server-url", srv.url, "--header", f"Authorization: Bearer {TOKEN}")
        yield Client(lambda *args: inspector.run([], *auth, *args))


def _tool_call(call: Client, tool: str, **arguments: Any) -> inspector.Answer:
    import json

    pairs = [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in arguments.items()]
    return call("--method", "tools/call", "--tool-name", tool, *[x for p in pairs for x in ("--tool-arg", p)])


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_tools_list_is_strict_clean(call: Client) -> None:
    """``--strict`` prints each tool-schema portability problem on stderr (nullable fields as a type
    array, ...); issue 20 counted 106 of them. Goal: none, and the list still holds every tool."""
    answer = call("--method", "tools/list", "--strict")
    names = [t["name"] for t in (answer.value or {}).get("tools", [])]
    assert {"estimate_run", "checklist_start", "plan_options", "checklist_status", "heartbeat"} <= set(names), names
    lines = answer.stderr.splitlines()
    problems = [f"{line} {lines[i + 1].strip() if i + 1 < len(lines) else ''}" for i, line in enumerate(lines)
                if line.startswith(("Warning:", "Error:"))]
    summary = answer.stderr.strip().splitlines()[-1:] or [""]
    assert answer.rc == 0 and not problems, f"{len(problems)} strict problems ({summary[0]}), first: {problems[:3]}"


def test_results_on_the_example_spec_fit_in_2_5_kb(call: Client) -> None:
    """The structured JSON of estimate_run, checklist_start and plan_options on the README's example spec,
    compact as the agents forward it, is at most 2,500 bytes each, and still holds the decision's numbers
    (README's contract: memory verdict, peak_gb, tokens_per_s; the checklist id; the option rows)."""
    spec = example_spec()
    answers = {
        "estimate_run": _tool_call(call, "estimate_run", spec=spec, gpu="RTX 4090", dph_total_usd=0.4),
        "checklist_start": _tool_call(call, "checklist_start", run_name="inspector", policy="pre-estimate",
                                      spec=spec),
        "plan_options": _tool_call(call, "plan_options", spec=spec),
    }
    sizes: dict[str, int] = {}
    for tool, answer in answers.items():
        assert answer.rc == 0 and answer.value and answer.value.get("isError") is False, (tool, answer.stdout[-500:])
        structured = answer.value.get("structuredContent")
        assert isinstance(structured, dict), f"{tool}: no structuredContent"
        sizes[tool] = compact_bytes(structured)
    estimate = answers["estimate_run"].value["structuredContent"]
    assert {"verdict", "peak_gb", "tokens_per_s"} <= _keys(estimate), sorted(_keys(estimate))
    assert str(answers["checklist_start"].value["structuredContent"].get("id", "")).startswith("ck-")
    assert answers["plan_options"].value["structuredContent"].get("rows"), "plan_options: no rows"
    over = {tool: size for tool, size in sizes.items() if size > RESULT_LIMIT_BYTES}
    assert not over, f"over {RESULT_LIMIT_BYTES} B of forwarded JSON: {over} (all: {sizes})"


@pytest.mark.parametrize(("tool", "field", "bad"), [("run_check", "run_id", "no-such-run"),
                                                   ("estimate_run", "gpu", "Z9000")])
def test_errors_name_a_real_next_call(call: Client, tool: str, field: str, bad: str) -> None:
    """A refused call is an MCP error that names the field and what was sent, and as the next step a tool
    or resource that exists, never a CLI command or a Python function (issue 20: ``see list_runs``,
    ``see `preflight gpus```)."""
    arguments: dict[str, Any] = {"spec": example_spec()} if tool == "estimate_run" else {}
    answer = _tool_call(call, tool, **arguments, **{field: bad})
    assert answer.value is not None and answer.value.get("isError") is True, answer.stdout[-500:]
    text = " ".join(part.get("text", "") for part in answer.value["content"])
    assert field in text and bad in text, text
    tools, resources = server_catalogue()
    assert dead_references(text, tools, resources) == [], text
    assert live_references(text, tools, resources, tool), f"names no tool or resource: {text}"


def test_gpu_index_is_compact(launcher: Path, tmp_path: Path) -> None:
    """``preflight://gpus`` as the client reads it: under 4 KB (issue 20: 46 KB in one result), and each
    entry still names its GPU and memory."""
    env = {"PREFLIGHT_STATE_DIR": str(tmp_path / "state")}
    answer = inspector.run(_stdio_target(), "--method", "resources/read", "--uri", "preflight://gpus", env=env)
    assert answer.rc == 0 and answer.value, answer.stderr[-1000:]
    text = "".join(c.get("text", "") for c in answer.value["contents"])
    assert "H100" in text and "4090" in text
    assert len(text.encode()) < GPU_INDEX_LIMIT_BYTES, f"preflight://gpus is {len(text.encode())} B"


def test_agents_md_is_a_resource(launcher: Path, tmp_path: Path) -> None:
    """The full agent flow (agents.md) is reachable over MCP, and reads as the file in the repository."""
    env = {"PREFLIGHT_STATE_DIR": str(tmp_path / "state")}
    listed = inspector.run(_stdio_target(), "--method", "resources/list", env=env)
    assert listed.rc == 0 and listed.value, listed.stderr[-1000:]
    uris = [r["uri"] for r in listed.value["resources"] if "agents" in (r["uri"] + r.get("name", "")).lower()]
    assert uris, f"no agents resource in {[r['uri'] for r in listed.value['resources']]}"
    read = inspector.run(_stdio_target(), "--method", "resources/read", "--uri", uris[0], env=env)
    text = "".join(c.get("text", "") for c in (read.value or {}).get("contents", []))
    assert "checklist_start" in text and "heartbeat" in text, text[:300]


def test_http_without_token_says_send_the_bearer_token(launcher: Path, tmp_path: Path) -> None:
    """A client without the token reads that it must send ``Authorization: Bearer`` (issue 20: Claude Code
    tried OAuth dynamic client registration and the Inspector asked for a TTY to run OAuth).

    ``--stored-auth-only`` is the Inspector's mode for non-interactive runs: without it, version 2.12.0
    starts interactive OAuth on *any* 401 (``withCliAuthRecoveryRetry`` in its CLI bundle), whatever the
    server says, so only this mode shows what our server answered."""
    with http_server(tmp_path) as srv:
        answer = inspector.run([], "--transport", "http", "--server-url", srv.url, "--stored-auth-only",
                               "--method", "tools/list")
    said = answer.stdout + answer.stderr
    assert answer.rc != 0 and "tools" not in (answer.value or {}), said
    assert "Authorization: Bearer" in said, said[-1000:]
    assert "registration" not in said.lower(), said[-1000:]

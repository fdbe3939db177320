"""The MCP surface's three budgets: stdio cold start, in-process tool-call round trip, ``tools/list`` size.

* cold start: spawn ``preflight serve`` and send the raw JSON-RPC ``initialize`` a host sends
  (protocolVersion 2025-06-18, as Claude Code and Codex do); time from spawn to the response line.
  Median of ``--spawns`` (goal < 1 s: hosts wait for it before the agent can start).
* round trip: ``estimate_run`` through the in-process ``Client(create_server())``, both protocol
  eras, median of ``--calls`` after 20 warm-ups (goal < 5 ms: an agent calls it many times per plan).
  ``estimate_memory`` and the bare domain call are shown beside it to say where the time goes.
* ``tools/list``: the bytes of the real response line from the spawned server, and ~tokens as
  bytes/4 (goal < 6,000 tokens ~ 24 KB: the model reads it at the start of every session), with the
  largest tools listed.
* result sizes: each tool's structured JSON as a client forwards it (compact, what Claude Code and
  Codex hand the model), on every README example spec walked as agents.md says (goal <= 2.5 KB each,
  issue 20); beside it the server instructions (goal ~1 KB) and the ``preflight://gpus`` index (< 4 KB).

When the cold start misses its goal (or with ``--profile``), ``python -X importtime`` of the server's
imports is summarised: the slowest of our own modules and the slowest third-party packages.

    python bench/mcp.py [--spawns 10] [--calls 200] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import anyio

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# `python bench/mcp.py` puts bench/ first on sys.path, where this file would shadow the `mcp` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT / "tests"))

COLD_START_GOAL_MS = 1000.0
ROUND_TRIP_GOAL_MS = 5.0
TOOLS_LIST_GOAL_TOKENS = 6000
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {"roots": {}, "elicitation": {}},
    "clientInfo": {"name": "bench", "version": "0"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}


def serve_argv() -> list[str]:
    exe = shutil.which("preflight")
    return [exe, "serve"] if exe else [sys.executable, "-m", "gpu_preflight.server", "serve"]


def _read_response(proc: subprocess.Popen[bytes], want_id: int, timeout_s: float) -> bytes:
    """The stdout line answering request ``want_id`` (notifications are skipped), within a deadline."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            chunk = os.read(proc.stdout.fileno(), 1 << 20)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip() and json.loads(line).get("id") == want_id:
                    return line
    raise TimeoutError(f"no response to request {want_id} within {timeout_s:.0f}s")


def _send(proc: subprocess.Popen[bytes], message: dict[str, Any]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(message).encode() + b"\n")
    proc.stdin.flush()


# The SDK's own floor: an empty MCPServer over stdio, so the figure above it is ours.
EMPTY_SERVER = [sys.executable, "-c", "from mcp.server import MCPServer; MCPServer('empty').run()"]


def cold_start(spawns: int, env: dict[str, str], argv: list[str] | None = None,
               list_tools: bool = True) -> tuple[list[float], bytes, str]:
    """Spawn-to-initialize times (ms), the raw ``tools/list`` response line, the negotiated version."""
    times: list[float] = []
    tools_line = b""
    version = "?"
    for i in range(spawns):
        started = time.perf_counter()
        proc = subprocess.Popen(argv or serve_argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=env)
        try:
            _send(proc, INIT)
            line = _read_response(proc, 1, 30)
            times.append((time.perf_counter() - started) * 1000)
            version = json.loads(line)["result"]["protocolVersion"]
            if i == 0 and list_tools:
                _send(proc, INITIALIZED)
                _send(proc, TOOLS_LIST)
                tools_line = _read_response(proc, 2, 30)
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    return times, tools_line, version


async def _round_trips(mode: str, tool: str, arguments: dict[str, Any], calls: int) -> list[float]:
    from mcp import Client

    from gpu_preflight.server.app import create_server

    async with Client(create_server(), mode=mode) as client:
        for _ in range(20):
            await client.call_tool(tool, arguments)
        out = []
        for _ in range(calls):
            t = time.perf_counter()
            result = await client.call_tool(tool, arguments)
            out.append((time.perf_counter() - t) * 1000)
            assert not result.is_error, result.content
    return out


def _domain_ms(arguments: dict[str, Any], calls: int) -> float:
    """``estimate_run`` + its markdown without MCP: the floor under the round trip."""
    from gpu_preflight.tools.estimator.estimate import estimate_run
    from gpu_preflight.tools.estimator.render import estimate_markdown

    times = []
    for _ in range(calls):
        t = time.perf_counter()
        e = estimate_run(arguments["spec"], arguments["gpu"], arguments.get("dph_total_usd"))
        estimate_markdown(e)
        e.model_dump(mode="json")
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _create_server_ms(n: int = 5) -> float:
    from gpu_preflight.server.app import create_server

    create_server()
    t = time.perf_counter()
    for _ in range(n):
        create_server()
    return (time.perf_counter() - t) * 1000 / n


def import_profile(env: dict[str, str], top: int = 12) -> str:
    """Self time per module from ``-X importtime`` of what ``preflight serve`` imports before it answers."""
    code = "from gpu_preflight.server.app import create_server; create_server()"
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    ours: list[tuple[int, str]] = []
    packages: dict[str, int] = defaultdict(int)
    total = 0
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if not m:
            continue
        self_us, name = int(m[1]), m[4]
        total += self_us
        if name.startswith("gpu_preflight"):
            ours.append((self_us, name))
        else:
            packages[name.split(".")[0]] += self_us
    ours.sort(reverse=True)
    lines = [f"  import self-time total {total / 1000:.0f} ms; ours {sum(t for t, _ in ours) / 1000:.0f} ms "
             f"in {len(ours)} modules. Slowest of ours (self ms):"]
    lines += [f"    {t / 1000:7.1f}  {name}" for t, name in ours[:top]]
    lines.append("  Slowest third-party packages (self ms, summed):")
    lines += [f"    {t / 1000:7.1f}  {name}" for name, t in sorted(packages.items(), key=lambda kv: -kv[1])[:8]]
    return "\n".join(lines)


async def _result_sizes() -> dict[str, dict[str, int]]:
    """{example file: {tool: forwarded bytes}} over the agents.md walk (tests/helpers_agent_view.py)."""
    from helpers_agent_view import EXAMPLES, example_flow, forwarded_bytes
    from mcp import Client

    from gpu_preflight.server.app import create_server

    out: dict[str, dict[str, int]] = {}
    async with Client(create_server(), mode="legacy") as client:
        for path in EXAMPLES:
            out[path.name] = {tool: forwarded_bytes(r) for tool, r in (await example_flow(client, path)).items()}
    return out


async def _discovery_sizes() -> tuple[int, int]:
    """Bytes of the instructions and of the ``preflight://gpus`` index a client reads."""
    from mcp import Client

    from gpu_preflight.server.app import INSTRUCTIONS, create_server

    async with Client(create_server(), mode="legacy") as client:
        index = await client.read_resource("preflight://gpus")
    return len(INSTRUCTIONS.encode()), sum(len(getattr(c, "text", "").encode()) for c in index.contents)


def print_result_sizes() -> None:
    from helpers_agent_view import RESULT_GOAL_BYTES

    sizes = anyio.run(_result_sizes)
    tools = list(dict.fromkeys(t for per in sizes.values() for t in per))
    print(f"result sizes: structured JSON a client forwards, bytes (goal <= {RESULT_GOAL_BYTES} each)")
    print(f"  {'tool':<22}" + "".join(f"{name[:24]:>26}" for name in sizes))
    for tool in tools:
        cells = [per.get(tool) for per in sizes.values()]
        marks = ["  OVER" if c and c > RESULT_GOAL_BYTES else "" for c in cells]
        row = "".join(f"{'-' if c is None else c:>20}{m:>6}" for c, m in zip(cells, marks, strict=True))
        print(f"  {tool:<22}{row}")
    instructions, index = anyio.run(_discovery_sizes)
    print(f"  instructions {instructions} bytes (goal ~1024); preflight://gpus index {index} bytes (goal < 4096)")


def _line(label: str, value: float, unit: str, goal: float, extra: str = "") -> str:
    return (f"{label:<52} {value:9.2f} {unit:<6} goal < {goal:g} {unit:<6} ratio {value / goal:5.2f}"
            f"{'  OVER' if value > goal else ''}{'  ' + extra if extra else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawns", type=int, default=10)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--profile", action="store_true", help="always print the import profile")
    args = parser.parse_args()
    from helpers_spec import spec

    with tempfile.TemporaryDirectory(prefix="pf-bench-") as state:
        env = {**os.environ, "PREFLIGHT_STATE_DIR": state}
        os.environ["PREFLIGHT_STATE_DIR"] = state
        print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} python {sys.version.split()[0]} cores={os.cpu_count()}")

        times, tools_line, version = cold_start(args.spawns, env)
        cold = statistics.median(times)
        print(_line("stdio spawn -> initialize response (median)", cold, "ms", COLD_START_GOAL_MS,
                    f"min {min(times):.0f} max {max(times):.0f} n={len(times)} proto={version}"))
        floor, _, _ = cold_start(max(3, args.spawns // 2), env, EMPTY_SERVER, list_tools=False)
        bare, _, _ = cold_start(3, env, [sys.executable, "-c", "import sys, json; sys.stdin.readline(); print("
                                         "json.dumps({'jsonrpc': '2.0', 'id': 1, 'result': {'protocolVersion': "
                                         "'2025-06-18'}}), flush=True)"], list_tools=False)
        print(f"  for scale: an empty MCPServer answers in {statistics.median(floor):.0f} ms (the SDK's floor), "
              f"bare python in {statistics.median(bare):.0f} ms; ours adds {cold - statistics.median(floor):.0f} ms")

        arguments = {"spec": spec(), "gpu": "H100 SXM", "dph_total_usd": 2.5}
        for mode in ("auto", "legacy"):
            rt = anyio.run(_round_trips, mode, "estimate_run", arguments, args.calls)
            p90 = statistics.quantiles(rt, n=10)[-1]
            print(_line(f"in-process estimate_run round trip [{mode}] (median)", statistics.median(rt), "ms",
                        ROUND_TRIP_GOAL_MS, f"p90 {p90:.2f} n={len(rt)}"))
        mem = anyio.run(_round_trips, "auto", "estimate_memory", {"spec": spec(), "gpu": "H100 SXM"}, args.calls)
        print(f"  for scale: estimate_memory round trip [auto] {statistics.median(mem):.2f} ms; estimate_run "
              f"domain call + markdown + dump, no MCP, {_domain_ms(arguments, args.calls):.2f} ms; "
              f"create_server() {_create_server_ms():.0f} ms")

        tools = json.loads(tools_line)["result"]["tools"]
        size = len(tools_line)
        print(_line("tools/list response (~tokens = bytes/4)", size / 4, "tokens", TOOLS_LIST_GOAL_TOKENS,
                    f"{size:,} bytes, {len(tools)} tools"))
        sizes = sorted(((len(json.dumps(t, separators=(",", ":"))), t["name"],
                         len(json.dumps(t.get("inputSchema", {}), separators=(",", ":"))),
                         len(json.dumps(t.get("outputSchema", {}), separators=(",", ":"))),
                         len(t.get("description", ""))) for t in tools), reverse=True)
        print("  largest tools (bytes: total = input schema + output schema + description + rest):")
        for total, name, inp, out, desc in sizes[:8]:
            print(f"    {total:6,}  {name:<22} in {inp:6,}  out {out:6,}  desc {desc:5,}")

        print_result_sizes()

        if args.profile or cold > COLD_START_GOAL_MS:
            print("import profile (python -X importtime; cold start over goal or --profile):")
            print(import_profile(env))


if __name__ == "__main__":
    main()

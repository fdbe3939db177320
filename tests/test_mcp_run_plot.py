"""MCP ``run_plot``: the run chart as image content an agent can look at, with its numbers as JSON.

The log and the nvidia-smi capture are written here, lines we made from the documented formats
(nanochat's ``step N/T (p%) | loss | dt | tok/sec | mfu`` line; ``--query-gpu`` CSV with units), so
every expected number is worked out by hand from the lines below.

Why no ``structuredContent``, measured with the pinned agents against a scripted model
(:mod:`realclients.tool_server`, the last test here): given a result with an image, a text block and
structured content, Claude Code 2.1.332 forwarded the image and the structured JSON, but Codex 0.171.0
forwarded only the structured JSON, so its model never saw the chart. Without structured content both
forward the image and the JSON text.
"""

from __future__ import annotations

import base64
import json
import statistics
import struct
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import ImageContent, TextContent

pytestmark = pytest.mark.anyio

TOKENS_PER_S = [480_000 + 5_000 * i for i in range(10)]  # tok/sec of steps 1..10: 480,000 .. 525,000
PREDICTED_TOKENS_PER_S = 600_000.0
GPU_UTIL_PCT = [95, 97, 40, 99, 98, 96]  # one reading every 5 s; the 40 is a data-loader stall


def _write_run_files(folder: Path) -> tuple[Path, Path]:
    log = folder / "train.log"
    log.write_text("".join(
        f"step {i + 1:05d}/00100 ({i + 1:.2f}%) | loss: {9 - 0.1 * i:.6f} | lrm: 1.00 | dt: 1000.00ms | "
        f"tok/sec: {tps:,} | mfu: 70.00 | total time: 0.{i:02d}m\n" for i, tps in enumerate(TOKENS_PER_S)))
    smi = folder / "gpu.csv"
    smi.write_text("index, timestamp, utilization.gpu [%], utilization.memory [%], memory.total [MiB], "
                   "memory.used [MiB], memory.free [MiB]\n" + "".join(
                       f"0, 2026/01/05 10:00:{5 * i:02d}.000, {u} %, 50 %, 81559 MiB, 60000 MiB, 21559 MiB\n"
                       for i, u in enumerate(GPU_UTIL_PCT)))
    return log, smi


def _record_run(log: Path, predicted_tokens_per_s: float | None = PREDICTED_TOKENS_PER_S) -> str:
    dispatch = pytest.importorskip("gpu_preflight.tools.dispatch")
    run = dispatch.record_run("train:0.0", "python train.py", kind="probe", log_path=str(log),
                              socket_name=f"pf-test-{uuid.uuid4().hex[:8]}",
                              predicted_tokens_per_s=predicted_tokens_per_s)
    return str(run.run_id)


def _png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the signature and that the raster is whole."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    idat = data.index(b"IDAT")
    length = struct.unpack(">I", data[idat - 4 : idat])[0]
    assert len(zlib.decompress(data[idat + 4 : idat + 4 + length])) == height * (1 + 3 * width)
    return width, height


def _blocks(result: Any) -> tuple[bytes, dict[str, Any]]:
    """The one PNG and the JSON summary of a run_plot result."""
    images = [c for c in result.content if isinstance(c, ImageContent)]
    texts = [c for c in result.content if isinstance(c, TextContent)]
    assert len(images) == 1 and len(texts) == 1 and len(result.content) == 2, result.content
    assert images[0].mime_type == "image/png"
    return base64.b64decode(images[0].data), json.loads(texts[0].text)


async def test_run_plot_is_listed_read_only_without_an_output_schema(mcp_client: Client) -> None:
    tool = next(t for t in (await mcp_client.list_tools()).tools if t.name == "run_plot")
    hints = tool.annotations
    assert hints is not None and (hints.read_only_hint, hints.open_world_hint) == (True, False)
    assert hints.destructive_hint is None and hints.idempotent_hint is None  # read-only: two hints only
    assert tool.output_schema is None and len(tool.description or "") < 120
    assert tool.input_schema["required"] == ["run_id"]


async def test_the_chart_and_its_numbers_match_the_run_log(mcp_client: Client, tmp_path: Path) -> None:
    log, smi = _write_run_files(tmp_path)
    run_id = _record_run(log)
    result = await mcp_client.call_tool("run_plot", {"run_id": run_id, "nvsmi_path": str(smi)})
    assert result.is_error is False and result.structured_content is None
    png, summary = _blocks(result)
    assert _png_size(png) == (800, 500) and len(png) < 60_000
    assert (summary["width_px"], summary["height_px"], summary["png_bytes"]) == (800, 500, len(png))
    # By hand: ten tok/sec values 480,000 .. 525,000, median (500,000 + 505,000) / 2 = 502,500;
    # 502,500 / 600,000 = 0.8375. GPU util 95 97 40 99 98 96, median (96 + 97) / 2 = 96.5.
    assert statistics.median(TOKENS_PER_S) == 502_500 and statistics.median(GPU_UTIL_PCT) == 96.5
    assert summary == {"run_id": run_id, "width_px": 800, "height_px": 500, "png_bytes": len(png),
                       "throughput_unit": "tokens/s", "throughput_points": 10, "gpu_util_points": 6,
                       "measured_median_tokens_per_s": 502_500.0, "predicted_tokens_per_s": 600_000.0,
                       "measured_over_predicted": 0.8375, "gpu_util_median_pct": 96.5}


async def test_a_step_time_log_says_why_the_prediction_is_not_compared(mcp_client: Client, tmp_path: Path) -> None:
    """nanoGPT prints step times only; without the run's spec (tokens per step) a tokens/s prediction
    cannot be put in steps/s, so no ratio is claimed and the note says why."""
    log = tmp_path / "nano.log"
    log.write_text("".join(f"iter {i}: loss 2.{i:02d}, time {250 if i % 2 else 500}.00ms, mfu 10.00%\n"
                           for i in range(6)))
    result = await mcp_client.call_tool("run_plot", {"run_id": _record_run(log)})
    png, summary = _blocks(result)
    # By hand: step times 0.5 0.25 0.5 0.25 0.5 0.25 s -> 2 4 2 4 2 4 steps/s, median 3.
    assert summary["throughput_unit"] == "steps/s" and summary["measured_median_steps_per_s"] == 3.0
    assert "measured_over_predicted" not in summary and "tokens per step" in summary["note"]
    assert summary["gpu_util_points"] == 0 and _png_size(png) == (800, 500)


async def test_an_unknown_run_is_one_line_naming_the_field_and_the_next_call(mcp_client: Client) -> None:
    result = await mcp_client.call_tool("run_plot", {"run_id": "r-none"})
    assert result.is_error is True
    text = result.content[0].text  # type: ignore[union-attr]
    assert "\n" not in text and "run_id: got 'r-none'" in text
    assert 'heartbeat_all(scope="runs")' in text  # an MCP call, not the CLI's `preflight heartbeat --runs`


def test_the_image_reaches_the_model_through_real_agents(tmp_path: Path) -> None:
    """Claude Code and Codex, run headless against a scripted model, each hand the model the PNG and the
    JSON summary of run_plot (the module docstring says why the result has no structuredContent)."""
    from realclients.agents import AGENTS, find_agent, run_agent
    from realclients.checks import first_json
    from realclients.tool_server import ToolCall, ToolCallServer, ToolResult

    log, smi = _write_run_files(tmp_path)
    run_id = _record_run(log)
    discovery = {"claude": ToolCall("ToolSearch", {"query": "select:mcp__preflight__run_plot", "max_results": 5},
                                    builtin=True),
                 "codex": ToolCall("list_mcp_resources", {"server": "preflight"}, builtin=True)}
    missing = []
    for agent in AGENTS:
        exe, why = find_agent(agent)
        if exe is None:
            missing.append(why)
            continue

        def script(results: list[ToolResult], agent: str = agent) -> ToolCall | str:
            found = [r for r in results if r.call.builtin]
            if not found or "still connecting" in found[-1].text:  # Claude Code's answer while our server starts
                if len(found) > 40:
                    return "server never connected"
                time.sleep(0.25 if found else 0)
                return discovery[agent]
            if len(results) == len(found):
                return ToolCall("run_plot", {"run_id": run_id, "nvsmi_path": str(smi)})
            return "looked"

        with ToolCallServer(script) as server:
            done = run_agent(agent, server, "Look at the run's chart.", tmp_path / "state")
        assert done.rc == 0 and server.final_text == "looked", (agent, done.stderr[-1500:], server.results)
        plot = next(r for r in server.results if r.call.tool == "run_plot")
        parts = plot.raw if isinstance(plot.raw, list) else []
        if agent == "claude":
            data = [p["source"]["data"] for p in parts if p.get("type") == "image"]
        else:
            prefix = "data:image/png;base64,"
            data = [p["image_url"][len(prefix):] for p in parts
                    if p.get("type") == "input_image" and p["image_url"].startswith(prefix)]
        assert len(data) == 1, (agent, plot.raw if not parts else [p.get("type") for p in parts])
        assert _png_size(base64.b64decode(data[0])) == (800, 500)
        summary = first_json(plot.text)
        assert summary is not None and summary[0]["measured_median_tokens_per_s"] == 502_500.0, (agent, plot.text)
    if len(missing) == len(AGENTS):
        pytest.skip("; ".join(missing))

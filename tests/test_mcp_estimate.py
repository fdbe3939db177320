"""The estimator through a real MCP client: in process in both protocol eras, and over stdio."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from helpers_spec import EXAMPLES, spec
from mcp import Client, StdioServerParameters
from mcp.types import TextContent

pytestmark = pytest.mark.anyio




def _text(result: object) -> str:
    content = result.content  # type: ignore[attr-defined]
    assert isinstance(content[0], TextContent)
    return content[0].text


async def test_estimator_tools_are_listed_read_only(mcp_client: Client) -> None:
    tools = {t.name: t for t in (await mcp_client.list_tools()).tools}
    for name in ("estimate_memory", "estimate_throughput", "estimate_run"):
        tool = tools[name]
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is True and tool.annotations.open_world_hint is False
        assert tool.output_schema is not None
        assert "spec" in tool.input_schema["properties"] and "gpu" in tool.input_schema["properties"]
    spec_schema = tools["estimate_run"].input_schema["properties"]["spec"]
    assert set(spec_schema["properties"]) >= {"model", "training", "target", "overheads"}


async def test_estimate_run_structured_and_markdown(mcp_client: Client) -> None:
    data = json.loads((EXAMPLES / "llama-3-8b-full.json").read_text())
    result = await mcp_client.call_tool("estimate_run", {"spec": data, "gpu": "H100 SXM", "dph_total_usd": 19.2})
    assert result.is_error is False
    sc = result.structured_content
    assert sc is not None
    assert sc["memory"]["gpu"]["verdict"] == "pass"
    assert sc["cost_usd"]["base"] == pytest.approx(sc["time_hours"]["base"] * 19.2, abs=0.02)
    assert sc["next_step"]
    assert "| GPU memory" in _text(result)


async def test_estimate_memory_and_throughput(mcp_client: Client) -> None:
    mem = await mcp_client.call_tool("estimate_memory", {"spec": spec(), "gpu": "RTX 4090"})
    assert mem.structured_content is not None and mem.structured_content["memory"]["gpu"]["peak_gb"] > 0
    tp = await mcp_client.call_tool("estimate_throughput", {"spec": spec(), "gpu": {
        "name": "mine", "gpu_ram_gb": 24, "bf16_tflops": 100, "hbm_bw_gbps": 1000}})
    assert tp.structured_content is not None
    assert tp.structured_content["throughput"]["method"] == "cold"


@pytest.mark.parametrize(("arguments", "needle"), [
    ({"spec": spec(micro_batch=-1), "gpu": "RTX 4090"}, "spec.training.micro_batch: got -1"),
    ({"spec": spec(method="lora"), "gpu": "RTX 4090"}, "lora_rank"),
    ({"spec": spec(), "gpu": "RTX 9999"}, "gpu: got 'RTX 9999'"),
    ({"spec": {"model": {"name": "gpt2"}}, "gpu": "RTX 4090"}, "spec.training"),
    ({"spec": "not an object", "gpu": "RTX 4090"}, "spec"),
    ({"spec": spec(), "gpu": {"gpu_ram_gb": -1, "bf16_tflops": 1, "hbm_bw_gbps": 1}}, "gpu.gpu_ram_gb"),
])
async def test_bad_input_is_a_tool_error_naming_the_field(mcp_client: Client, arguments: dict[str, object],
                                                          needle: str) -> None:
    result = await mcp_client.call_tool("estimate_run", arguments)
    assert result.is_error is True
    assert needle in _text(result)
    # The server is still alive and answers the next call.
    again = await mcp_client.call_tool("estimate_memory", {"spec": spec(), "gpu": "RTX 4090"})
    assert again.is_error is False


async def test_catalogue_presets_and_spec_schema_resources(mcp_client: Client) -> None:
    read = await mcp_client.read_resource("preflight://gpus")  # the compact index: one short row per GPU
    index = json.loads(read.contents[0].text)  # type: ignore[union-attr]
    rows = [dict(zip(index["columns"], r, strict=True)) for r in index["gpus"]]
    assert any(r["name"] == "RTX 4090" and r["bf16_tflops"] < 200 for r in rows)
    models = json.loads((await mcp_client.read_resource("preflight://models")).contents[0].text)  # type: ignore[union-attr]
    assert any(m["name"] == "llama-3.1-8b" and m["params_total"] == 8_030_261_248 for m in models)
    schema = json.loads((await mcp_client.read_resource("preflight://schema/run-spec")).contents[0].text)  # type: ignore[union-attr]
    assert "micro_batch" in schema["properties"]["training"]["properties"]


@pytest.mark.skipif(shutil.which("preflight") is None, reason="console script not installed")
async def test_preflight_serve_answers_initialize_over_stdio() -> None:
    params = StdioServerParameters(command=str(shutil.which("preflight")), args=["serve"], env=dict(os.environ))
    async with Client(params, mode="legacy") as client:
        assert client.server_info is not None and client.server_info.name == "preflight"
        result = await client.call_tool("estimate_memory", {"spec": spec(), "gpu": "RTX 4090"})
        assert result.is_error is False

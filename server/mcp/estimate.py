"""MCP tools of the estimator, and the GPU catalogue resource."""

from __future__ import annotations

import json
from typing import Annotated

from mcp.server import MCPServer
from mcp.types import CallToolResult
from pydantic import BaseModel

from gpu_preflight.server._errors import resource_errors, tool_errors
from gpu_preflight.server.annotations import READ_ONLY
from gpu_preflight.server.schemas import ChecklistArg, DetailArg, FullSpecArg, GpuArg, PriceArg, SpecArg, result
from gpu_preflight.server.summaries import estimate_summary, loose_model
from gpu_preflight.tools.common.render import fmt_scenarios, table
from gpu_preflight.tools.estimator.estimate import GpuSummary, MemoryEstimate, ModelSummary, RunEstimate, estimate_run
from gpu_preflight.tools.estimator.spec import parse_spec
from gpu_preflight.tools.estimator.throughput import ThroughputEstimate


class MemoryAnswer(BaseModel):
    model: ModelSummary
    gpu: GpuSummary
    memory: MemoryEstimate
    next_step: str


EstimateRunAnswer = loose_model(RunEstimate, "EstimateRunAnswer", "estimate_run's answer: RunEstimate, whole or "
                                "summarised (see server/summaries.py).")


class ThroughputAnswer(BaseModel):
    model: ModelSummary
    gpu: GpuSummary
    throughput: ThroughputEstimate


def _attach(checklist_id: str | None, spec: dict[str, object], estimate: RunEstimate, tool: str) -> None:
    if checklist_id:
        from gpu_preflight.server.evidence_bridge import attach_estimate

        attach_estimate(checklist_id, parse_spec(spec), estimate, tool=tool)


def register(mcp: MCPServer) -> None:
    @mcp.tool(annotations=READ_ONLY)
    def estimate_memory(
        spec: SpecArg, gpu: GpuArg, checklist_id: ChecklistArg = None
    ) -> Annotated[CallToolResult, MemoryAnswer]:
        """VRAM, host RAM, disk and network fit (playbook 1.1-1.3): peak_gb, required_gb, verdict, breakdown,
        advice."""
        with tool_errors():
            e = estimate_run(spec, gpu)
            _attach(checklist_id, spec, e, "estimate_memory")
        g = e.memory.gpu
        md = table(["fit", "needed", "available", "verdict"], [
            ["GPU (refined, nvidia-smi view)", f"{g.nvml_used_gb:.1f} GB", f"{g.gpu_ram_gb:.1f} GB", g.verdict],
            ["GPU (playbook x1.2)", f"{g.required_gb:.1f} GB", f"{g.gpu_ram_gb:.1f} GB", g.verdict_playbook],
            ["CPU RAM", f"{e.memory.cpu.required_gb:.1f} GB", e.memory.cpu.cpu_ram_gb or "?", e.memory.cpu.verdict],
            ["disk", f"{e.memory.disk.required_gb:.1f} GB", e.memory.disk.disk_gb or "?", e.memory.disk.verdict],
        ])
        return result(MemoryAnswer(model=e.model, gpu=e.gpu, memory=e.memory, next_step=e.next_step), md)

    @mcp.tool(annotations=READ_ONLY)
    def estimate_throughput(spec: SpecArg, gpu: GpuArg) -> Annotated[CallToolResult, ThroughputAnswer]:
        """Predicted tokens/s (opt/base/pess): scaled from the spec's baseline, else cold (low confidence)."""
        with tool_errors():
            e = estimate_run(spec, gpu)
        tp = e.throughput
        md = (f"{tp.method} ({tp.confidence} confidence): tokens/s {fmt_scenarios(tp.tokens_per_s, digits=0)} "
              f"on {e.gpu.num_gpus}x {e.gpu.name}; playbook figure {tp.tokens_per_s_playbook:,.0f}")
        return result(ThroughputAnswer(model=e.model, gpu=e.gpu, throughput=tp), md)

    # Named estimate_run on the wire; the Python name avoids shadowing the domain function.
    @mcp.tool(name="estimate_run", annotations=READ_ONLY)
    def estimate_run_tool(
        spec: FullSpecArg, gpu: GpuArg, dph_total_usd: PriceArg = None, checklist_id: ChecklistArg = None,
        detail: DetailArg = "summary",
    ) -> Annotated[CallToolResult, EstimateRunAnswer]:
        """A spec on a GPU: memory fit, throughput, time/cost (opt/base/pess), tax, menu, 10-minute gates;
        checklist_id fills the pre-estimate."""
        from gpu_preflight.tools.estimator.render import estimate_markdown

        with tool_errors():
            e = estimate_run(spec, gpu, dph_total_usd)
            _attach(checklist_id, spec, e, "estimate_run")
        return result(estimate_summary(e, detail), estimate_markdown(e))

    @mcp.resource("preflight://schema/run-spec", mime_type="application/json")
    def run_spec_schema() -> str:
        """The run spec's full JSON schema: every field with its unit, bounds and meaning."""
        from gpu_preflight.server.schemas import full_spec_schema

        return json.dumps(full_spec_schema())

    @mcp.resource("preflight://models", mime_type="application/json")
    def model_presets() -> str:
        """Model presets (name, parameter count, shape, source) usable as spec.model.name."""
        from gpu_preflight.tools.estimator.modelshape import preset_names, resolve_model
        from gpu_preflight.tools.estimator.spec import ModelSpec

        return json.dumps([resolve_model(ModelSpec(name=n)).model_dump() for n in preset_names()])

    @mcp.resource("preflight://gpus", mime_type="application/json")
    def gpu_index() -> str:
        """Every catalogue GPU in one line: name, VRAM GB, dense bf16 TFLOPS, price class (~3 KB)."""
        from gpu_preflight.tools.estimator.catalogue import gpu_index_rows

        return json.dumps({
            "columns": ["name", "gpu_ram_gb", "bf16_tflops", "price_class"],
            "price_class": "consumer < workstation < datacenter, rental $/h rising; real prices: plan_options",
            "bf16_tflops": "dense; null: no bf16 tensor cores",
            "details": "preflight://gpus/{name}, e.g. preflight://gpus/H100_SXM",
            "gpus": gpu_index_rows(),
        }, separators=(",", ":"))

    @mcp.resource("preflight://gpus/{name}", mime_type="application/json")
    def gpu_details(name: str) -> str:
        """One GPU's catalogue row: every peak (bf16/fp16/fp8/FP32), HBM bandwidth, memory variants, source."""
        from urllib.parse import unquote

        from gpu_preflight.tools.estimator.catalogue import find_gpu

        with resource_errors():
            row = find_gpu(unquote(name).replace("_", " "), "name")
        return json.dumps(row.model_dump(exclude_none=True))

    @mcp.resource("preflight://agents.md", mime_type="text/markdown")
    def agents_guide() -> str:
        """How to use these tools (agents.md): the order of calls for each policy, what each verdict means,
        what never to do. Read once per session."""
        from importlib import resources

        return resources.files("gpu_preflight.server").joinpath("agents.md").read_text(encoding="utf-8")

"""Argument schemas and result helpers shared by the MCP tool modules.

Why ``spec`` is declared as a plain object carrying the ``RunSpec`` JSON schema, not as the model:
the agent still sees the full schema (keys, enums, units), but validation runs in our code, so a
bad spec gets the same one-line error as the CLI (``spec.training.micro_batch: got -1; allowed:
...``) instead of pydantic's multi-line report.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, Field, WithJsonSchema

from gpu_preflight.tools.catalogue import GpuSpec
from gpu_preflight.tools.spec import RunSpec


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with every ``$ref`` replaced by its definition (no ``$defs``)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                target = copy.deepcopy(defs[ref.rsplit("/", 1)[1]])
                merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
                return resolve(merged)
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


SPEC_SCHEMA = inline_schema(RunSpec)
GPU_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "description": 'Catalogue name as Vast spells it, e.g. "H100 SXM", "RTX 4090".'},
        inline_schema(GpuSpec),
    ]
}

SpecArg = Annotated[
    dict[str, Any],
    WithJsonSchema(SPEC_SCHEMA),
    Field(description="The run spec: model, training, target, overheads (same as the spec file format)."),
]
GpuArg = Annotated[
    str | dict[str, Any],
    WithJsonSchema(GPU_SCHEMA),
    Field(description='A catalogue GPU name ("H100 SXM") or an object with gpu_ram_gb, bf16_tflops, hbm_bw_gbps.'),
]
PriceArg = Annotated[
    float | None, Field(default=None, description="Price per hour of the whole machine (Vast dph_total), USD.")
]
ChecklistArg = Annotated[
    str | None, Field(default=None, max_length=64, description="Attach the result as evidence to this checklist.")
]


def result(structured: BaseModel, markdown: str) -> CallToolResult:
    """Structured content (what Claude Code and Codex show the model) plus a short markdown text."""
    return CallToolResult(
        content=[TextContent(type="text", text=markdown)],
        structured_content=structured.model_dump(mode="json"),
    )

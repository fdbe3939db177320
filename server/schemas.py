"""Argument schemas and result helpers shared by the MCP tool modules.

Why ``spec`` is declared as a plain object carrying the ``RunSpec`` JSON schema, not as the model:
the agent still sees the full schema (keys, enums, units), but validation runs in our code, so a
bad spec gets the same one-line error as the CLI (``spec.training.micro_batch: got -1; allowed:
...``) instead of pydantic's multi-line report.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Annotated, Any, Literal

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, Field, WithJsonSchema

from gpu_preflight.tools.estimator.spec import RunSpec


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with every ``$ref`` replaced by its definition (no ``$defs``)."""
    return inline_refs(model.model_json_schema())


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace local ``#/$defs/...`` references by their definitions (our models are not recursive)."""
    schema = dict(schema)
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


_BOUNDS = {"maxLength", "minLength", "maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum", "pattern"}


def compact_schema(node: Any, *, keep_descriptions: bool = True, keep_bounds: bool = True) -> Any:
    """Drop what an agent does not need from a JSON schema: titles, null defaults, ``anyOf`` with null.

    ``tools/list`` is read by the model on every session; pydantic's schemas repeat a title for every
    property and spell optional as ``anyOf: [X, null]``. Property *names* called ``title`` are kept.
    """
    if isinstance(node, list):
        return [compact_schema(v, keep_descriptions=keep_descriptions, keep_bounds=keep_bounds) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in _BOUNDS and not keep_bounds and not isinstance(value, dict):
            continue
        if key == "default" and value is None:
            continue
        if key == "description" and not keep_descriptions:
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {k: compact_schema(v, keep_descriptions=keep_descriptions, keep_bounds=keep_bounds)
                        for k, v in value.items()}
            continue
        out[key] = compact_schema(value, keep_descriptions=keep_descriptions, keep_bounds=keep_bounds)
    options = out.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        other = next(o for o in options if o != {"type": "null"})
        if isinstance(other, dict) and isinstance(other.get("type"), str) and len(other) <= 4:
            del out["anyOf"]
            out.update({**other, "type": [other["type"], "null"]})
            if isinstance(other.get("enum"), list):
                out["enum"] = [*other["enum"], None]  # an enum of the type must still admit the null
    return out


_SKELETON_KEYS = {"type", "enum", "properties", "required", "items", "anyOf", "const", "additionalProperties",
                  "$ref", "$defs"}


def skeleton_schema(node: Any, *, output: bool = False) -> Any:
    """Only the shape: types, enums, properties, required. Bounds and defaults are enforced by the
    server, which answers a bad value with the field, what was sent and what is allowed. For output
    schemas ``required`` goes too: every field of a result is always present."""
    if isinstance(node, list):
        return [skeleton_schema(v, output=output) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in compact_schema(node, keep_descriptions=False).items():
        if key in ("properties", "$defs") and isinstance(value, dict):
            out[key] = {k: skeleton_schema(v, output=output) for k, v in value.items()}
        elif key in _SKELETON_KEYS and not (output and key == "required"):
            out[key] = skeleton_schema(value, output=output)
    return out


def pruned(node: Any, depth: int) -> Any:
    """Nested objects below ``depth`` levels become ``{"type": "object"}`` (arrays keep their item type)."""
    if not isinstance(node, dict):
        return node
    if depth <= 0 and "properties" in node:
        return {"type": node.get("type", "object")}  # keeps ["object", "null"] for optional objects
    out = dict(node)
    if "properties" in out:
        out["properties"] = {k: pruned(v, depth - 1) for k, v in out["properties"].items()}
    if "items" in out:
        out["items"] = pruned(out["items"], depth)
    if "anyOf" in out:
        out["anyOf"] = [pruned(v, depth) for v in out["anyOf"]]
    return out


OUTPUT_ENUM_MAX = 8
"""A longer enum in a *result* (the 18 log formats) is published as its type: a caller reads the value, it never
sends one, and the list cost ~300 bytes of every session's tools/list."""


def _lean(node: Any) -> Any:
    """Drop what says nothing in an output schema: ``additionalProperties: true`` (JSON Schema's default) and
    enums longer than :data:`OUTPUT_ENUM_MAX`."""
    if isinstance(node, list):
        return [_lean(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _lean(v) for k, v in node.items() if not (k == "additionalProperties" and v is True)}
    if isinstance(out.get("enum"), list) and len(out["enum"]) > OUTPUT_ENUM_MAX and "type" in out:
        del out["enum"]
    if "properties" in node:  # a property may be called "enum" or "additionalProperties": keep its schema
        out["properties"] = {k: _lean(v) for k, v in node["properties"].items()}
    return out


def output_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """What ``tools/list`` publishes for a result: its top-level fields and their types (names carry units)."""
    result: dict[str, Any] = _lean(nullable_unlisted(pruned(skeleton_schema(inline_refs(schema), output=True), 1)))
    return result


def _is_null(node: Any) -> bool:
    return isinstance(node, dict) and node.get("type") == "null" and len(node) == 1


def nullable_unlisted(node: Any) -> Any:
    """A result schema without its nullable fields (an unlisted field may hold any value, null included).

    Why: a type array (``"type": ["number", "null"]``) is legal JSON Schema, but clients that map schemas
    onto a single-``type`` dialect (the OpenAPI subset Gemini reads) reject it, and the MCP Inspector's
    ``--strict`` warned on each of 60 in our results; it warns too on ``{}`` (a schema that constrains
    nothing). The spelling it accepts, ``anyOf: [{"type": X}, {"type": "null"}]``, costs 44 bytes a field:
    3.5 KB of every session's ``tools/list`` and past its 24 KB budget. Left out, such a field is still
    allowed (``additionalProperties: false`` is dropped where a field was left out), the server still
    validates every result against its model, and the listed fields keep their types.

    >>> nullable_unlisted({"properties": {"eta_s": {"type": ["number", "null"]}, "state": {"type": "string"}}})
    {'properties': {'state': {'type': 'string'}}}
    """
    if isinstance(node, list):
        return [nullable_unlisted(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {n: nullable_unlisted(v) for n, v in value.items() if not _nullable(v)}
        else:
            out[key] = nullable_unlisted(value)
    if out.get("additionalProperties") is False and out.get("properties") != node.get("properties"):
        del out["additionalProperties"]  # a field left out must still be allowed
    return out


def _nullable(node: Any) -> bool:
    if not isinstance(node, dict):
        return False
    types, options = node.get("type"), node.get("anyOf")
    return (isinstance(types, list) and "null" in types) or (
        isinstance(options, list) and any(_is_null(o) for o in options))


def optional_without_null(node: Any) -> Any:
    """An argument schema with every null branch dropped: optional means "leave it out" (argument schemas).

    Why: OpenAPI-style clients (Gemini) refuse ``"type": [X, "null"]``; an optional argument is simply
    not ``required``. The argument models still accept an explicit null, so no caller breaks.

    >>> optional_without_null({"anyOf": [{"type": "object"}, {"type": "null"}]})
    {'type': 'object'}
    >>> optional_without_null({"type": ["number", "null"]})
    {'type': 'number'}
    """
    if isinstance(node, list):
        return [optional_without_null(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: optional_without_null(v) if k != "properties" else {n: optional_without_null(s) for n, s in v.items()}
           for k, v in node.items()}
    types = out.get("type")
    if isinstance(types, list) and "null" in types:
        rest = [t for t in types if t != "null"]
        out["type"] = rest[0] if len(rest) == 1 else rest
    if isinstance(out.get("enum"), list):
        out["enum"] = [e for e in out["enum"] if e is not None]
    options = out.get("anyOf")
    if isinstance(options, list) and any(_is_null(o) for o in options):
        kept = [o for o in options if not _is_null(o)]
        del out["anyOf"]
        if len(kept) == 1 and isinstance(kept[0], dict):
            out = {**kept[0], **out}
        else:
            out["anyOf"] = kept
    return out


def default_in_description(properties: dict[str, Any]) -> None:
    """Move each argument's non-null ``default`` into its description ("Default 20."), in place.

    Why: Codex drops ``default`` from the schemas it hands the model (10 arguments lost theirs: ``limit``
    20, ``rank`` "cost"), so a model never learned what leaving an argument out does. The text reaches
    every client; the keyword would cost the same bytes again.
    """
    for prop in properties.values():
        if not isinstance(prop, dict) or "default" not in prop:
            continue
        value = prop.pop("default")
        if value is None:
            continue
        shown = f"{value:g}" if isinstance(value, float) else value if isinstance(value, str) else json.dumps(value)
        text = str(prop.get("description", "")).rstrip()
        prop["description"] = f"{text}{' ' if text else ''}Default {shown}."


SPEC_FIELDS = (  # every field is in the resource; this names only what a first spec needs
    "model (preset|hf_config|params_total+shape), training (method, precision, seq_len, "
    "micro_batch, grad_accum, num_gpus...), target (target_tokens|target_steps|epochs+dataset_tokens). "
    "All: preflight://schema/run-spec."
)
SPEC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["model", "training", "target"],
    "properties": {k: {"type": "object"} for k in ("model", "training", "target", "overheads", "baseline")},
}


@functools.cache
def full_spec_schema() -> dict[str, Any]:
    """The whole run-spec schema (the ``preflight://schema/run-spec`` resource), built on first read: it
    costs ~10 ms that ``preflight serve`` should not spend before answering ``initialize``."""
    schema: dict[str, Any] = compact_schema(inline_schema(RunSpec))
    return schema


GPU_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string"},
        {"type": "object", "required": ["gpu_ram_gb", "bf16_tflops", "hbm_bw_gbps"],
         "properties": {k: {"type": "number"} for k in ("gpu_ram_gb", "bf16_tflops", "hbm_bw_gbps", "cpu_ram_gb")}},
    ]
}

SpecArg = Annotated[
    dict[str, Any],
    WithJsonSchema(SPEC_SCHEMA),
    Field(description="As in estimate_run."),
]
FullSpecArg = Annotated[dict[str, Any], WithJsonSchema(SPEC_SCHEMA), Field(description=SPEC_FIELDS)]
"""The one place the field list is spelled out in ``tools/list`` (on estimate_run), to keep it small."""
GpuArg = Annotated[
    str | dict[str, Any],
    WithJsonSchema(GPU_SCHEMA),
    Field(description='preflight://gpus name, or {gpu_ram_gb, bf16_tflops, hbm_bw_gbps}.'),
]
PriceArg = Annotated[
    float | None, Field(default=None, description="Machine $/h (dph_total).")
]
ChecklistArg = Annotated[
    str | None, Field(default=None, max_length=64, description="Checklist to attach to.")
]


def result(structured: BaseModel | dict[str, Any], markdown: str) -> CallToolResult:
    """Structured content (what Claude Code and Codex show the model) plus a short markdown text."""
    data = structured.model_dump(mode="json") if isinstance(structured, BaseModel) else structured
    return CallToolResult(content=[TextContent(type="text", text=markdown)], structured_content=data)


DetailArg = Annotated[
    Literal["summary", "full"], Field(description="full: every breakdown too.")
]

"""Output schemas come from a checked file, and that file matches what the SDK would derive.

Why: ``server/outschemas.py`` skips the SDK's per-start derivation of every output schema (about
60 ms of ``preflight serve``'s cold start). These tests keep that from costing correctness: the file
must match the models, a stale entry must fall back to deriving, and every tool must still validate
its results against its model.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from gpu_preflight.server import outschemas
from gpu_preflight.server.app import create_server

REGENERATE = "stale: run `python -m gpu_preflight.server.outschemas` and commit server/output_schemas.json"


# run_plot answers with an image and a JSON text, never structuredContent: Codex 0.171 drops the image of
# a result that has one (measured; see tests/test_mcp_run_plot.py), so it publishes no output schema.
UNSTRUCTURED = {"run_plot"}


def _tools() -> list[Any]:
    return [t for t in create_server()._tool_manager.list_tools() if t.name not in UNSTRUCTURED]


def test_the_stored_schemas_match_the_models() -> None:
    stored = outschemas.snapshot()
    tools = _tools()
    assert sorted(stored) == sorted(t.name for t in tools), REGENERATE
    for t in tools:
        model = t.fn_metadata.output_model
        assert isinstance(model, type) and issubclass(model, BaseModel)
        assert stored[t.name]["fingerprint"] == outschemas.fingerprint(model), f"{t.name}: {REGENERATE}"
        assert stored[t.name]["schema"] == outschemas.derived_schema(t.fn_metadata.arg_model, model), (
            f"{t.name}: {REGENERATE}")


def test_every_tool_publishes_and_validates_against_its_model() -> None:
    for t in _tools():
        assert t.output_schema is not None and t.output_schema["type"] == "object", t.name
        assert t.fn_metadata.output_model is not None  # the SDK validates structured results with it
        assert t.output_schema == outschemas.snapshot()[t.name]["schema"]


def test_a_stale_entry_falls_back_to_deriving(monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = {t.name: t.output_schema for t in _tools()}
    stale = {name: {**entry, "fingerprint": "0" * 16, "schema": {"type": "object", "properties": {}}}
             for name, entry in outschemas.snapshot().items()}
    monkeypatch.setattr(outschemas, "snapshot", lambda: stale)
    assert {t.name: t.output_schema for t in _tools()} == fresh


def test_the_fingerprint_sees_a_nested_field_change() -> None:
    class Inner(BaseModel):
        x: int

    class Outer(BaseModel):
        items: list[Inner]

    before = outschemas.fingerprint(Outer)

    class Inner2(BaseModel):
        x: str

    class Outer2(BaseModel):
        items: list[Inner2]

    Outer2.__qualname__, Inner2.__qualname__ = Outer.__qualname__, Inner.__qualname__
    assert outschemas.fingerprint(Outer2) != before

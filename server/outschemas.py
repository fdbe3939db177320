"""Published output schemas, read from a checked file instead of derived on every start.

Why: the SDK derives each tool's full output JSON schema when the tool is registered (about 60 ms
for our 20 tools, a sixth of what we add to ``preflight serve``'s cold start), and ``tools/list``
then publishes only the top level of it (:func:`gpu_preflight.server.schemas.output_schema`). The
pruned schemas are kept in ``output_schemas.json`` with a fingerprint of each output model's field
tree. When the fingerprint matches, the stored schema is published and the model itself still
validates every result (the SDK reads ``output_model`` at call time). When it does not (a model
changed and the file was not regenerated), the schema is derived exactly as before: a stale file
costs start-up time, never correctness, and ``tests/test_outschemas.py`` fails until it is
regenerated with ``python -m gpu_preflight.server.outschemas``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import sys
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata
from mcp.types import CallToolResult
from pydantic import BaseModel

from gpu_preflight.server.schemas import output_schema

SNAPSHOT_NAME = "output_schemas.json"
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")


def output_model_of(fn: Callable[..., Any]) -> type[BaseModel] | None:
    """``Model`` from a tool's ``-> Annotated[CallToolResult, Model]`` return annotation, else None."""
    ret = typing.get_type_hints(fn, include_extras=True).get("return")
    if typing.get_origin(ret) is not typing.Annotated:
        return None
    base, *meta = typing.get_args(ret)
    if base is CallToolResult and meta and isinstance(meta[0], type) and issubclass(meta[0], BaseModel):
        return meta[0]
    return None


def fingerprint(model: type[BaseModel]) -> str:
    """A hash of every field name and annotation in the model's tree (nested models included).

    >>> class Inner(BaseModel):
    ...     x: int
    >>> class Outer(BaseModel):
    ...     inner: Inner | None = None
    >>> len(fingerprint(Outer)), fingerprint(Outer) == fingerprint(Outer)
    (16, True)
    """
    lines: list[str] = []
    seen: set[type[BaseModel]] = set()

    def walk(m: type[BaseModel]) -> None:
        if m in seen:
            return
        seen.add(m)
        for name, field in m.model_fields.items():
            text = f"{m.__module__}.{m.__qualname__}.{name}: {field.annotation!r} {field.metadata!r}"
            lines.append(_ADDRESS.sub("0x", text))  # a function in metadata reprs with its address
            for nested in _models_in(field.annotation):
                walk(nested)

    walk(model)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def derived_schema(arg_model: Any, model: type[BaseModel]) -> dict[str, Any]:
    """What the SDK would publish for ``model``, pruned as ``tools/list`` publishes it (the slow path)."""
    full = FuncMetadata(arg_model=arg_model, output_model=model).output_schema
    assert full is not None  # the SDK derives one for every pydantic model, or raises
    return output_schema(full)


@functools.cache
def snapshot() -> dict[str, Any]:
    try:
        text = resources.files("gpu_preflight.server").joinpath(SNAPSHOT_NAME).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return {}
    data: dict[str, Any] = json.loads(text)
    return data


@contextmanager
def deferred_output_schemas(mcp: MCPServer) -> Iterator[None]:
    """Inside: tools register without the SDK deriving output schemas. On exit: each gets its model
    back, with the stored schema when its fingerprint matches, else the derived one."""
    original = mcp.tool
    models: dict[str, type[BaseModel]] = {}

    def tool(name: str | None = None, **kwargs: Any) -> Callable[[Any], Any]:
        def decorator(fn: Any) -> Any:
            model = output_model_of(fn)
            if model is not None:
                models[name or fn.__name__] = model
                kwargs["structured_output"] = False
            original(name=name, **kwargs)(fn)
            return fn

        return decorator

    # Shadow the bound method for this block only (the instance attribute is deleted below).
    mcp.tool = tool  # type: ignore[method-assign,assignment]  # a looser signature that forwards every argument
    try:
        yield
    finally:
        del mcp.tool
    stored = snapshot()
    for t in mcp._tool_manager.list_tools():  # the SDK offers no public way to reach a registered tool's metadata
        model = models.get(t.name)
        if model is None:
            continue
        entry = stored.get(t.name, {})
        fresh = entry.get("fingerprint") == fingerprint(model)
        schema = entry["schema"] if fresh else derived_schema(t.fn_metadata.arg_model, model)
        t.fn_metadata.output_model = model
        t.fn_metadata.output_schema = schema
        t.__dict__.pop("output_schema", None)  # Tool caches the schema it read at registration


def build_snapshot() -> dict[str, Any]:
    """Every tool's fingerprint and derived, pruned schema (what the file should hold)."""
    from gpu_preflight.server.app import create_server

    out: dict[str, Any] = {}
    for t in create_server()._tool_manager.list_tools():
        model = t.fn_metadata.output_model
        if isinstance(model, type) and issubclass(model, BaseModel):
            out[t.name] = {"model": model.__name__, "fingerprint": fingerprint(model),
                           "schema": derived_schema(t.fn_metadata.arg_model, model)}
    return out


def main() -> int:
    path = Path(__file__).with_name(SNAPSHOT_NAME)
    path.write_text(json.dumps(build_snapshot(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

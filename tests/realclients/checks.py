"""What every real-client test asserts about what a model receives, in one place.

* Size: issue 20's goal is every tool result on the README's example specs at most 2.5 KB *as the client
  forwards it*. Claude Code and Codex forward the structured content as compact JSON and drop the text
  block, so the size is that JSON's UTF-8 bytes (``compact_bytes`` for the Inspector's parsed
  ``structuredContent``; the forwarded text itself for an agent).
* Errors: a refusal must name its next step in the caller's interface. Through MCP that is a tool or a
  resource that exists; a CLI command (``preflight gpus``) or a Python function (``list_runs``) is a
  dead end for a model. ``dead_references`` lists each such name in an error text.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_SPEC = REPO / "examples" / "llama-3.2-1b-lora.toml"
RESULT_LIMIT_BYTES = 2500
INSTRUCTIONS_LIMIT_BYTES = 1024
GPU_INDEX_LIMIT_BYTES = 4096

_CLI = re.compile(r"`?\bpreflight (?!serve\b)[a-z][a-z-]*")
"""A ``preflight <subcommand>`` command line (the CLI, not the MCP interface)."""
_POINTER = re.compile(r"\b(?:see|call|try|via|run)\s+`?([a-z][a-z0-9]*(?:_[a-z0-9]+)+)`?(?:\(|\b)")
"""A snake_case name offered as the next call: ``see list_runs``, ``call heartbeat_all(...)``."""
_URI = re.compile(r"preflight://[\w./{}-]+")


def example_spec() -> dict[str, Any]:
    """The README's first example spec (examples/llama-3.2-1b-lora.toml) as the JSON object a model sends."""
    return tomllib.loads(EXAMPLE_SPEC.read_text())


def compact_bytes(value: Any) -> int:
    """Bytes of ``value`` as compact JSON, non-ASCII kept (how Codex and Claude Code forward it)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def _uri_matches(uri: str, resources: Iterable[str]) -> bool:
    for known in resources:
        pattern = "^" + re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(known)) + "$"
        if re.match(pattern, uri.rstrip(".`")) or uri.rstrip(".`") == known:
            return True
    return False


def dead_references(text: str, tools: Iterable[str], resources: Iterable[str]) -> list[str]:
    """Names in an MCP error ``text`` that a model cannot call: CLI commands, pointed-to snake_case names
    that are no tool, ``preflight://`` URIs that match no resource or template."""
    tools, resources = set(tools), list(resources)
    dead = [m.group(0).strip("`") for m in _CLI.finditer(text)]
    dead += [name for name in _POINTER.findall(text) if name not in tools]
    dead += [uri for uri in _URI.findall(text) if not _uri_matches(uri, resources)]
    return dead


def live_references(text: str, tools: Iterable[str], resources: Iterable[str], called: str) -> list[str]:
    """The tools (other than ``called`` itself) and resources an error ``text`` names."""
    words = set(re.findall(r"[a-z][a-z0-9_]*", text))
    named = sorted(t for t in set(tools) - {called} if t in words)
    return named + [uri for uri in _URI.findall(text) if _uri_matches(uri, list(resources))]


def first_json(text: str) -> tuple[Any, str] | None:
    """The first JSON object in ``text`` and its exact source text (agents wrap the forwarded JSON:
    Codex 0.171 sends ``Wall time: 0.02 seconds\\nOutput:\\n{...}``); None if there is none."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        value, end = json.JSONDecoder().raw_decode(text, start)
    except ValueError:
        return None
    return value, text[start:end]


def plan_pick(plan: dict[str, Any]) -> tuple[str, float]:
    """(GPU name, $/h) of the first (best) fitting row of a ``plan_options`` answer, as agents.md says:
    the row's ``gpu_option`` reads ``"1x RTX 4090"``."""
    for row in plan.get("rows", []):
        if isinstance(row, dict) and row.get("gpu_option") and row.get("dph_total_usd") is not None:
            return str(row["gpu_option"]).split("x ", 1)[-1], float(row["dph_total_usd"])
    raise AssertionError(f"plan_options gave no row with gpu_option and dph_total_usd: {sorted(plan)}")

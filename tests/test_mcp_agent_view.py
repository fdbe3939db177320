"""What a model sees over MCP (issue 20): result sizes, refusals that name real calls, GPU names as printed,
discovery (instructions, agents.md, the GPU index), and argument schemas every client accepts.

The real clients (MCP Inspector, agent CLIs) are driven in tests/test_realclients_*.py; here the SDK's
``Client`` gives the same structured content in process, fast enough to walk every README example.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from helpers_agent_view import EXAMPLES, RESULT_GOAL_BYTES, example_flow, forwarded_bytes, load_example
from mcp import Client

from gpu_preflight.server.app import INSTRUCTIONS, create_server
from gpu_preflight.server.cli import build_parser, main
from gpu_preflight.server.nextsteps import CLI, MCP
from gpu_preflight.tools.common.nextstep import STEPS
from gpu_preflight.tools.estimator.catalogue import gpu_candidates, resolve_gpu

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "fixtures"
TOOLS_LIST_LIMIT_BYTES = 24_000


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with Client(create_server(), mode="legacy") as c:  # the handshake Claude Code and Codex use
        yield c


async def _catalogue(client: Client) -> tuple[set[str], list[str]]:
    tools = {t.name for t in (await client.list_tools()).tools}
    resources = [str(r.uri) for r in (await client.list_resources()).resources]
    resources += [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
    return tools, resources


def _text(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


# ---------------------------------------------------------------- result sizes


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
async def test_every_result_on_the_readme_examples_fits_2_5_kb(client: Client, path: Path) -> None:
    results = await example_flow(client, path)
    sizes = {tool: forwarded_bytes(r) for tool, r in results.items()}
    assert {"checklist_start", "plan_options", "estimate_run", "checklist_report"} <= set(sizes)
    over = {tool: size for tool, size in sizes.items() if size > RESULT_GOAL_BYTES}
    assert not over, f"{path.name}: over {RESULT_GOAL_BYTES} B: {over} (all: {sizes})"


async def test_the_summary_keeps_the_decision_numbers_of_the_full_answer(client: Client) -> None:
    spec = load_example(ROOT / "examples" / "llama-3-8b-full.json")
    args = {"spec": spec, "gpu": "H100 SXM", "dph_total_usd": 19.2}  # the README's estimate line
    summary = (await client.call_tool("estimate_run", args)).structured_content
    full = (await client.call_tool("estimate_run", {**args, "detail": "full"})).structured_content
    assert summary is not None and full is not None
    assert summary["detail"] == "summary" and full["detail"] == "full" and "detail=" in summary["more"]
    for key in ("verdict", "peak_gb", "nvml_used_gb", "required_gb", "gpu_ram_gb"):
        assert summary["memory"]["gpu"][key] == full["memory"]["gpu"][key], key
    for key in ("time_hours", "cost_usd", "setup_debug_tax", "next_step"):
        assert summary[key] == full[key], key
    assert summary["throughput"]["tokens_per_s"] == full["throughput"]["tokens_per_s"]
    assert summary["validation_gates"]["min_tokens_per_s"] == full["validation_gates"]["min_tokens_per_s"]
    # The breakdowns live in the full answer only; the summary lists just the optimizations that apply.
    assert "breakdown" in full["memory"]["gpu"] and "breakdown" not in summary["memory"]["gpu"]
    assert "formula_paths" in full and "formula_paths" not in summary
    applicable = [o["key"] for o in full["optimizations"] if o["applicable"]]
    assert [o["key"] for o in summary["optimizations"]] == applicable
    assert len(applicable) < len(full["optimizations"])
    assert len(json.dumps(full)) > 2 * len(json.dumps(summary))


async def test_checklist_start_summary_still_says_what_to_record(client: Client) -> None:
    spec = load_example(EXAMPLES[0])
    answer = await client.call_tool("checklist_start", {"run_name": "r", "policy": "pre-estimate", "spec": spec})
    full = await client.call_tool("checklist_start", {"run_name": "r", "policy": "pre-estimate", "spec": spec,
                                                      "detail": "full"})
    short, long = answer.structured_content, full.structured_content
    assert short is not None and long is not None and short["id"].startswith("ck-")
    for brief, whole in zip(short["items"], long["items"], strict=True):
        assert brief["required_fields"] == whole["required_fields"] and brief["supplied_by"] == whole["supplied_by"]
        assert "passes_when" not in brief and whole["passes_when"]
    assert short["gates"]["probe"]["probe_max_steps"] == long["gates"]["probe"]["probe_max_steps"] > 0
    assert short["gates"]["full"]["requires"] == long["gates"]["full"]["requires"]


# ---------------------------------------------------------------- next steps in the caller's interface

_CLI_COMMAND = re.compile(r"preflight ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?((?: --?[a-z][a-z-]*| [A-Z]+)*)")
_URI = re.compile(r"preflight://[\w./{}-]+")
_POINTER = re.compile(r"\b(?:see|call|with|run|use|via|try)\s+`?([a-z][a-z0-9]*(?:_[a-z0-9]+)+)")


def _uri_known(uri: str, resources: list[str]) -> bool:
    uri = uri.rstrip(".`),")
    return any(re.fullmatch(re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(r)), uri) for r in resources)


def _python_functions() -> set[str]:
    """Public snake_case function names of our package: a model cannot call them (``list_runs``)."""
    names = set()
    for folder in ("tools", "checklist", "server"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and "_" in node.name.strip("_"):
                    names.add(node.name)
    return names


def _subcommands() -> set[str]:
    return set(next(a for a in build_parser()._actions if a.dest == "command").choices)  # type: ignore[arg-type]


def _mcp_dead_names(text: str, tools: set[str], resources: list[str]) -> list[str]:
    """CLI commands, Python functions offered as a call, calls and URIs that no tool or resource answers."""
    functions = _python_functions() - tools
    dead = [m.group(0) for m in _CLI_COMMAND.finditer(text) if m.group(1) in _subcommands()]
    dead += [name for name in _POINTER.findall(text) if name in functions]
    dead += [name for name in re.findall(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?=\()", text) if name not in tools]
    dead += [u for u in _URI.findall(text) if not _uri_known(u, resources)]
    return dead


def _cli_dead_names(text: str, mcp_only: set[str]) -> list[str]:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    dead = [w for w in re.findall(r"[a-z][a-z0-9_]*", text) if w in mcp_only]
    for m in _CLI_COMMAND.finditer(text):
        sub = commands.choices.get(m.group(1))  # type: ignore[attr-defined]
        if sub is None:
            dead.append(m.group(0))
            continue
        words = [m.group(2)] if m.group(2) else []
        nested = [a for a in sub._actions if hasattr(a, "choices") and isinstance(a.choices, dict)]
        if nested and words and words[0] not in nested[0].choices:
            dead.append(m.group(0))
        options = {o for a in sub._actions for o in a.option_strings}
        dead += [flag for flag in re.findall(r"--[a-z-]+", m.group(3) or "") if flag not in options]
    return dead


async def test_every_mcp_next_step_names_a_tool_or_resource_that_exists(client: Client) -> None:
    tools, resources = await _catalogue(client)
    assert set(MCP) == set(STEPS) == set(CLI)
    for step, text in MCP.items():
        named = [w for w in re.findall(r"[a-z][a-z0-9_]*", text) if w in tools] + _URI.findall(text)
        assert named or step in ("gpu_with_host_ram", "override"), f"{step}: {text!r} names no tool or resource"
        assert not _mcp_dead_names(text, tools, resources), (step, text)


async def test_every_cli_next_step_is_a_real_subcommand(client: Client) -> None:
    tools, _ = await _catalogue(client)
    mcp_only = {t for t in tools if "_" in t}
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices  # type: ignore[union-attr]
    flags = {o for sub in commands.values() for a in sub._actions for o in a.option_strings}
    for step, text in CLI.items():
        if step in ("gpu_with_host_ram", "override"):  # an option of a command, not a command
            assert re.findall(r"--[a-z-]+", text) and set(re.findall(r"--[a-z-]+", text)) <= flags, (step, text)
            continue
        assert _CLI_COMMAND.search(text), f"{step}: {text!r} names no command"
        assert not _cli_dead_names(text, mcp_only), (step, text)


_BAD_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("run_check", {"run_id": "no-such-run"}),
    ("heartbeat", {"run_id": "r000000000000"}),
    ("estimate_run", {"spec": "EXAMPLE", "gpu": "Z9000"}),
    ("estimate_run", {"spec": "EXAMPLE", "gpu": "A100"}),
    ("estimate_run", {"spec": {"model": {"name": "no-such-model"}, "training": {}, "target": {"target_steps": 1}},
                      "gpu": "RTX 4090"}),
    ("checklist_status", {"checklist_id": "ck-000000000000"}),
    ("checklist_record", {"checklist_id": "ck-000000000000", "item": "memory_fit", "evidence": {}}),
]


async def test_refusals_and_next_steps_through_mcp_name_only_real_calls(client: Client) -> None:
    tools, resources = await _catalogue(client)
    spec = load_example(EXAMPLES[0])
    texts = []
    for tool, arguments in _BAD_CALLS:
        arguments = {k: spec if v == "EXAMPLE" else v for k, v in arguments.items()}
        refused = await client.call_tool(tool, arguments)
        assert refused.is_error, (tool, arguments)
        texts.append(_text(refused))
    started = (await client.call_tool("checklist_start", {"run_name": "r", "policy": "pre-estimate",
                                                          "spec": spec})).structured_content
    assert started is not None
    status = (await client.call_tool("checklist_status", {"checklist_id": started["id"]})).structured_content
    assert status is not None
    texts += [status["next_step"], *(i["reason"] for i in status["items"])]
    gate = await client.call_tool("gate_check", {"checklist_id": started["id"], "kind": "full"})
    texts.append(_text(gate))
    gpus = [t for t in texts if "Z9000" in t]
    assert gpus and "preflight://gpus" in gpus[0], gpus  # the example: it said `preflight gpus`
    assert any("heartbeat_all" in t for t in texts), texts  # and "see list_runs"
    dead = {t: _mcp_dead_names(t, tools, resources) for t in texts}
    assert not any(dead.values()), {t: d for t, d in dead.items() if d}


def _cli(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue() + err.getvalue()


async def test_refusals_through_the_cli_name_only_real_commands(client: Client) -> None:
    tools, _ = await _catalogue(client)
    mcp_only = {t for t in tools if "_" in t}
    spec = EXAMPLES[0]
    said = [
        _cli("heartbeat"),  # issue 20: "heartbeat: got None"
        _cli("heartbeat", "r000000000000"),
        _cli("estimate", str(spec), "--gpu", "Z9000"),
        _cli("estimate", str(spec), "--gpu", "A100"),
        _cli("checklist", "status", "ck-000000000000"),
    ]
    code, started = _cli("checklist", "start", "--name", "r", "--policy", "pre-estimate", "--spec", str(spec), "--json")
    assert code == 0, started
    checklist_id = json.loads(started)["id"]
    said += [_cli("checklist", "status", checklist_id), _cli("checklist", "gate", checklist_id, "--kind", "full")]
    texts = [text for _, text in said]
    assert "got None" not in texts[0] and "--runs" in texts[0], texts[0]
    assert "`preflight heartbeat --runs`" in texts[1], texts[1]
    assert "`preflight gpus`" in texts[2] and "A100 SXM4" in texts[3] and "A100 PCIE" in texts[3]
    assert "`preflight estimate`" in texts[-2], texts[-2]  # supplied by estimate_memory/estimate_run
    dead = {t: _cli_dead_names(t, mcp_only) for t in texts}
    assert not any(dead.values()), {t: d for t, d in dead.items() if d}
    assert _cli("heartbeat", "--runs")[0] == 0  # --runs alone lists the recorded runs


def _string_literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    docs |= {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


async def test_domain_text_names_calls_only_through_the_step_vocabulary(client: Client) -> None:
    """tools/ and checklist/ serve both doors: a CLI command or a tool offered as the next call in their text
    would be wrong for one of them. They write ``call("step")`` instead (tools/common/nextstep.py)."""
    tools, _ = await _catalogue(client)
    subcommands = _subcommands()
    pointed = tools | _python_functions()
    found = []
    for folder in ("tools", "checklist"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for line, text in _string_literals(path):
                commands = [m.group(0) for m in _CLI_COMMAND.finditer(text) if m.group(1) in subcommands]
                pointers = [n for n in _POINTER.findall(text) if n in pointed]
                if commands or pointers:
                    found.append(f"{path.relative_to(ROOT)}:{line}: {commands + pointers}")
    assert not found, found


# ---------------------------------------------------------------- GPU names as people and tools print them

# Our own lines, in the formats nvidia-smi --query-gpu=name, Vast's gpu_name and people print.
NAMES = {
    "NVIDIA A100-SXM4-80GB": ("A100 SXM4", 80), "NVIDIA A100 80GB PCIe": ("A100 PCIE", 80),
    "NVIDIA GeForce RTX 4090": ("RTX 4090", 24), "NVIDIA H100 80GB HBM3": ("H100 SXM", 80),
    "NVIDIA H100 NVL": ("H100 NVL", 94), "Tesla V100-SXM2-32GB": ("Tesla V100", 32),
    "RTX 4090": ("RTX 4090", 24), "A100 SXM4": ("A100 SXM4", 80), "H100 NVL": ("H100 NVL", 94),
    "RTX 6000Ada": ("RTX 6000Ada", 48), "A100 80GB": ("A100 SXM4", 80), "A100 40GB": ("A100 SXM4", 40),
    "H100 SXM": ("H100 SXM", 80), "h100-sxm5-80gb": ("H100 SXM", 80), "RTX_4090": ("RTX 4090", 24),
    "NVIDIA RTX 6000 Ada Generation": ("RTX 6000Ada", 48),
}


@pytest.mark.parametrize(("name", "expected"), NAMES.items())
def test_gpu_names_as_printed_resolve(name: str, expected: tuple[str, int]) -> None:
    gpu = resolve_gpu(name)
    row, size_gb = expected
    assert gpu.name == row
    # Usable GB from nvidia-smi's MiB: within 10 % above the nominal size (80 GB -> 85.9 GB = 81920 MiB).
    assert size_gb <= gpu.gpu_ram_gb <= size_gb * 1.1, gpu.gpu_ram_gb


def test_memory_size_picks_the_variant_figures() -> None:
    # NVIDIA A100 datasheet: 40 GB HBM2 1,555 GB/s, 80 GB HBM2e 2,039 GB/s; both 312 dense bf16 TFLOPS.
    small, large = resolve_gpu("NVIDIA A100-SXM4-40GB"), resolve_gpu("A100 80GB")
    assert (small.hbm_bw_gbps, large.hbm_bw_gbps) == (1555, 2039)
    assert small.bf16_tflops == large.bf16_tflops == 312


@pytest.mark.parametrize(("name", "candidates"), [
    ("A100", {"A100 SXM4", "A100 PCIE"}),  # 40 or 80 GB
    ("H100", {"H100 SXM", "H100 PCIE", "H100 NVL"}),  # 989 / 756 / 835 TFLOPS
    ("H100 80GB", {"H100 SXM", "H100 PCIE"}),  # same memory, peaks 30 % apart
])
async def test_an_ambiguous_name_lists_its_candidates(client: Client, name: str, candidates: set[str]) -> None:
    assert {r.name for r in gpu_candidates(name)} == candidates
    refused = await client.call_tool("estimate_memory", {"spec": load_example(EXAMPLES[0]), "gpu": name})
    text = _text(refused)
    assert refused.is_error and f"gpu: got {name!r}" in text
    assert all(c in text for c in candidates), text


def test_nvidia_smi_names_are_never_ambiguous() -> None:
    """Every ``NVIDIA ...`` name in the nvidia-smi captures under ../shared (read in place) names one card:
    it resolves, or (a card the catalogue lacks) is refused with the closest names, never as several cards."""
    folders = [SHARED / "nvidia-smi", SHARED / "nvidia-smi" / "wild"]
    if not folders[0].is_dir():
        pytest.skip("../shared/fixtures/nvidia-smi is absent (found data, not part of the project)")
    names = set()
    for folder in folders:
        for path in folder.glob("*.*"):
            if path.suffix in (".txt", ".csv"):
                names |= {m.strip() for m in re.findall(r"NVIDIA [A-Za-z0-9][A-Za-z0-9 -]*[A-Za-z0-9]", path.read_text(
                    errors="replace")) if not m.startswith("NVIDIA devices")}
    names = {n.split("  ")[0] for n in names}
    assert len(names) >= 8, names
    several = {n: [r.name for r in gpu_candidates(n)] for n in names if len(gpu_candidates(n)) > 1}
    assert not several, several
    assert {"RTX 4090", "H100 SXM", "H200", "L40S"} <= {gpu_candidates(n)[0].name for n in names
                                                         if len(gpu_candidates(n)) == 1}


# ---------------------------------------------------------------- discovery


async def test_instructions_carry_the_whole_short_flow(client: Client) -> None:
    assert len(INSTRUCTIONS.encode()) <= 1100
    for call in ("checklist_start", "plan_options", "estimate_run", "checklist_status", "gate_check",
                 "launch_run", "heartbeat", "preflight://agents.md", "preflight://gpus"):
        assert call in INSTRUCTIONS, call
    tools, resources = await _catalogue(client)
    assert not _mcp_dead_names(INSTRUCTIONS, tools, resources)
    assert client.instructions == INSTRUCTIONS


async def test_agents_md_is_served_as_the_repository_file(client: Client) -> None:
    read = await client.read_resource("preflight://agents.md")
    assert read.contents[0].text == (ROOT / "agents.md").read_text()  # type: ignore[union-attr]


async def test_gpu_index_is_compact_and_one_gpu_has_its_details(client: Client) -> None:
    text = (await client.read_resource("preflight://gpus")).contents[0].text  # type: ignore[union-attr]
    assert len(text.encode()) < 4096, len(text.encode())
    index = json.loads(text)
    rows = {r[0]: dict(zip(index["columns"], r, strict=True)) for r in index["gpus"]}
    assert rows["H100 SXM"]["bf16_tflops"] == pytest.approx(989, rel=0.01)
    assert rows["RTX 4090"]["gpu_ram_gb"] == 24 and rows["RTX 4090"]["price_class"] == "consumer"
    assert rows["H100 SXM"]["price_class"] == "datacenter" and rows["RTX A6000"]["price_class"] == "workstation"
    one = json.loads((await client.read_resource("preflight://gpus/H100_SXM")).contents[0].text)  # type: ignore[union-attr]
    assert one["name"] == "H100 SXM" and one["hbm_bw_gbps"] == 3350 and "nvidia.com" in one["source"].lower()
    with pytest.raises(Exception, match="A100 SXM4"):
        await client.read_resource("preflight://gpus/A100")


# ---------------------------------------------------------------- schemas every client accepts


def _nulls(node: Any, path: str = "") -> list[str]:
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _nulls(v, f"{path}[{i}]")]
    if not isinstance(node, dict):
        return []
    found = [path] if isinstance(node.get("type"), list) else []
    props = node.get("properties")
    if isinstance(props, dict):  # a field schema that constrains nothing: --strict warns on it too
        found += [f"{path}.properties.{k}" for k, v in props.items() if v == {}]
    return found + [p for k, v in node.items() for p in _nulls(v, f"{path}.{k}")]


async def test_schemas_have_no_type_arrays_and_optional_args_no_null(client: Client) -> None:
    listed = await client.list_tools()
    assert len(listed.model_dump_json(by_alias=True, exclude_none=True)) < TOOLS_LIST_LIMIT_BYTES
    for tool in listed.tools:
        assert not _nulls(tool.input_schema), (tool.name, _nulls(tool.input_schema))
        assert not _nulls(tool.output_schema or {}), (tool.name, _nulls(tool.output_schema))
        assert '{"type": "null"}' not in json.dumps(tool.input_schema), tool.name


async def test_every_default_is_said_in_the_description(client: Client) -> None:
    published = {t.name: t.input_schema["properties"] for t in (await client.list_tools()).tools}
    server = create_server()
    checked = 0
    for tool in server._tool_manager.list_tools():
        for name, field in tool.fn_metadata.arg_model.model_fields.items():
            default = field.get_default()
            if default is None or field.is_required() or name not in published[tool.name]:
                continue
            shown = f"{default:g}" if isinstance(default, float) else str(default).lower() if isinstance(
                default, bool) else str(default)
            assert f"Default {shown}." in published[tool.name][name].get("description", ""), (tool.name, name)
            checked += 1
    assert checked >= 10  # limit 20, rank cost, window_s 600, ... (issue 20: Codex dropped 10)

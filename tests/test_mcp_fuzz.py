"""Malformed arguments at every tool the server lists, through the in-process MCP client, in both eras.

The promise (issue 7, "Bad input, at scale"): whatever an agent sends, the answer is a result or a
tool error (``is_error``) whose text is non-empty and names the field; never an exception out of
``call_tool``, never the SDK's bare "Error executing tool X" (which is what an unexpected exception
inside a tool becomes), and the server answers a valid call afterwards.

How it stays safe and bounded:

* every example runs in a sandbox: a fresh ``PREFLIGHT_STATE_DIR`` (hypothesis reuses the test
  function, so conftest's per-test directory would be shared by all examples), ``HOME`` and
  ``TMUX_TMPDIR`` in a temp dir, ``TMUX`` and ``VAST_API_KEY`` unset. A tool that sends keys to tmux
  (dispatch, launch) therefore finds no tmux server at all: the default socket and every ``-L`` name
  resolve inside the empty temp dir, and a ``socket_path`` argument is always pointed there too, so
  nothing is typed anywhere. No tool is skipped; tools that need a real pane simply get refused.
* live Vast search finds no API key, so it is refused without touching the network;
* ``max_examples`` and per-call timeouts keep the file well under a minute on two cores.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import anyio
import pytest
from helpers_spec import spec, with_change
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.server import MCPServer
from mcp.types import CallToolResult, TextContent, Tool

from gpu_preflight.server.app import create_server

# On a failure hypothesis imports libcst to write a patch; under filterwarnings=error its use of the deprecated
# mypy_extensions.TypedDict turns the report into an INTERNALERROR that hides the failing example.
pytestmark = pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning")

MODES = ("auto", "legacy")
CALL_TIMEOUT_S = 30.0
REAL_ID = "<the real checklist id>"  # replaced, inside the example, by a checklist it just started
BARE_ERROR = re.compile(r"Error executing tool [\w.-]+:?")
PREFIX = re.compile(r"^Error executing tool [\w.-]+: ")
ONE_LINE = re.compile(r"^(?P<field>[^\n:]+?): got .*; allowed: ", re.S)
# Refusals about the machine or the run's state, not about an argument: the sandbox has no Vast API key on
# purpose, and a closed gate ("gate.probe: got [missing items]; allowed: ...") says what to supply instead.
STATE_REFUSALS = frozenset({"Vast API key", "gate"})
# Known gaps, each pinned by a strict xfail below so that fixing it fails the suite until it is removed here.
KNOWN_GAPS: set[tuple[str, str]] = set()

TMUX_KEYS = ["C-c", "C-d", "C-z", "Enter", "Escape", "BSpace", "\x1b[201~", "\x1b[200~", "\x03", "\x04", "\r\n",
             "q", "y\n", "; kill-server", "$(rm -rf ~)", "`id`", "%0", "-t", "--", "../../etc/passwd"]
ODD_TEXT = ["", " ", "\x00", "\t", "\u202e", "\ufeff", "é", "🔥", "null", "NaN", "-1", "1e999", "ck-",
            "ck-000000000000", "ck-zzzzzzzzzzzz", "H100 SXM\n", "RTX 4090\x00"]
ODD_NUMBERS: list[Any] = [0, -1, -0.0, 1, 2**31, 2**53 + 1, 2**63, -(2**63), 10**30, -(10**30), 1e308, -1e308, 5e-324,
                          math.nan, math.inf, -math.inf]
SPEC_PATHS = ["model", "model.name", "model.params_total", "model.hf_config", "model.n_layers", "training",
              "training.seq_len", "training.micro_batch", "training.method", "training.lora_rank",
              "training.num_gpus", "training.precision", "training.grad_accum", "training.optimizer",
              "training.sharding", "target", "target.target_steps", "target.target_tokens", "target.epochs",
              "overheads", "overheads.setup_debug_hours", "overheads.disk", "baseline", "baseline.tokens_per_s",
              "baseline.gpu", "unknown_section"]

odd_text = st.one_of(st.sampled_from(TMUX_KEYS + ODD_TEXT), st.text(max_size=24),
                     st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=8),
                     st.just("A" * 100_000))
odd_number = st.one_of(st.sampled_from(ODD_NUMBERS), st.integers(), st.floats())
odd_scalar = st.one_of(st.none(), st.booleans(), odd_number, odd_text)
odd_value = st.recursive(odd_scalar, lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(odd_text, inner, max_size=3), max_leaves=6)


@cache
def shared_server() -> MCPServer:
    """One server for every example: building one costs ~100 ms (output-schema generation), and a
    server that many sessions connect to in turn is what HTTP does anyway. Tools read the state
    directory from the environment on each call, so the per-example sandbox still isolates state."""
    return create_server()


@cache
def listed_tools() -> tuple[Tool, ...]:
    """The tools the server lists (whatever capability modules are installed when the test runs)."""

    async def fetch() -> tuple[Tool, ...]:
        async with Client(shared_server()) as client:
            return tuple((await client.list_tools()).tools)

    return anyio.run(fetch)


def _mutated_spec() -> st.SearchStrategy[Any]:
    """A valid spec with one section or field replaced by an odd value, or deleted."""
    return st.builds(lambda path, value, drop: with_change(spec(), path, ... if drop else value),
                     st.sampled_from(SPEC_PATHS), odd_value, st.booleans())


ITEMS = ["memory_fit", "throughput_prediction", "time_cost_table", "setup_debug_tax", "validation_gates",
         "stage_a_checks", "probe_measurements", "live_estimate", "decision", "no_such_item"]
EVIDENCE_KEYS = ["vram_fits", "cpu_ram_ok", "disk_ok", "reliability_network_ok", "peak_gb", "gpu_ram_gb", "verdict",
                 "decision", "tokens_per_s", "median_step_s", "x"]


def _plausible(name: str, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A value near what the field expects, so the fuzz gets past the schema check into the tool."""
    options: list[st.SearchStrategy[Any]] = [
        st.sampled_from(sub["enum"]) for sub in [schema, *schema.get("anyOf", [])] if "enum" in sub]
    if "spec" in name:
        options += [_mutated_spec(), st.just(spec())]
    if name.endswith("_id"):
        options.append(st.sampled_from([REAL_ID, REAL_ID, "ck-000000000000", "run-does-not-exist", "%999"]))
    if name in ("target", "pane"):  # valid pane syntax, so the call reaches tmux (which has no server here)
        options.append(st.sampled_from(["%0", "%1", "%999", "train:0.1", "nope:0.0", "main"]))
    if name == "override_reason":  # long enough to open a closed gate, so launch_run reaches tmux too
        options.append(st.sampled_from(["the user agreed to launch anyway", "C-c Enter C-c Enter"]))
    if name == "item":
        options.append(st.sampled_from(ITEMS))
    if name == "gpu":
        options.append(st.sampled_from(["H100 SXM", "RTX 4090", "RTX 9999", "h100"]))
        gpu_keys = ("gpu_ram_gb", "bf16_tflops", "hbm_bw_gbps", "cpu_ram_gb", "name")
        options.append(st.fixed_dictionaries({}, optional=dict.fromkeys(gpu_keys, odd_value | odd_number)))
    if name in ("evidence", "baseline"):
        options.append(st.dictionaries(st.sampled_from(EVIDENCE_KEYS), odd_scalar | st.booleans(), max_size=5))
    kind = schema.get("type")
    if kind in ("number", "integer") or "number" in str(schema.get("anyOf", "")):
        options.append(odd_number)
    if kind == "string":
        options.append(odd_text)
    return st.one_of(*options) if options else odd_value


def _valid(name: str, schema: dict[str, Any]) -> Any:
    """A value the field accepts, for the baseline call that the fuzz then breaks in one or two places."""
    enum = next((sub["enum"] for sub in [schema, *schema.get("anyOf", [])] if "enum" in sub), None)
    if enum:
        return enum[0]
    if "spec" in name:
        return spec()
    if name.endswith("_id"):
        return REAL_ID
    known = {"gpu": "RTX 4090", "item": "memory_fit", "run_name": "fuzz", "evidence": {}, "target": "%0"}
    if name in known:
        return known[name]
    kind = schema.get("type") or next((sub.get("type") for sub in schema.get("anyOf", [])), "string")
    return {"number": 1.0, "integer": 1, "boolean": False, "object": {}, "array": []}.get(str(kind), "fuzz")


def _baseline(tool: Tool) -> dict[str, Any]:
    schema = tool.input_schema
    required = set(schema.get("required", []))
    return {n: _valid(n, s) for n, s in schema.get("properties", {}).items() if n in required}


def _broken(base: dict[str, Any], changes: list[tuple[str, Any, bool]]) -> dict[str, Any]:
    out = dict(base)
    for name, value, drop in changes:
        if drop:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def arguments_for(tool: Tool) -> st.SearchStrategy[Any]:
    """Half the time a valid call with one or two fields broken (odd value, near miss, or removed), so
    the fuzz reaches the tools' own checks; otherwise dicts keyed by the tool's properties with odd
    values, some missing, some extra keys; sometimes not the right shape at all."""
    props: dict[str, Any] = tool.input_schema.get("properties", {})
    names = sorted(props) or ["unexpected"]
    change = st.sampled_from(names).flatmap(lambda n: st.tuples(
        st.just(n), st.one_of(odd_value, _plausible(n, props.get(n, {}))), st.integers(0, 5).map(lambda i: i == 0)))
    one_off = st.builds(_broken, st.just(_baseline(tool)), st.lists(change, min_size=1, max_size=2))
    fields = st.fixed_dictionaries({}, optional={n: st.one_of(odd_value, _plausible(n, s)) for n, s in props.items()})
    extra = st.dictionaries(odd_text, odd_value, max_size=2)
    shaped = st.builds(lambda a, b, use_extra: {**a, **(b if use_extra else {})}, fields, extra, st.booleans())
    return st.one_of(one_off, one_off, shaped, st.dictionaries(odd_text, odd_value, max_size=4))


@st.composite
def tool_calls(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    tools = listed_tools()
    if draw(st.integers(0, 30)) == 0:
        return draw(st.sampled_from(["no_such_tool", "estimate_run ", "ESTIMATE_RUN", ""])), {}
    tool = draw(st.sampled_from(tools))
    return tool.name, draw(arguments_for(tool))


@dataclass
class Sandbox:
    root: Path
    checklist_id: str = ""


@contextmanager
def sandbox() -> Iterator[Sandbox]:
    """Fresh state, HOME and tmux socket dir for one example; the environment is restored after."""
    keys = ("PREFLIGHT_STATE_DIR", "HOME", "XDG_CONFIG_HOME", "TMUX_TMPDIR", "TMUX", "TMUX_PANE", "VAST_API_KEY")
    saved = {k: os.environ.get(k) for k in keys}
    with tempfile.TemporaryDirectory(prefix="pf-fuzz-") as tmp:
        root = Path(tmp)
        for sub in ("state", "home", "tmux"):
            (root / sub).mkdir()
        os.environ.update({"PREFLIGHT_STATE_DIR": str(root / "state"), "HOME": str(root / "home"),
                           "XDG_CONFIG_HOME": str(root / "home" / ".config"), "TMUX_TMPDIR": str(root / "tmux")})
        for k in ("TMUX", "TMUX_PANE", "VAST_API_KEY"):
            os.environ.pop(k, None)
        try:
            yield Sandbox(root)
        finally:
            _kill_sandbox_tmux(root / "tmux")
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _kill_sandbox_tmux(tmux_dir: Path) -> None:
    """Defensive: a tmux server can only exist here if a tool started one on a sandbox socket."""
    tmux = shutil.which("tmux")
    for sock in tmux_dir.glob("tmux-*/*"):
        if tmux and sock.is_socket():
            subprocess.run([tmux, "-S", str(sock), "kill-server"], capture_output=True, timeout=10, check=False)


def _prepare(arguments: Any, box: Sandbox) -> Any:
    """Swap in the real checklist id; point any socket_path into the sandbox (nothing real to type into)."""
    if isinstance(arguments, dict):
        out = {k: _prepare(v, box) for k, v in arguments.items()}
        if "socket_path" in out:
            out["socket_path"] = str(box.root / "tmux" / "no-such-server.sock")
        return out
    if isinstance(arguments, list):
        return [_prepare(v, box) for v in arguments]
    return box.checklist_id if arguments == REAL_ID else arguments


def _text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def _names_a_field(message: str, tool: Tool | None, arguments: Any) -> bool:
    """Does the error say which argument was wrong?

    Our refusals are one line, ``field: got X; allowed: Y``: the field's root must be an argument
    name, or a value sent (checklist evidence is named ``<item>.<field>``), or one of the listed
    refusals about the machine or the run's state rather than the call. The SDK's own argument
    validation puts each failing field path on its own line under "N validation errors for ...".
    """
    if tool is None:
        return message.startswith("Unknown tool")
    props = set(tool.input_schema.get("properties", {}))
    ours = ONE_LINE.match(message)
    if ours:
        field = ours["field"]
        sent = {v for v in arguments.values() if isinstance(v, str)} if isinstance(arguments, dict) else set()
        roots = {re.split(r"[.\[]", part, maxsplit=1)[0] for part in field.split("/")}  # "text/path": either
        known = (tool.name, field) in KNOWN_GAPS or f"allowed: an argument of {tool.name}" in message  # unknown name
        return bool(roots & (props | sent | STATE_REFUSALS)) or known
    lines = message.splitlines()
    paths = [line for line in lines[1:] if line and not line[0].isspace()]
    return "validation error" in lines[0] and any(re.split(r"[.\[]", p, maxsplit=1)[0] in props for p in paths)


def check_answer(name: str, arguments: Any, result: CallToolResult) -> None:
    tool = next((t for t in listed_tools() if t.name == name), None)
    text = _text(result)
    shown = f"{name}({json.dumps(arguments, default=str)[:400]})"
    assert text.strip(), f"empty answer from {shown}"
    if not result.is_error:
        assert tool is not None, f"unknown tool answered without error: {shown}"
        if tool.output_schema is not None:
            assert isinstance(result.structured_content, dict), f"no structured content from {shown}"
        return
    assert not BARE_ERROR.fullmatch(text.strip()), f"bare error (an exception escaped the tool) from {shown}: {text}"
    message = PREFIX.sub("", text, count=1)
    assert _names_a_field(message, tool, arguments), f"error does not name a field, from {shown}: {text[:500]}"


async def exercise(mode: str, calls: list[tuple[str, Any]], box: Sandbox) -> None:
    async with Client(shared_server(), mode=mode) as client:
        started = await client.call_tool("checklist_start", {"run_name": "fuzz", "policy": "pre-estimate"})
        assert started.is_error is False and started.structured_content is not None
        box.checklist_id = started.structured_content["id"]
        for name, raw in calls:
            arguments = _prepare(raw, box)
            with anyio.fail_after(CALL_TIMEOUT_S):
                try:
                    result = await client.call_tool(name, arguments)
                except Exception as exc:  # the point of the test: nothing may escape call_tool
                    pytest.fail(f"call_tool raised {exc!r} for {name}({str(arguments)[:300]})")
            check_answer(name, arguments, result)
        again = await client.call_tool("estimate_memory", {"spec": spec(), "gpu": "RTX 4090"})
        assert again.is_error is False, _text(again)


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(calls=st.lists(tool_calls(), min_size=1, max_size=4))
def test_malformed_arguments_get_a_tool_error_naming_the_field(mode: str, calls: list[tuple[str, Any]]) -> None:
    with sandbox() as box:
        anyio.run(exercise, mode, calls, box)


def _sweep_arguments(tool: Tool) -> list[Any]:
    """Fixed odd argument sets for one tool: nothing, every field wrong in a few ways, extra keys."""
    props = list(tool.input_schema.get("properties", {}))
    odd: tuple[Any, ...] = (None, -1, 10**30, math.nan, math.inf, "C-c", "\x1b[201~", "Enter", "\x00", [], {}, True,
                            "A" * 10_000)
    sets: list[Any] = [{}, {"unexpected": 1}, *(dict.fromkeys(props, value) for value in odd)]
    sets.append({p: (REAL_ID if p.endswith("_id") else "C-c") for p in props})
    # One field at a time inside an otherwise valid call, so the odd text gets past the schema into the tool
    # (a NUL run_name once reached SQLite, whose length() stops at NUL, and escaped as a bare error).
    sets += [_baseline(tool) | {p: text} for p in props for text in ("\x00", "a\x00b", "\x1b[2J")]
    return sets


@pytest.mark.parametrize("mode", MODES)
def test_every_listed_tool_survives_a_fixed_sweep(mode: str) -> None:
    """Deterministic coverage: each tool gets the same odd sets, whatever hypothesis happens to draw."""
    calls = [(tool.name, args) for tool in listed_tools() for args in _sweep_arguments(tool)]
    assert len({name for name, _ in calls}) >= 11
    with sandbox() as box:
        anyio.run(exercise, mode, calls, box)


def _odd_files(root: Path) -> list[str]:
    """Paths no tool may read (issue 14): a device, a FIFO, a directory, a symlink loop, a huge file, bad UTF-8."""
    os.mkfifo(root / "fifo")
    (root / "loop").symlink_to(root / "loop")
    with open(root / "huge", "wb") as handle:
        handle.truncate(70_000_000)  # sparse: over every cap, costs no disk
    (root / "latin1.json").write_bytes(b'{"model_type": "llama\xff"}')
    return ["/dev/zero", str(root / "fifo"), str(root), str(root / "loop"), str(root / "huge"),
            str(root / "latin1.json")]


@pytest.mark.parametrize("mode", MODES)
def test_file_arguments_refuse_devices_fifos_loops_and_huge_files(mode: str, tmp_path: Path) -> None:
    """Every file a caller names, and every numeric extreme, is a one-line tool error within the call timeout."""
    calls: list[tuple[str, Any]] = []
    for path in _odd_files(tmp_path):
        calls += [("estimate_memory", {"spec": spec(model={"hf_config": path}), "gpu": "H100 SXM"}),
                  ("search_offers", {"offers_file": path}),
                  ("plan_options", {"spec": spec(), "offers_file": path})]
    for number in (math.inf, -math.inf, 1e308, -1e308, 10**400, 2**63):
        calls += [("estimate_run", {"spec": spec(), "gpu": "H100 SXM", "dph_total_usd": number}),
                  ("estimate_memory", {"spec": spec(seq_len=number), "gpu": "H100 SXM"})]
    with sandbox() as box:
        anyio.run(exercise, mode, calls, box)


@pytest.mark.parametrize(("name", "arguments", "field"), [
    # Regression: these refusals once named "format" / "offers", which the tools do not have.
    ("ingest_nvidia_smi", {"text": "garbage"}, "fmt"),
    ("search_offers", {"offers_file": "/nonexistent.json"}, "offers_file"),
    ("plan_options", {"spec": spec(), "offers_file": "/nonexistent.json"}, "offers_file"),
])
def test_known_gaps_name_the_argument(name: str, arguments: dict[str, Any], field: str) -> None:
    async def call() -> str:
        async with Client(shared_server()) as client:
            return PREFIX.sub("", _text(await client.call_tool(name, arguments)), count=1)

    with sandbox():
        message = anyio.run(call)
    assert message.startswith(f"{field}: got") and "no such file" not in message, message

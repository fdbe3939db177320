"""Issue 14, bad input: each refusal is one line naming the field, exit 2 (CLI) / a tool error (MCP), fast.

Every case here failed on the code before issue 14: a traceback (RecursionError, the int-digit
ValueError, UnicodeDecodeError), a hang (a FIFO), memory growth (/dev/zero), a silently ignored
argument (``dph_totl_usd``), a four-line pydantic report, or a second shell command run from a CR.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from helpers_spec import spec
from mcp import Client

from gpu_preflight.server.cli import main

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "llama-3.2-1b-lora.toml"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    started = time.monotonic()
    code = main(list(args))
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err.strip()
    assert elapsed < 5.0, f"took {elapsed:.1f} s"  # "within a second" on a quiet machine; CI has slack
    return code, err


def one_line(code: int, err: str, needle: str) -> None:
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert needle in err, err


async def tool_error(client: Client, name: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(name, arguments)
    text = "\n".join(getattr(c, "text", "") for c in result.content)
    assert result.is_error, text
    assert len(text.splitlines()) == 1 and "https://" not in text, text
    assert text.rstrip(":") != f"Error executing tool {name}", text
    return text


# --- control characters in a shell dispatch ---------------------------------------------------------------

@pytest.mark.parametrize("text", ["echo safe\rtouch pwned", "echo safe\r\ntouch pwned"])
def test_cli_shell_dispatch_refuses_a_carriage_return(capsys: pytest.CaptureFixture[str], text: str) -> None:
    one_line(*cli(capsys, "dispatch", "%0", text, "--mode", "shell", "-L", "pf-nonexistent"), "carriage return")


def test_cli_paste_marker_is_refused_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    one_line(*cli(capsys, "dispatch", "%0", "a\x1b[201~b", "--mode", "shell", "-L", "pf-nonexistent"),
             "bracketed-paste marker")


@pytest.mark.anyio
@pytest.mark.parametrize("text", ["echo safe\rtouch pwned", "echo safe\r\ntouch pwned", "x\x1b[201~y"])
async def test_mcp_shell_dispatch_refuses_cr_and_paste_markers(mcp_client: Client, text: str) -> None:
    message = await tool_error(mcp_client, "dispatch", {"target": "%0", "text": text, "mode": "shell",
                                                        "socket_name": "pf-nonexistent"})
    assert "text: got" in message and ("carriage return" in message or "paste marker" in message)


# --- numbers and nesting ------------------------------------------------------------------------------------

def _spec_file(tmp_path: Path, text: str, name: str = "spec.json") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(("text", "name", "needle"), [
    ('{"model": {"params_total": ' + "9" * 4301 + "}}", "spec.json", "a number too long"),
    ("[" * 1000 + "]" * 1000, "spec.json", "nested too deeply"),
    ("a = " + "[" * 1000 + "]" * 1000, "spec.toml", "nested too deeply"),
    ('{"model": {"params_total": 1e308}}', "spec.json", "spec.model.params_total"),
    ('{"model": {"params_total": NaN}}', "spec.json", "finite"),
])
def test_cli_spec_extremes_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, name: str,
                                        needle: str) -> None:
    one_line(*cli(capsys, "estimate", _spec_file(tmp_path, text, name), "--gpu", "H100 SXM"), needle)


def test_cli_evidence_nested_1000_deep(capsys: pytest.CaptureFixture[str]) -> None:
    one_line(*cli(capsys, "checklist", "record", "ck-000000000000", "memory_fit", "--evidence", "[" * 1000),
             "--evidence")


@pytest.mark.parametrize(("args", "needle"), [
    (("offers", "--storage-gb", "-5"), "--storage-gb"),
    (("offers", "--storage-gb", "nan"), "--storage-gb"),
    (("offers", "--storage-gb", "inf"), "--storage-gb"),
    (("estimate", str(EXAMPLE), "--gpu", "H100 SXM", "--dph", "9" * 400), "--dph"),
    (("plan", str(EXAMPLE), "--limit", "9" * 400), "--limit"),
])
def test_cli_number_arguments_have_a_physical_range(capsys: pytest.CaptureFixture[str], args: tuple[str, ...],
                                                     needle: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    err = capsys.readouterr().err.strip()
    one_line(int(info.value.code or 0), err, needle)


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "arguments", "field"), [
    ("estimate_run", {"spec": spec(), "gpu": "H100 SXM", "dph_totl_usd": 2.0}, "did you mean dph_total_usd"),
    ("estimate_run", {"spec": spec(), "gpu": "H100 SXM", "dph_total_usd": "abc"}, "dph_total_usd: got 'abc'"),
    ("estimate_run", {"spec": spec(), "gpu": "H100 SXM", "dph_total_usd": 10**400}, "dph_total_usd"),
    ("estimate_memory", {"spec": {"model": {"params_total": 1e308}}, "gpu": "H100 SXM"}, "spec.model.params_total"),
    ("launch_run", {"checklist_id": "ck-000000000000", "target": "%0", "command": "true",
                    "expected_tokens_per_s": 1e308}, "expected_tokens_per_s"),
    ("launch_run", {"checklist_id": "ck-000000000000", "target": "%0", "command": "true",
                    "expected_tokens_per_s": -5}, "expected_tokens_per_s"),
    ("search_offers", {"storage_gb": -1}, "storage_gb"),
    ("checklist_start", {"run_name": "x", "policy": "pre-estimate", "spec": {"a": json.loads("[" * 30 + "]" * 30)},
                         "extra_arg": 1}, "extra_arg"),
])
async def test_mcp_bad_arguments_are_one_line_naming_the_field(mcp_client: Client, name: str,
                                                               arguments: dict[str, Any], field: str) -> None:
    assert field in await tool_error(mcp_client, name, arguments)


@pytest.mark.anyio
async def test_mcp_gpu_ram_gb_1e308_in_evidence_is_refused(mcp_client: Client) -> None:
    started = await mcp_client.call_tool("checklist_start", {"run_name": "r", "policy": "pre-estimate"})
    assert started.structured_content is not None
    evidence = {"gpu_ram_gb": 1e308, "gpu_peak_gb": 10, "gpu_required_gb": 10, "gpu_verdict": "pass",
                "gpu_verdict_basis_gb": 10, "cpu_ram_gb": None}
    message = await tool_error(mcp_client, "checklist_record", {"checklist_id": started.structured_content["id"],
                                                                "item": "memory_fit", "evidence": evidence})
    assert "gpu_ram_gb" in message


# --- files --------------------------------------------------------------------------------------------------

def _fifo(tmp_path: Path) -> str:
    path = tmp_path / "pipe.json"
    os.mkfifo(path)
    return str(path)


@pytest.mark.parametrize(("make", "needle"), [
    (lambda p: "/dev/zero", "character device"),
    (_fifo, "FIFO"),
    (lambda p: str(p), "directory"),
    (lambda p: str(p / "missing.json"), "does not exist"),
    (lambda p: _spec_file(p, "", "bad.json") and (p / "bad.json").write_bytes(b'{"model": "\xff\xfe"}')
     and str(p / "bad.json"), "not UTF-8"),
    (lambda p: (p / "big.json").write_bytes(b" " * 1_000_001) and str(p / "big.json"), "limit"),
])
def test_cli_spec_files_regular_capped_utf8(capsys: pytest.CaptureFixture[str], tmp_path: Path, make: Any,
                                            needle: str) -> None:
    one_line(*cli(capsys, "estimate", make(tmp_path), "--gpu", "H100 SXM"), needle)


def test_errors_never_quote_file_content(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    secret = _spec_file(tmp_path, "root:$6$secret-hash:19000:0:99999:7:::\n", "shadow")
    code, err = cli(capsys, "estimate", secret, "--gpu", "H100 SXM")
    one_line(code, err, "spec")
    assert "root:" not in err and "secret" not in err.replace(secret, "")


@pytest.mark.parametrize("target", ["/dev/zero", "FIFO"])
def test_cli_evidence_file_and_offers_file_refuse_devices(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                          target: str) -> None:
    path = _fifo(tmp_path) if target == "FIFO" else target
    one_line(*cli(capsys, "checklist", "record", "ck-000000000000", "memory_fit", "--evidence-file", path),
             "--evidence-file")
    one_line(*cli(capsys, "offers", "--offers", path), "--offers")


@pytest.mark.anyio
@pytest.mark.parametrize("target", ["/dev/zero", "FIFO", "DIR"])
async def test_mcp_hf_config_and_offers_file_refuse_non_regular_files(mcp_client: Client, tmp_path: Path,
                                                                      target: str) -> None:
    path = {"/dev/zero": "/dev/zero", "DIR": str(tmp_path)}.get(target) or _fifo(tmp_path)
    message = await tool_error(mcp_client, "estimate_memory", {"spec": spec(model={"hf_config": path}),
                                                               "gpu": "H100 SXM"})
    assert "hf_config" in message and "regular file" in message
    message = await tool_error(mcp_client, "search_offers", {"offers_file": path})
    assert "offers_file" in message and "regular file" in message

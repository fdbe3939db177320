"""The telemetry tools through a real MCP client, in both protocol eras."""

from __future__ import annotations

import copy
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from helpers_probe import PROBE, SPEC
from mcp import Client
from mcp.types import TextContent

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).parent / "fixtures"
NANOGPT = FIXTURES / "logs/nanogpt_a100_issue178_mfu.log"
V100_SMI = FIXTURES / "nvidia-smi/query_csv_units_v100_aau_2020-11-12.csv"




def _text(result: object) -> str:
    content = result.content  # type: ignore[attr-defined]
    assert isinstance(content[0], TextContent)
    return content[0].text


def _offers_file(tmp_path: Path) -> Path:
    raw = json.loads((FIXTURES / "vast/rtx4090_guangxi_cli_raw_2024.json").read_text())[0]
    h100 = copy.deepcopy(raw)
    h100.update(id=900, ask_contract_id=900, gpu_name="H100 SXM", dph_base=2.4, dph_total=2.4, gpu_ram=81559,
                inet_down=1000.0)
    path = tmp_path / "offers.json"
    path.write_text(json.dumps([h100]))
    return path


async def test_tools_are_listed_with_explicit_hints(mcp_client: Client) -> None:
    """Every hint the spec reads is explicit: all four for a writer; readOnlyHint and openWorldHint for a
    reader (the spec ignores destructiveHint and idempotentHint when readOnlyHint is true)."""
    tools = {t.name: t for t in (await mcp_client.list_tools()).tools}
    for name in ("gpu_snapshot", "ingest_nvidia_smi", "run_check", "calibrate"):
        hints = tools[name].annotations
        assert hints is not None and hints.read_only_hint is not None and hints.open_world_hint is False
        if hints.read_only_hint is False:
            assert hints.destructive_hint is False and hints.idempotent_hint is not None
        assert len(tools[name].description or "") < 300
    assert tools["run_check"].annotations.read_only_hint is True  # type: ignore[union-attr]
    assert tools["calibrate"].annotations.read_only_hint is False  # type: ignore[union-attr]  # records evidence


async def test_gpu_snapshot_answers_with_or_without_a_driver(mcp_client: Client) -> None:
    result = await mcp_client.call_tool("gpu_snapshot", {})
    assert result.is_error is False
    sc = result.structured_content
    assert sc is not None
    if sc["available"]:
        assert sc["gpus"] and "util %" in _text(result)
    else:
        assert sc["answer"]["kind"] in ("no_driver", "driver_mismatch", "no_permission", "other")
        assert _text(result).startswith("no GPU readings: ")


async def test_ingest_path_and_text_compact(mcp_client: Client) -> None:
    result = await mcp_client.call_tool("ingest_nvidia_smi", {"path": str(NANOGPT), "max_samples": 4})
    assert result.is_error is False
    sc = result.structured_content
    assert sc is not None
    assert (sc["format"], sc["sample_count"], sc["samples_omitted"], len(sc["samples"])) == ("nanogpt", 26, 22, 4)
    assert sc["samples"][0] == {"kind": "train", "step": 0, "loss": 4.2648, "step_time_s": 9.37181}
    assert sc["summary"]["step_last"] == 240 and "format **nanogpt**" in _text(result)

    text = V100_SMI.read_text()
    smi = await mcp_client.call_tool("ingest_nvidia_smi", {"text": text})
    sc = smi.structured_content
    assert sc is not None and sc["format"] == "nvidia_smi_query" and sc["sample_count"] == 17
    assert sc["summary"]["mem_used_peak_mib"] == 30994.0 and sc["summary"]["gpu_count"] == 1


@pytest.mark.parametrize(("arguments", "needle"), [
    ({}, "text/path: got 'neither'; allowed: exactly one of text or path"),
    ({"text": "x", "path": "/etc/hostname"}, "text/path: got 'both'"),
    ({"path": "/no/such/file.log"}, "path: got '/no/such/file.log'; allowed: a regular file holding a text log "
     "(it does not exist)"),
    ({"text": "hello\nworld\n"}, "fmt: got None"),
    ({"text": "iter 1: loss 2.0, time 10ms", "fmt": "nvidia"}, "fmt: got 'nvidia'"),
])
async def test_ingest_bad_input_is_one_line(mcp_client: Client, arguments: dict[str, Any], needle: str) -> None:
    result = await mcp_client.call_tool("ingest_nvidia_smi", arguments)
    assert result.is_error is True and needle in _text(result)


async def test_run_check_of_a_recorded_run(mcp_client: Client, tmp_path: Path) -> None:
    dispatch = pytest.importorskip("gpu_preflight.tools.dispatch")
    log = tmp_path / "train.log"
    shutil.copy(NANOGPT, log)
    run = dispatch.record_run("train:0.0", "python train.py", kind="probe", log_path=str(log),
                              socket_name=f"pf-test-{uuid.uuid4().hex[:8]}", predicted_tokens_per_s=1000.0)
    result = await mcp_client.call_tool("run_check", {
        "run_id": run.run_id, "nvsmi_path": str(V100_SMI), "dph_total_usd": 2.0, "total_steps": 5000,
        "window_s": 30})
    assert result.is_error is False, _text(result)
    sc = result.structured_content
    assert sc is not None
    assert sc["run_id"] == run.run_id and sc["kind"] == "probe"
    assert "heartbeat" in sc  # a dict from the dispatcher, or null with a note when no tmux answers
    assert sc["heartbeat"] is not None or any(n.startswith("heartbeat unavailable") for n in sc["notes"])
    assert "memory_pressure" in sc["fired"] and sc["window"]["step_last"] == 240
    fired = next(t for t in sc["triggers"] if t["name"] == "memory_pressure")
    assert fired["evidence"]["mem_used_min_pct"] == 95.424877
    assert sc["eta_s"] == 4261.6756 and sc["cost_to_finish_usd"] == 2.37
    assert sc["decision"]["decision"] == "kill"  # the memory trigger fired, whatever the pane says
    assert "| memory_pressure | fired |" in _text(result)


async def test_a_nul_in_a_path_is_refused_naming_the_field(mcp_client: Client, tmp_path: Path) -> None:
    """Regression: open() raises ValueError (not OSError) for a NUL, which escaped as a bare error."""
    ingest = await mcp_client.call_tool("ingest_nvidia_smi", {"path": "smi\x00.csv"})
    assert ingest.is_error is True and "path: got 'smi\\x00.csv'; allowed: a regular file" in _text(ingest)
    dispatch = pytest.importorskip("gpu_preflight.tools.dispatch")
    run = dispatch.record_run("train:0.0", "python train.py", kind="probe", log_path=str(tmp_path / "t.log"),
                              socket_name=f"pf-test-{uuid.uuid4().hex[:8]}")
    check = await mcp_client.call_tool("run_check", {"run_id": run.run_id, "log_path": "t\x00.log"})
    assert check.is_error is True and "log_path" in _text(check) and "NUL" in _text(check)


async def test_run_check_unknown_run_is_a_tool_error(mcp_client: Client) -> None:
    result = await mcp_client.call_tool("run_check", {"run_id": "r-none"})
    assert result.is_error is True
    assert "run_id: got 'r-none'" in _text(result)


async def test_calibrate_probe_with_offers_and_checklist(mcp_client: Client, tmp_path: Path) -> None:
    start = await mcp_client.call_tool("checklist_start", {"run_name": "probe", "policy": "run-calibrated",
                                                           "spec": SPEC})
    assert start.structured_content is not None
    checklist_id = start.structured_content["id"]
    result = await mcp_client.call_tool("calibrate", {
        "probe": PROBE, "offers_file": str(_offers_file(tmp_path)), "checklist_id": checklist_id})
    assert result.is_error is False, _text(result)
    sc = result.structured_content
    assert sc is not None
    cal = sc["calibration"]
    assert cal["time_hours"] == {"optimistic": 5.0667, "base": 5.9, "pessimistic": 9.2333}
    assert cal["decision"]["decision"] == "switch" and cal["decision"]["switch_to_offer"] == "900"
    attached = sc["checklist"]
    assert {"probe_measurements", "live_estimate", "setup_debug_tax"} <= set(attached["attached"])
    if "decision" not in attached["attached"]:  # the policy names who may supply it
        assert attached["skipped"]["decision"].startswith("policy lets run_check, checklist_record supply it")
    assert _text(result).startswith("**SWITCH to 900**")


async def test_calibrate_from_a_run_log_and_the_checklist_spec(mcp_client: Client, tmp_path: Path) -> None:
    dispatch = pytest.importorskip("gpu_preflight.tools.dispatch")
    run = dispatch.record_run("train:0.0", "python train.py", kind="probe", log_path=str(NANOGPT))
    start = await mcp_client.call_tool("checklist_start", {"run_name": "p", "policy": "run-calibrated",
                                                           "spec": SPEC})
    assert start.structured_content is not None
    result = await mcp_client.call_tool("calibrate", {
        "run_id": run.run_id, "checklist_id": start.structured_content["id"], "nvsmi_path": str(V100_SMI),
        "probe": {"gpu": "A100 SXM4", "dph_total_usd": 1.5}, "offers_file": str(_offers_file(tmp_path))})
    assert result.is_error is False, _text(result)
    assert result.structured_content is not None
    cal = result.structured_content["calibration"]
    assert cal["gpu"] == "A100 SXM4" and cal["step_time_s"] == pytest.approx(0.894, abs=0.002)
    assert cal["decision"]["decision"] == "kill" and "memory_pressure" in cal["decision"]["reason"]


@pytest.mark.parametrize(("arguments", "needle"), [
    ({"spec": SPEC}, "run_id/probe: got None; allowed: a run_id, probe measurements, or both"),
    ({"probe": PROBE}, "spec: got None"),
    ({"probe": {"gpu": "RTX 4090"}, "spec": SPEC}, "probe.steps_measured: got '(missing)'"),
    ({"probe": PROBE, "spec": SPEC, "offers_file": "/no/offers.json"}, "offers"),
])
async def test_calibrate_bad_input_is_one_line(mcp_client: Client, arguments: dict[str, Any], needle: str) -> None:
    result = await mcp_client.call_tool("calibrate", arguments)
    assert result.is_error is True and needle in _text(result), _text(result)

"""Both checklist policies end to end through a real MCP client, in both protocol eras.

Pre-estimate: start, estimator calls that fill items, a manual record, a rejected inconsistent
record, staleness after micro-batch doubles, the gate closed then open for probe then full, an
override with its reason in the audit. Run-calibrated: Stage A opens the probe gate; probe
measurements, live estimate, tax and a keep decision open the full gate. Bad input comes back as
``is_error`` naming the field, and the server answers the next call.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from helpers_spec import EXAMPLES
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import TextContent

from gpu_preflight.checklist.examples import example

pytestmark = pytest.mark.anyio

GPU = "H100 SXM"
# The gate wants the host RAM too (playbook §7: GPU RAM + CPU RAM); a catalogue name carries none.
HOST_GPU = {"name": "H100 SXM", "gpu_ram_gb": 79.6, "bf16_tflops": 989.0, "hbm_bw_gbps": 3350.0,
            "cpu_ram_gb": 256.0, "disk_gb": 500.0}
PRE_ITEMS = ["memory_fit", "throughput_prediction", "time_cost_table", "setup_debug_tax", "validation_gates"]
RUN_ITEMS = ["stage_a_checks", "probe_measurements", "live_estimate", "setup_debug_tax", "decision"]
UNKNOWN = "ck-000000000000"




def _llama() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / "llama-3-8b-full.json").read_text())
    return data


def _text(result: Any) -> str:
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text


async def _ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert result.is_error is False, _text(result)
    assert result.structured_content is not None
    return result.structured_content


async def _refused(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error is True, result.structured_content
    return _text(result)


async def _states(client: Client, checklist_id: str) -> dict[str, str]:
    status = await _ok(client, "checklist_status", checklist_id=checklist_id)
    return {item["id"]: item["state"] for item in status["items"]}


async def test_tools_are_listed_with_honest_annotations(mcp_client: Client) -> None:
    tools = {t.name: t for t in (await mcp_client.list_tools()).tools}
    expected = {"checklist_start": False, "checklist_record": False, "checklist_update_spec": False,
                "gate_check": False, "checklist_status": True, "checklist_report": True}
    for name, read_only in expected.items():
        tool = tools[name]
        hints = tool.annotations
        assert hints is not None and tool.output_schema is not None and tool.description
        assert (hints.read_only_hint, hints.open_world_hint) == (read_only, False)
        assert hints.destructive_hint is (None if read_only else False)  # the spec reads it for writers only
    assert tools["checklist_start"].input_schema["properties"]["policy"]["enum"] == ["pre-estimate", "run-calibrated"]
    assert tools["gate_check"].input_schema["properties"]["kind"]["enum"] == ["probe", "full"]
    assert tools["checklist_record"].input_schema["required"] == ["checklist_id", "item", "evidence"]


async def test_pre_estimate_walk(mcp_client: Client) -> None:
    spec = _llama()
    view = await _ok(mcp_client, "checklist_start", run_name="llama8b-sft", policy="pre-estimate", spec=spec)
    cid = view["id"]
    assert cid.startswith("ck-") and [i["id"] for i in view["items"]] == PRE_ITEMS
    assert "estimate_run" in view["items"][0]["supplied_by"] and "gpu_verdict" in view["items"][0]["required_fields"]
    assert set((await _states(mcp_client, cid)).values()) == {"missing"}

    # Closed gate: an answer (allowed false, what is missing), recorded in the audit; not an error.
    closed = await _ok(mcp_client, "gate_check", checklist_id=cid, kind="probe")
    assert (closed["allowed"], closed["missing"]) == (False, ["memory_fit"])
    assert "Supply memory_fit" in closed["next_step"]

    # estimate_memory fills memory_fit only: probe opens with its caps, full stays closed.
    await _ok(mcp_client, "estimate_memory", spec=spec, gpu=HOST_GPU, checklist_id=cid)
    status = await _ok(mcp_client, "checklist_status", checklist_id=cid)
    assert status["gate"] == {"probe": True, "full": False}
    assert status["missing"] == PRE_ITEMS[1:]
    probe = await _ok(mcp_client, "gate_check", checklist_id=cid, kind="probe")
    assert (probe["allowed"], probe["overridden"], probe["probe_max_steps"]) == (True, False, 200)

    # estimate_run without a price fills all but the time/cost table, which the agent records by hand
    # from the estimate's own hours at the price it was quoted.
    estimate = await _ok(mcp_client, "estimate_run", spec=spec, gpu=HOST_GPU, checklist_id=cid)
    states = await _states(mcp_client, cid)
    assert states["time_cost_table"] == "missing"
    assert {states[i] for i in PRE_ITEMS if i != "time_cost_table"} == {"done"}
    hours = estimate["time_hours"]
    table = {"time_hours": hours, "cost_usd": {k: round(v * 2.5, 2) for k, v in hours.items()}, "dph_total_usd": 2.5}

    # An inconsistent record is refused, naming the field; nothing is stored.
    wrong = copy.deepcopy(table)
    wrong["cost_usd"]["base"] = round(wrong["cost_usd"]["base"] * 1.1, 2)
    message = await _refused(mcp_client, "checklist_record", checklist_id=cid, item="time_cost_table", evidence=wrong)
    assert "time_cost_table.cost_usd.base: got " in message
    contradicts = example("memory_fit") | {"gpu_verdict_basis_gb": 70.0}
    message = await _refused(mcp_client, "checklist_record", checklist_id=cid, item="memory_fit",
                             evidence=contradicts)
    assert "memory_fit.gpu_verdict: got 'pass'; allowed: 'high_oom_risk'" in message
    assert (await _states(mcp_client, cid))["memory_fit"] == "done"

    recorded = await _ok(mcp_client, "checklist_record", checklist_id=cid, item="time_cost_table", evidence=table)
    assert (recorded["item"]["state"], recorded["item"]["source"]) == ("done", "checklist_record")
    assert recorded["gate"] == {"probe": True, "full": True} and recorded["missing"] == []
    full = await _ok(mcp_client, "gate_check", checklist_id=cid, kind="full")
    assert (full["open"], full["allowed"]) == (True, True)

    # Micro-batch doubled: every item is stale and both gates close.
    bigger = copy.deepcopy(spec)
    bigger["training"]["micro_batch"] *= 2
    after = await _ok(mcp_client, "checklist_update_spec", checklist_id=cid, spec=bigger)
    assert {i["state"] for i in after["items"]} == {"stale"}
    assert after["gate"] == {"probe": False, "full": False}
    assert "computed for spec" in after["items"][0]["reason"]
    refused = await _ok(mcp_client, "gate_check", checklist_id=cid, kind="full")
    assert (refused["allowed"], refused["missing"]) == (False, PRE_ITEMS)

    # An override needs a written reason; with one the launch is allowed and the reason is audited.
    blank = await _refused(mcp_client, "gate_check", checklist_id=cid, kind="full", override_reason=" ok ")
    assert "override_reason: got ' ok '" in blank
    reason = "benchmark on a spare H100 with a $5 cap; estimate refreshed right after"
    overridden = await _ok(mcp_client, "gate_check", checklist_id=cid, kind="full", override_reason=reason)
    assert (overridden["open"], overridden["allowed"], overridden["overridden"]) == (False, True, True)
    assert overridden["override_reason"] == reason and overridden["missing"] == PRE_ITEMS

    # Re-estimating the new spec (with a price this time) brings every item back.
    await _ok(mcp_client, "estimate_run", spec=bigger, gpu=HOST_GPU, dph_total_usd=19.2, checklist_id=cid)
    assert set((await _states(mcp_client, cid)).values()) == {"done"}
    assert (await _ok(mcp_client, "gate_check", checklist_id=cid, kind="full"))["allowed"] is True

    report = await _ok(mcp_client, "checklist_report", checklist_id=cid, detail="full")  # every section
    markdown = report["markdown"]
    assert markdown.startswith("# Pre-estimate checklist (hard gate before a long run): llama8b-sft")
    for needle in ("| verdict | **pass** |", "## Gates", "| full | **open** |", "## Gate decisions", reason,
                   "throughput < 70% of expected"):
        assert needle in markdown, needle
    resource = await mcp_client.read_resource(f"preflight://checklists/{cid}/report")
    assert reason in resource.contents[0].text  # type: ignore[union-attr]


async def test_run_calibrated_walk(mcp_client: Client) -> None:
    view = await _ok(mcp_client, "checklist_start", run_name="llama8b-probe", policy="run-calibrated",
                     spec=_llama())
    cid = view["id"]
    assert [i["id"] for i in view["items"]] == RUN_ITEMS
    assert view["gates"]["probe"]["requires"] == ["stage_a_checks"]
    assert (await _ok(mcp_client, "gate_check", checklist_id=cid, kind="probe"))["allowed"] is False

    # Stage A opens the probe gate only, with the policy's caps.
    stage_a = await _ok(mcp_client, "checklist_record", checklist_id=cid, item="stage_a_checks",
                        evidence=example("stage_a_checks"))
    assert stage_a["gate"] == {"probe": True, "full": False}
    probe = await _ok(mcp_client, "gate_check", checklist_id=cid, kind="probe")
    assert (probe["allowed"], probe["probe_min_steps"], probe["probe_max_steps"], probe["probe_max_minutes"]) == (
        True, 20, 100, 15.0)
    closed = await _ok(mcp_client, "gate_check", checklist_id=cid, kind="full")
    assert (closed["allowed"], closed["missing"]) == (False, RUN_ITEMS[1:])

    # A probe past its step cap is refused, naming the field.
    too_long = example("probe_measurements") | {"steps_measured": 150}
    message = await _refused(mcp_client, "checklist_record", checklist_id=cid, item="probe_measurements",
                             evidence=too_long)
    assert message.endswith("probe_measurements.steps_measured: got 150; allowed: <= 100 (the probe's step cap)")

    for item in ("probe_measurements", "live_estimate", "setup_debug_tax"):
        answer = await _ok(mcp_client, "checklist_record", checklist_id=cid, item=item, evidence=example(item))
        assert answer["item"]["state"] == "done" and answer["gate"]["full"] is False
    assert (await _ok(mcp_client, "checklist_status", checklist_id=cid))["missing"] == ["decision"]

    keep = await _ok(mcp_client, "checklist_record", checklist_id=cid, item="decision", evidence=example("decision"))
    assert keep["gate"] == {"probe": True, "full": True} and keep["missing"] == []
    full = await _ok(mcp_client, "gate_check", checklist_id=cid, kind="full")
    assert (full["open"], full["allowed"], full["offer"]) == (True, True, None)
    markdown = (await _ok(mcp_client, "checklist_report", checklist_id=cid, detail="full"))["markdown"]
    assert "Live throughput 2 steps/s for 36000 target steps." in markdown and "keep after 12 min" in markdown


async def test_a_cost_that_rounds_to_zero_still_fills_the_time_cost_item(mcp_client: Client) -> None:
    """Regression (the MCP fuzz): costs are rounded to cents, and a tiny price made a valid estimate_run
    fail because the checklist refused cost_usd 0.0."""
    cid = (await _ok(mcp_client, "checklist_start", run_name="cheap", policy="pre-estimate", spec=_llama()))["id"]
    answer = await _ok(mcp_client, "estimate_run", spec=_llama(), gpu=GPU, checklist_id=cid, dph_total_usd=0.0001)
    assert answer["cost_usd"]["optimistic"] == 0.0
    assert (await _states(mcp_client, cid))["time_cost_table"] == "done"


async def test_estimate_run_attaches_to_a_run_calibrated_checklist(mcp_client: Client) -> None:
    cid = (await _ok(mcp_client, "checklist_start", run_name="rc", policy="run-calibrated", spec=_llama()))["id"]
    await _ok(mcp_client, "estimate_run", spec=_llama(), gpu=HOST_GPU, checklist_id=cid)
    states = await _states(mcp_client, cid)
    assert states["stage_a_checks"] == "done"
    status = await _ok(mcp_client, "checklist_status", checklist_id=cid)
    assert status["gate"] == {"probe": True, "full": False}


@pytest.mark.parametrize(("tool", "arguments", "needle"), [
    ("checklist_status", {"checklist_id": UNKNOWN}, f"checklist_id: got '{UNKNOWN}'"),
    ("checklist_report", {"checklist_id": UNKNOWN}, f"checklist_id: got '{UNKNOWN}'"),
    ("checklist_update_spec", {"checklist_id": UNKNOWN, "spec": _llama()}, f"checklist_id: got '{UNKNOWN}'"),
    ("gate_check", {"checklist_id": UNKNOWN, "kind": "full"}, f"checklist_id: got '{UNKNOWN}'"),
    ("checklist_record", {"checklist_id": UNKNOWN, "item": "memory_fit", "evidence": example("memory_fit")},
     f"checklist_id: got '{UNKNOWN}'"),
    ("estimate_run", {"spec": _llama(), "gpu": GPU, "checklist_id": UNKNOWN}, f"checklist_id: got '{UNKNOWN}'"),
    ("checklist_record", {"item": "memory", "evidence": {}}, "item: got 'memory'; allowed: memory_fit, "),
    ("checklist_record", {"item": "decision", "evidence": example("decision")}, "item: got 'decision'"),
    ("checklist_record", {"item": "memory_fit", "evidence": "fits fine"},
     "memory_fit: got 'fits fine'; allowed: a JSON object with fields gpu_ram_gb"),
    ("checklist_record", {"item": "memory_fit", "evidence": example("memory_fit") | {"gpu_ram_gb": "eighty"}},
     "memory_fit.gpu_ram_gb: got 'eighty'"),
    ("checklist_record", {"item": "memory_fit", "evidence": example("memory_fit") | {"gpu_ram": 80.0}},
     "memory_fit.gpu_ram: got 80.0; allowed: Extra inputs are not permitted"),
    ("checklist_record", {"item": "memory_fit"}, "evidence"),
    ("gate_check", {"kind": "fulll"}, "kind: got 'fulll'; allowed: Input should be 'probe' or 'full'"),
    ("checklist_start", {"run_name": "x", "policy": "yolo"},
     "policy: got 'yolo'; allowed: Input should be 'pre-estimate' or"),
    ("checklist_start", {"run_name": " ", "policy": "pre-estimate"}, "run_name: got ' '"),
    ("checklist_start", {"run_name": "x", "policy": "pre-estimate", "spec": {"model": {"name": "gpt2"}}},
     "spec.training"),
    ("checklist_update_spec", {"spec": {"training": {"micro_batch": -1}}}, "spec.model: got '(missing)'"),
])
async def test_bad_input_is_a_tool_error_naming_the_field(mcp_client: Client, tool: str,
                                                          arguments: dict[str, Any], needle: str) -> None:
    cid = (await _ok(mcp_client, "checklist_start", run_name="bad-input", policy="pre-estimate"))["id"]
    if tool != "checklist_start" and "checklist_id" not in arguments:
        arguments = {"checklist_id": cid, **arguments}
    assert needle in await _refused(mcp_client, tool, **arguments)
    # The server is alive, and the refusal stored nothing.
    status = await _ok(mcp_client, "checklist_status", checklist_id=cid)
    assert {i["state"] for i in status["items"]} == {"missing"}


async def test_policy_resources(mcp_client: Client) -> None:
    templates = {t.uri_template for t in (await mcp_client.list_resource_templates()).resource_templates}
    assert {"preflight://policies/{name}", "preflight://checklists/{checklist_id}/report"} <= templates
    for name in ("pre-estimate", "run-calibrated"):
        read = await mcp_client.read_resource(f"preflight://policies/{name}")
        assert f'name = "{name}"' in read.contents[0].text  # type: ignore[union-attr]
    with pytest.raises(MCPError, match="policy: got 'nope'; allowed: pre-estimate or run-calibrated"):
        await mcp_client.read_resource("preflight://policies/nope")
    with pytest.raises(MCPError, match=f"checklist_id: got '{UNKNOWN}'"):
        await mcp_client.read_resource(f"preflight://checklists/{UNKNOWN}/report")


async def test_prompts_walk_through_tools_that_exist(mcp_client: Client) -> None:
    tools = {t.name for t in (await mcp_client.list_tools()).tools}
    prompts = {p.name: p for p in (await mcp_client.list_prompts()).prompts}
    assert [a.name for a in prompts["pre_run_checklist"].arguments or []] == ["run_name", "spec_path"]
    assert [a.name for a in prompts["probe_then_decide"].arguments or []] == ["run_name", "spec_path"]

    pre = await mcp_client.get_prompt("pre_run_checklist", {"run_name": "llama8b", "spec_path": "runs/llama.json"})
    text = pre.messages[0].content.text  # type: ignore[union-attr]
    assert "runs/llama.json" in text and 'run_name="llama8b", policy="pre-estimate"' in text
    order = [text.index(call) for call in ("checklist_start(", "estimate_run(", "checklist_record(",
                                           "checklist_report(", 'kind="probe"', 'kind="full"')]
    assert order == sorted(order)

    probe = await mcp_client.get_prompt("probe_then_decide", {"run_name": "qwen"})
    ptext = probe.messages[0].content.text  # type: ignore[union-attr]
    order = [ptext.index(s) for s in ('policy="run-calibrated"', "stage_a_checks", 'kind="probe"',
                                      "probe_measurements", "live_estimate", "setup_debug_tax", "`decision`",
                                      'kind="full"')]
    assert order == sorted(order)
    # Every call either prompt names is a tool this server lists.
    for called in set(re.findall(r"`([a-z_]+)\(", text + ptext)) | set(re.findall(r"`([a-z_]+)`", text + ptext)):
        if called.startswith(("checklist_", "estimate_", "gate_", "plan_")):
            assert called in tools, called

"""Estimator results become checklist evidence, item by item.

Why an explicit mapping: evidence schemas refuse unknown fields so a tool wired to the wrong item
is caught; this module is the one place that says which estimate number answers which playbook
item (pre-estimation §7), and which tool supplied it.

Why one batch per call: everything one tool call answers is recorded in one transaction
(:func:`~gpu_preflight.checklist.record_batch`), stamped with the GPU option and price it was computed
for, so a crash cannot leave half of one estimate beside half of another, and the gate can tell a
mix of two calls (H100 memory fit, RTX 4090 cost table) from one estimate.
"""

from __future__ import annotations

from typing import Any

from gpu_preflight.checklist import checklist_status, record_batch
from gpu_preflight.checklist.store import latest_evidence, open_db
from gpu_preflight.checklist.views import ChecklistStatus
from gpu_preflight.tools.estimator.estimate import RunEstimate
from gpu_preflight.tools.estimator.spec import RunSpec
from gpu_preflight.tools.offers.options import PlanResult


def estimate_evidence(e: RunEstimate, *, include_time_cost: bool = True) -> dict[str, dict[str, Any]]:
    """The pre-estimate items one estimate answers, as evidence dicts."""
    g, c = e.memory.gpu, e.memory.cpu
    tp = e.throughput
    items: dict[str, dict[str, Any]] = {
        "memory_fit": {
            "gpu_ram_gb": g.gpu_ram_gb, "gpu_peak_gb": g.peak_gb, "gpu_required_gb": g.required_gb,
            "gpu_verdict": g.verdict, "gpu_verdict_basis_gb": g.verdict_basis_gb, "cpu_ram_gb": c.cpu_ram_gb,
            "cpu_required_gb": c.required_gb, "cpu_verdict": c.verdict,
        },
        "throughput_prediction": {
            "method": tp.method, "tokens_per_s": tp.tokens_per_s.base, "confidence": tp.confidence,
            **({"mfu_assumed": tp.mfu_assumed} if tp.mfu_assumed is not None else {}),
        },
        "setup_debug_tax": {
            "setup_debug_hours": e.tax.setup_debug_hours, "wall_hours": e.tax.wall_hours,
            "setup_debug_tax": e.tax.setup_debug_tax,
            "expensive_hardware_justified": e.tax.expensive_hardware_justified,
        },
        "validation_gates": {
            "window_minutes": float(e.validation_gates.window_minutes),
            "min_throughput_ratio": e.validation_gates.min_throughput_ratio,
            "min_gpu_util_pct": e.validation_gates.min_gpu_util_pct,
            "max_mem_used_pct": e.validation_gates.max_mem_used_pct,
            "consecutive_windows": e.validation_gates.consecutive_windows,
            "early_checkpoint_step": e.validation_gates.early_checkpoint_step,
            "expected_tokens_per_s": e.validation_gates.expected_tokens_per_s,
        },
    }
    if include_time_cost and e.cost_usd.base is not None:
        items["time_cost_table"] = {
            "time_hours": e.time_hours.model_dump(), "cost_usd": e.cost_usd.model_dump(),
            "dph_total_usd": e.train.dph_total_usd,
        }
    return items


def attach_items(checklist_id: str, spec: RunSpec, items: dict[str, dict[str, Any]], tool: str,
                 context: dict[str, Any] | None = None) -> ChecklistStatus:
    """Record the items as evidence computed for ``spec`` by ``tool``, all in one transaction; return
    the checklist status. ``context`` is the GPU option and price the call computed for."""
    if items:
        record_batch(checklist_id, items, source=tool, spec=spec.model_dump(mode="json", exclude_none=True),
                     context=context)
    return checklist_status(checklist_id)


def estimate_context(e: RunEstimate) -> dict[str, Any]:
    """The offer an estimate is for: ``"<n>x <GPU>"`` (as the option table names it) and its price."""
    return {"gpu_option": f"{e.gpu.num_gpus}x {e.gpu.name}", "dph_total_usd": e.train.dph_total_usd}


def plan_options_rows(checklist_id: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The option rows of the checklist's newest time/cost table, when computed for this same spec."""
    from contextlib import closing

    from gpu_preflight.checklist.spechash import spec_hash

    with closing(open_db()) as conn:
        table = latest_evidence(conn, checklist_id).get("time_cost_table")
    if table is None or table.spec_hash != spec_hash(spec):
        return []
    return list(table.evidence.get("options", []))


def offer_host_ram(options: list[dict[str, Any]], context: dict[str, Any]) -> float | None:
    """Host RAM of the offer the checklist's option table lists for this GPU option and price.

    Why: the playbook asks for the CPU RAM figure, and an estimate for a catalogue GPU has none;
    the offer the agent picked from ``plan_options`` carries it (Vast's share of the host's RAM).
    Only an exact option match at the same price (within 1%) counts.
    """
    price = context.get("dph_total_usd")
    if price is None:
        return None
    want = str(context["gpu_option"]).lower()
    for row in options:
        ram = row.get("cpu_ram_gb")
        if (ram is not None and str(row.get("gpu_option", "")).lower() == want
                and abs(float(row["dph_total_usd"]) - float(price)) <= 0.01 * float(price)):
            return float(ram)
    return None


def stage_a_evidence(e: RunEstimate, *, reliability: float | None = None) -> dict[str, Any]:
    """Run-calibrated Stage A from an estimate: only obvious dead ends fail ("not obviously bad")."""
    net = e.memory.network
    notes = []
    if net.inet_down_mbps is None:
        notes.append("network speed unknown")
    if reliability is None:
        notes.append("reliability unknown")
    # Unknown is not ok (null): Stage A's item stays open until the host's RAM and disk are known.
    cpu, disk = e.memory.cpu.verdict, e.memory.disk.verdict
    evidence: dict[str, Any] = {
        "vram_fits": e.memory.gpu.verdict != "fail",
        "cpu_ram_ok": None if cpu == "unknown" else cpu != "fail",
        "disk_ok": None if disk == "unknown" else disk != "fail",
        "reliability_network_ok": not net.dominates_setup and (reliability is None or reliability >= 0.9),
    }
    if notes:
        evidence["notes"] = "; ".join(notes)
    return evidence


def _policy(checklist_id: str) -> str:
    return checklist_status(checklist_id).policy


def attach_estimate(checklist_id: str, spec: RunSpec, e: RunEstimate, tool: str = "estimate_run") -> ChecklistStatus:
    """Attach what ``tool`` answers for the checklist's policy.

    pre-estimate: estimate_memory fills memory_fit; estimate_run fills every item it can.
    run-calibrated: an estimate answers Stage A (the minimal pre-rent checks) only; the rest comes
    from the probe.
    """
    context = estimate_context(e)
    if _policy(checklist_id) == "run-calibrated":
        return attach_items(checklist_id, spec, {"stage_a_checks": stage_a_evidence(e)}, tool, context)
    items = estimate_evidence(e)
    options = plan_options_rows(checklist_id, spec.model_dump(mode="json", exclude_none=True))
    if options and "time_cost_table" in items:  # the option table stays beside the chosen offer's figures
        items["time_cost_table"]["options"] = options
    if items["memory_fit"]["cpu_ram_gb"] is None:
        ram = offer_host_ram(options, context)
        if ram is not None:
            from gpu_preflight.tools.estimator.memory_host import cpu_verdict

            items["memory_fit"] |= {"cpu_ram_gb": ram, "cpu_verdict": cpu_verdict(e.memory.cpu.required_gb, ram)}
    if tool == "estimate_memory":
        items = {"memory_fit": items["memory_fit"]}
    return attach_items(checklist_id, spec, items, tool, context)


def plan_evidence(plan: PlanResult, setup_debug_hours: float) -> dict[str, dict[str, Any]]:
    """The option table answers time_cost_table (with its rows) and the tax, for the top-ranked offer."""
    if not plan.rows:
        return {}
    best = plan.rows[0]
    options = [{
        "gpu_option": r.gpu_option, "dph_total_usd": r.dph_total_usd, "gpu_ram_gb": r.vram_gb,
        "cpu_ram_gb": r.cpu_ram_gb, "tflops": r.tflops, "hbm_bw_gbps": r.hbm_bw_gbps,
        "pred_tokens_per_s": r.pred_tokens_per_s, "time_hours": r.time_hours.model_dump(),
        "cost_usd": r.cost_usd.model_dump(), "setup_debug_tax": r.setup_debug_tax,
        "optimization_effort": r.optimization_effort, "major_risks": [x.message for x in r.major_risks],
        "transfer_usd": r.transfer_usd,
    } for r in plan.rows]
    return {
        "time_cost_table": {"time_hours": best.time_hours.model_dump(), "cost_usd": best.cost_usd.model_dump(),
                            "dph_total_usd": best.dph_total_usd, "transfer_usd": best.transfer_usd,
                            "options": options},
        "setup_debug_tax": {"setup_debug_hours": setup_debug_hours, "wall_hours": best.time_hours.base,
                            "setup_debug_tax": best.setup_debug_tax,
                            "expensive_hardware_justified": best.setup_debug_tax <= 0.25},
    }


def attach_plan(checklist_id: str, spec: RunSpec, plan: PlanResult) -> ChecklistStatus:
    """pre-estimate: the table answers time_cost_table and the tax. run-calibrated: Stage A holds when
    at least one offer passed every hard fit check (rejected offers failed one)."""
    if _policy(checklist_id) == "run-calibrated":
        if not plan.rows:
            items = {"stage_a_checks": {"vram_fits": False, "cpu_ram_ok": False, "disk_ok": False,
                                        "reliability_network_ok": False, "notes": "no offer passed the fit checks"}}
        else:
            best = plan.rows[0]
            # Disk is bought with the rental (the price is repriced for the run's disk); host RAM is the offer's.
            items = {"stage_a_checks": {"vram_fits": True, "cpu_ram_ok": True if best.cpu_ram_gb else None,
                                        "disk_ok": True,
                                        "reliability_network_ok": not any(
                                            r.code in ("low_reliability", "slow_download") for r in best.major_risks),
                                        "notes": f"top offer {best.gpu_option} (id {best.offer_id})"}}
        return attach_items(checklist_id, spec, items, "plan_options", _plan_context(plan))
    setup = spec.overheads.setup_debug_hours
    return attach_items(checklist_id, spec, plan_evidence(plan, 1.0 if setup is None else setup), "plan_options",
                        _plan_context(plan))


def _plan_context(plan: PlanResult) -> dict[str, Any] | None:
    """The top-ranked offer, which the table's items describe."""
    if not plan.rows:
        return None
    return {"gpu_option": plan.rows[0].gpu_option, "dph_total_usd": plan.rows[0].dph_total_usd}

"""A calibration as run-calibrated checklist evidence, item by item (probe, live estimate, tax, decision).

Why a separate mapping: the checklist's evidence schemas are strict and check the numbers against
each other (cost = hours x $/h, hours = setup + train + eval); this is the one place that says which
calibration number answers which item. Items the calibration cannot answer honestly (no GPU
utilization measured, no price) are left out with the reason, never filled with a made-up value.
"""

from __future__ import annotations

from typing import Any

from gpu_preflight.tools.estimator.throughput import Scenarios

from .calibrate import Calibration, Probe

GB_PER_MIB = 1048576 / 1e9


def _probe_item(cal: Calibration, probe: Probe) -> dict[str, Any] | str:
    missing = [k for k in ("gpu_util_pct", "mem_util_pct", "vram_used_gb") if getattr(probe, k) is None]
    if missing:
        return f"probe lacks {', '.join(missing)}"
    item: dict[str, Any] = {
        "median_step_time_s": float(cal.step_time_s),
        "eval_runtime_s": float(probe.eval_runtime_s) if probe.eval_runtime_s else None,
        "gpu_util_pct": float(probe.gpu_util_pct or 0.0),
        "mem_util_pct": float(probe.mem_util_pct or 0.0),
        "vram_used_gb": float(probe.vram_used_gb or 0.0),
        "transfer_mbps": float(probe.transfer_mbps) if probe.transfer_mbps else None,
        "setup_debug_hours_so_far": float(probe.setup_debug_hours_so_far),
        "steps_measured": int(probe.steps_measured),
        "time_capped": probe.time_capped,
    }
    if probe.gpu_ram_gb is not None:
        item["gpu_ram_gb"] = float(probe.gpu_ram_gb)
    if probe.probe_minutes is not None:
        item["probe_minutes"] = float(probe.probe_minutes)
    return item


def _positive(*values: Scenarios) -> bool:
    return all((getattr(s, k) or 0) > 0 for s in values for k in ("optimistic", "base", "pessimistic"))


def _live_item(cal: Calibration) -> dict[str, Any] | str:
    dph = cal.dph_total_usd
    if dph is None:
        return "no price (dph_total_usd): cost_usd cannot be given"
    if not _positive(cal.time_hours, cal.cost_usd):
        return "time or cost rounds to 0: nothing to estimate"
    rows: list[dict[str, Any]] = [{
        "gpu_option": f"{cal.num_gpus}x {cal.gpu} (probe, stay)", "dph_total_usd": float(dph),
        "pred_tokens_per_s": float(cal.tokens_per_s), "pred_steps_per_s": float(cal.steps_per_s),
        "time_hours": cal.time_to_finish_hours.model_dump(), "cost_usd": cal.cost_to_finish_usd.model_dump(),
        "decision": "keep" if cal.decision.decision == "keep" else None,
    }] if _positive(cal.time_to_finish_hours, cal.cost_to_finish_usd) else []
    for o in cal.options:
        consistent = all(
            abs((getattr(o.cost_to_finish_usd, k) or 0) - (getattr(o.time_to_finish_hours, k) or 0) * o.dph_total_usd)
            <= 0.01 + 0.001 * o.dph_total_usd + 0.005 * (getattr(o.cost_to_finish_usd, k) or 0)
            for k in ("optimistic", "base", "pessimistic"))
        if not consistent or not _positive(o.time_to_finish_hours, o.cost_to_finish_usd):
            continue  # download billed on top of hours x $/h: the schema's cost rule would refuse the row
        rows.append({
            "gpu_option": f"{o.gpu_option} (offer {o.offer_id})", "dph_total_usd": float(o.dph_total_usd),
            "pred_tokens_per_s": float(o.pred_tokens_per_s), "time_hours": o.time_to_finish_hours.model_dump(),
            "cost_usd": o.cost_to_finish_usd.model_dump(), "transfer_usd": float(o.transfer_usd),
            "major_risks": o.risks,
            "decision": "switch" if cal.decision.switch_to_offer == str(o.offer_id) else None,
        })
    for row in rows:
        if row["decision"] is None:
            del row["decision"]
    return {
        "steps_per_s": float(cal.steps_per_s), "target_steps": int(cal.target_steps),
        "time_hours": cal.time_hours.model_dump(), "cost_usd": cal.cost_usd.model_dump(),
        "dph_total_usd": float(dph), "setup_debug_hours": float(cal.tax.setup_debug_hours),
        "eval_overhead_hours": float(cal.eval_overhead_hours), "options": rows,
    }


def calibration_evidence(cal: Calibration, probe: Probe) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(items it answers, items left out with why) for the run-calibrated policy."""
    items: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for name, built in (("probe_measurements", _probe_item(cal, probe)), ("live_estimate", _live_item(cal))):
        if isinstance(built, str):
            skipped[name] = built
        else:
            items[name] = built
    items["setup_debug_tax"] = {
        "setup_debug_hours": float(cal.tax.setup_debug_hours), "wall_hours": float(cal.tax.wall_hours),
        "setup_debug_tax": float(cal.tax.setup_debug_tax),
        "expensive_hardware_justified": cal.tax.expensive_hardware_justified,
    }
    minutes = probe.minutes_since_launch if probe.minutes_since_launch is not None else probe.probe_minutes
    if minutes is None:
        minutes = probe.steps_measured * cal.step_time_s / 60
    if cal.decision.decision == "wait":  # not a decision: the checklist's item stays open, the gate closed
        skipped["decision"] = f"wait: {cal.decision.reason}"
        return items, skipped
    decision: dict[str, Any] = {
        "decision": cal.decision.decision, "reason": cal.decision.reason[:2000],
        "decided_within_minutes": round(float(minutes), 3),
    }
    if cal.decision.switch_to_offer is not None:
        decision["switch_to_offer"] = cal.decision.switch_to_offer
    items["decision"] = decision
    return items, skipped

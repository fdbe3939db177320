"""The playbook's option table as markdown (MCP text) and as aligned terminal text (the CLI)."""

from __future__ import annotations

from gpu_preflight.tools.common.render import fmt_scenarios, table
from gpu_preflight.tools.offers.options import PlanResult

PLAYBOOK_COLUMNS = ["GPU option", "$/h", "VRAM", "CPU RAM", "TFLOPS", "HBM BW", "pred tokens/s",
                    "time (opt/base/pess)", "cost (opt/base/pess)", "setup/debug tax %", "optimization effort",
                    "major risks", "captured"]


def plan_markdown(plan: PlanResult, max_rejected: int = 10) -> str:
    """The playbook's option table, then the rejected offers with their reasons."""
    rows = [[
        f"{r.gpu_option} (id {r.offer_id})", f"{r.dph_total_usd:.3f}", f"{r.vram_gb:.0f} GB",
        "?" if r.cpu_ram_gb is None else f"{r.cpu_ram_gb:.0f} GB",
        f"{r.tflops:.0f}" + ("*" if r.tflops_source == "vast_fp32" else ""), f"{r.hbm_bw_gbps:.0f} GB/s",
        f"{r.pred_tokens_per_s:,.0f}", fmt_scenarios(r.time_hours, digits=1) + " h",
        fmt_scenarios(r.cost_usd, unit="$", digits=2), f"{r.setup_debug_tax:.0%}", r.optimization_effort,
        ", ".join(x.code for x in r.major_risks) or "-", r.captured_on or "?",
    ] for r in plan.rows]
    out = [_plan_header(plan), ""]
    out.append(table(PLAYBOOK_COLUMNS, rows) if rows else "No offer fits.")
    out += _plan_footer(plan, max_rejected)
    return "\n".join(out)


def plan_text(plan: PlanResult) -> str:
    """The option table aligned for a terminal (same columns as the markdown)."""
    rows = [[
        f"{r.gpu_option} #{r.offer_id}", f"{r.dph_total_usd:.3f}", f"{r.vram_gb:.0f}G",
        "?" if r.cpu_ram_gb is None else f"{r.cpu_ram_gb:.0f}G", f"{r.tflops:.0f}", f"{r.hbm_bw_gbps:.0f}",
        f"{r.pred_tokens_per_s:,.0f}", fmt_scenarios(r.time_hours, digits=1), fmt_scenarios(r.cost_usd, "$", 2),
        f"{r.setup_debug_tax:.0%}", r.optimization_effort, ",".join(x.code for x in r.major_risks) or "-",
        r.captured_on or "?",
    ] for r in plan.rows]
    grid = [PLAYBOOK_COLUMNS, *rows]
    widths = [max(len(str(row[i])) for row in grid) for i in range(len(PLAYBOOK_COLUMNS))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in grid]
    lines.insert(1, "  ".join("-" * w for w in widths))
    body = lines if plan.rows else ["No offer fits."]
    return "\n".join([_plan_header(plan), "", *body, *_plan_footer(plan)])


def _plan_header(plan: PlanResult) -> str:
    source = "the bundled sample" if plan.offers_sample else plan.offers_source
    return f"Offers: {source}, {plan.offers_age}; ranked by base {plan.ranked_by}."


def _plan_footer(plan: PlanResult, max_rejected: int = 10) -> list[str]:
    out: list[str] = []
    if plan.rows_omitted:
        out.append(f"({plan.rows_omitted} more fitting offers not shown)")
    if plan.rejected:
        out += ["", f"Rejected ({len(plan.rejected)}):"]
        out += [f"- {x.gpu_option} (id {x.offer_id}): {'; '.join(x.reasons)}" for x in plan.rejected[:max_rejected]]
        if len(plan.rejected) > max_rejected:
            out.append(f"- ... {len(plan.rejected) - max_rejected} more")
    out += ["", f"Recommendation: {plan.recommendation}"]
    if any(r.tflops_source == "vast_fp32" for r in plan.rows):
        out.append("* TFLOPS from Vast's FP32 total_flops (GPU not in the catalogue)")
    for note in plan.warnings:
        out.append(f"Note: {note}")
    return out

"""Short markdown renderings for people and for the text beside structured MCP results."""

from __future__ import annotations

from collections.abc import Sequence

from gpu_preflight.tools.estimate import RunEstimate
from gpu_preflight.tools.options import PlanResult
from gpu_preflight.tools.throughput import Scenarios


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table.

    >>> print(table(["a", "b"], [[1, "x|y"]]))
    | a | b |
    |---|---|
    | 1 | x\\|y |
    """
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_scenarios(s: Scenarios, unit: str = "", digits: int = 1) -> str:
    def one(v: float | None) -> str:
        return "n/a" if v is None else f"{unit}{v:,.{digits}f}"

    return f"{one(s.optimistic)} / {one(s.base)} / {one(s.pessimistic)}"


def estimate_markdown(e: RunEstimate) -> str:
    g, c, d = e.memory.gpu, e.memory.cpu, e.memory.disk
    tp = e.throughput
    head = (f"**{e.model.name}** ({e.model.params_total / 1e9:.2f}B params, {e.model.params_trainable / 1e9:.3f}B "
            f"trainable) on {e.gpu.num_gpus}x {e.gpu.name}")
    rows: list[list[object]] = [
        ["GPU memory (refined, nvidia-smi view)", f"{g.nvml_used_gb:.1f} GB of {g.gpu_ram_gb:.1f} GB "
         f"({g.utilization_ratio:.0%}) -> {g.verdict}"],
        ["GPU peak reserved / playbook required x1.2", f"{g.peak_gb:.1f} GB / {g.required_gb:.1f} GB "
         f"(playbook verdict {g.verdict_playbook})"],
        ["CPU RAM required (playbook)", f"{c.required_gb:.1f} GB ({c.required_gb_playbook:.1f} GB) -> {c.verdict}"],
        ["Disk required", f"{d.required_gb:.1f} GB -> {d.verdict}"],
        [f"tokens/s ({tp.method}, {tp.confidence} confidence; x{tp.scenario_factors['optimistic']:g} / x1 / "
         f"x{tp.scenario_factors['pessimistic']:g})", fmt_scenarios(tp.tokens_per_s, digits=0)],
        ["time h (opt/base/pess)", fmt_scenarios(e.time_hours, digits=2)],
        ["cost (opt/base/pess)", fmt_scenarios(e.cost_usd, unit="$", digits=2)],
        ["setup/debug tax", f"{e.setup_debug_tax:.1%} ({'ok' if e.tax.expensive_hardware_justified else 'over 25%'})"],
    ]
    out = [head, "", table(["", "estimate"], rows), "", f"Next step: {e.next_step}"]
    if e.warnings:
        out += ["", "Warnings: " + "; ".join(e.warnings)]
    return "\n".join(out)


PLAYBOOK_COLUMNS = ["GPU option", "$/h", "VRAM", "CPU RAM", "TFLOPS", "HBM BW", "pred tokens/s",
                    "time (opt/base/pess)", "cost (opt/base/pess)", "setup/debug tax %", "optimization effort",
                    "major risks"]


def plan_markdown(plan: PlanResult, max_rejected: int = 10) -> str:
    """The playbook's option table, then the rejected offers with their reasons."""
    rows = [[
        f"{r.gpu_option} (id {r.offer_id})", f"{r.dph_total_usd:.3f}", f"{r.vram_gb:.0f} GB",
        "?" if r.cpu_ram_gb is None else f"{r.cpu_ram_gb:.0f} GB",
        f"{r.tflops:.0f}" + ("*" if r.tflops_source == "vast_fp32" else ""), f"{r.hbm_bw_gbps:.0f} GB/s",
        f"{r.pred_tokens_per_s:,.0f}", fmt_scenarios(r.time_hours, digits=1) + " h",
        fmt_scenarios(r.cost_usd, unit="$", digits=2), f"{r.setup_debug_tax:.0%}", r.optimization_effort,
        ", ".join(x.code for x in r.major_risks) or "-",
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
    ] for r in plan.rows]
    grid = [PLAYBOOK_COLUMNS, *rows]
    widths = [max(len(str(row[i])) for row in grid) for i in range(len(PLAYBOOK_COLUMNS))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in grid]
    lines.insert(1, "  ".join("-" * w for w in widths))
    body = lines if plan.rows else ["No offer fits."]
    return "\n".join([_plan_header(plan), "", *body, *_plan_footer(plan)])


def _plan_header(plan: PlanResult) -> str:
    return f"Offers: {plan.offers_source}, {plan.offers_age}; ranked by base {plan.ranked_by}."


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

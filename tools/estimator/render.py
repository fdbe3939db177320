"""The estimate as a short markdown table, for the CLI and the text beside ``estimate_run``'s result."""

from __future__ import annotations

from gpu_preflight.tools.common.render import fmt_scenarios, table
from gpu_preflight.tools.estimator.estimate import RunEstimate


def estimate_markdown(e: RunEstimate) -> str:
    g, c, d = e.memory.gpu, e.memory.cpu, e.memory.disk
    tp = e.throughput
    head = (f"**{e.model.name}** ({e.model.params_total / 1e9:.2f}B params, {e.model.params_trainable / 1e9:.3f}B "
            f"trainable) on {e.gpu.num_gpus}x {e.gpu.name}")
    rows: list[list[object]] = [
        ["GPU memory (refined, nvidia-smi view)", f"{g.nvml_used_gb:.1f} GB of {g.gpu_ram_gb:.1f} GB "
         f"({g.utilization_ratio:.0%}{', while loading' if g.peak_phase == 'loading' else ''}) -> {g.verdict}"],
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

"""Short markdown renderings for people and for the text beside structured MCP results."""

from __future__ import annotations

from collections.abc import Sequence

from gpu_preflight.tools.estimate import RunEstimate
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
        [f"tokens/s ({tp.method}, {tp.confidence} confidence)", fmt_scenarios(tp.tokens_per_s, digits=0)],
        ["time h (opt/base/pess)", fmt_scenarios(e.time_hours, digits=2)],
        ["cost (opt/base/pess)", fmt_scenarios(e.cost_usd, unit="$", digits=2)],
        ["setup/debug tax", f"{e.setup_debug_tax:.1%} ({'ok' if e.tax.expensive_hardware_justified else 'over 25%'})"],
    ]
    out = [head, "", table(["", "estimate"], rows), "", f"Next step: {e.next_step}"]
    if e.warnings:
        out += ["", "Warnings: " + "; ".join(e.warnings)]
    return "\n".join(out)

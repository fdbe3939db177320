"""The probe scenario shared by the calibrate tests (library and MCP): a LoRA run of Llama-3.2-1B
probed for 50 steps on an RTX 4090 at $2.50/h."""

from __future__ import annotations

from typing import Any

SPEC: dict[str, Any] = {
    "model": {"name": "llama-3.2-1b"},
    "training": {"method": "lora", "lora_rank": 16, "seq_len": 2048, "micro_batch": 2},
    "target": {"target_steps": 36000},
    "overheads": {"setup_debug_hours": 1.0, "eval_runtime_s": 40.0, "eval_every_steps": 1000},
}
PROBE: dict[str, Any] = {
    "gpu": "RTX 4090", "median_step_time_s": 0.5, "steps_measured": 50, "dph_total_usd": 2.5,
    "setup_debug_hours_so_far": 0.5, "eval_runtime_s": 40.0, "gpu_util_pct": 88.0, "mem_util_pct": 55.0,
    "vram_used_gb": 20.0, "gpu_ram_gb": 24.0, "probe_minutes": 8.0,
}

"""The playbook's optimization menu (section 4), in its order, each item judged for this spec.

The order is the playbook's (low complexity first); an item is ``applicable`` when doing it now
would help this run, with the reason either way, so an agent does not reach for
``torch.compile`` or a distributed stack before batch sizing.
"""

from __future__ import annotations

from pydantic import BaseModel

from gpu_preflight.tools.estimator.memory_gpu import PASS_RATIO, GpuMemoryFit
from gpu_preflight.tools.estimator.spec import RunSpec


class MenuItem(BaseModel):
    rank: int
    key: str
    title: str
    applicable: bool
    reason: str


def optimization_menu(spec: RunSpec, gpu: GpuMemoryFit, has_baseline: bool,
                      checkpointing_peak_gb: float | None) -> list[MenuItem]:
    t = spec.training
    memory_bound = gpu.verdict != "pass"
    ratio = gpu.utilization_ratio
    items: list[tuple[str, str, bool, str]] = []
    if t.precision == "fp32":
        items.append(("mixed_precision", "Confirm mixed precision (bf16/fp16) and sane batch sizing", True,
                      "training in fp32: bf16/fp16 tensor cores are 2-16x faster and halve activations"))
    else:
        items.append(("mixed_precision", "Confirm mixed precision (bf16/fp16) and sane batch sizing", False,
                      f"already {t.precision}; keep global_batch consistent when changing micro_batch"))
    if not memory_bound and ratio < 0.6:
        room = PASS_RATIO / ratio if ratio > 0 else 1.0
        items.append(("increase_micro_batch", "Increase micro-batch toward a safe high-use zone", True,
                      f"memory at {ratio:.0%} of the GPU; about {room:.1f}x headroom to the 80% line "
                      "(activations scale with micro_batch, states do not)"))
    else:
        items.append(("increase_micro_batch", "Increase micro-batch toward a safe high-use zone", False,
                      f"memory already at {ratio:.0%} of the GPU"))
    items.append(("data_pipeline", "Tune the input pipeline (num_workers, pin_memory=True)", True,
                  "cannot be judged before the run: watch the GPU-util < 60% trigger in the first windows"))
    items.append(("logging_overhead", "Reduce logging overhead and per-step callbacks", True,
                  "cheap to do; step-time spikes at logging intervals show it in telemetry"))
    has_eval = spec.overheads.eval_runtime_s is not None or bool(spec.overheads.eval_ckpt_overhead_hours)
    items.append(("no_grad_eval", "Use torch.no_grad()/inference_mode for eval-only paths", has_eval,
                  "eval is part of this run" if has_eval else "no eval configured"))
    items.append(("torch_compile", "Consider torch.compile after the baseline works", has_baseline,
                  "a baseline exists: compile can help (validate correctness and startup time)" if has_baseline
                  else "no baseline yet: get a working probe first"))
    if t.activation_checkpointing:
        items.append(("gradient_checkpointing", "Gradient checkpointing only when memory-bound", True,
                      "chosen in the spec: its recompute slowdown is applied to the throughput estimate"))
    elif memory_bound and gpu.peak_phase == "loading":
        items.append(("gradient_checkpointing", "Gradient checkpointing only when memory-bound", False,
                      "the peak is set while the model loads (quant_load), before any activation exists"))
    elif memory_bound:
        after = f" (peak would be about {checkpointing_peak_gb:.1f} GB)" if checkpointing_peak_gb else ""
        items.append(("gradient_checkpointing", "Gradient checkpointing only when memory-bound", True,
                      f"memory verdict {gpu.verdict}: checkpointing trades ~20-33% speed for memory{after}"))
    else:
        items.append(("gradient_checkpointing", "Gradient checkpointing only when memory-bound", False,
                      "fits without it; it would cost ~20-33% speed for nothing"))
    heavy = t.num_gpus == 1 and t.sharding_resolved in ("zero1", "zero2", "zero3", "fsdp")
    items.append(("avoid_distributed_stack", "Avoid heavyweight distributed stacks on single-GPU runs", heavy,
                  f"{t.sharding_resolved} on one GPU adds setup friction and failure surface" if heavy
                  else "no distributed stack on a single GPU"))
    return [MenuItem(rank=i + 1, key=k, title=title, applicable=a, reason=r)
            for i, (k, title, a, r) in enumerate(items)]

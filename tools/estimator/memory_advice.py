"""Advice for a GPU memory peak that does not pass: kept apart so :mod:`.memory_gpu` stays the component model."""

from __future__ import annotations

from gpu_preflight.tools.estimator.spec import TrainingSpec

GB = 1e9


def gpu_memory_advice(verdict: str, t: TrainingSpec, act: float, logits: float, allocated: float,
                      adapter_copies: float, phase: str) -> list[str]:
    """What to change when the peak does not pass, largest lever first; the sizes are bytes per GPU.

    A peak set while loading has one fix: quantize tensor by tensor instead of the whole half model on the GPU.

    >>> t = TrainingSpec(method="qlora", lora_rank=8, seq_len=512, micro_batch=1, quant_load="full_model")
    >>> gpu_memory_advice("fail", t, 1e9, 1e9, 30e9, 0.0, "loading")[0][:45]
    'quantize while loading (quant_load per_tensor'
    >>> gpu_memory_advice("pass", t, 1e9, 1e9, 30e9, 0.0, "loading")
    []
    """
    if verdict == "pass":
        return []
    if phase == "loading":
        return ["quantize while loading (quant_load per_tensor): transformers from_pretrained(quantization_config="
                "...), or torchao quantize_(model, config, device='cuda') on a model still on the CPU"]
    tips = ["reduce micro_batch or seq_len first (playbook 1.1), keeping global_batch with grad_accum"]
    if not t.activation_checkpointing and act > 0.25 * allocated:
        tips.append("enable activation_checkpointing (about 20-33% slower, activations drop to one input per layer)")
    if adapter_copies > 0.1 * allocated:
        tips.append(f"lora_adapter_dtype base (PEFT: get_peft_model(..., autocast_adapter_dtype=False)) frees the "
                    f"fp32 adapters' input copies, {adapter_copies / GB:.1f} GB (PEFT upcasts them for stability)")
    if logits > 0.15 * allocated:
        tips.append("use a chunked/fused cross-entropy (Liger, Cut-Cross-Entropy): the logits buffer is large")
    if t.method == "full":
        tips.append("consider lora/qlora, an 8-bit optimizer, or zero3/fsdp sharding over more GPUs")
    if verdict == "fail":
        tips.append("or choose a GPU with more memory")
    return tips

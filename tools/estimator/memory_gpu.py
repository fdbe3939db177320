"""GPU memory fit: the playbook rule (section 1.1) beside a component model from the shape.

Playbook rule (kept as ``required_gb``): ``model_state = 18 * params_trainable`` for full
fine-tuning with AdamW in mixed precision, frozen weights at their dtype for LoRA/QLoRA,
``total = model_state + frozen + activations + kv_or_temp`` and ``required = 1.2 * total / 1e9``.

Why a refined model beside it: the 18 B/param constant is right for one regime only (fp32 master
weights, fp32 grads, fp32 Adam), and the rule says nothing about activations or the loss, which
is where peers are off 2-5x (``shared/notes/estimator-research.md`` §1.2). The refined model:

* counts weights, gradients, master weights and optimizer states by precision regime and
  optimizer, sharded by ZeRO stage / FSDP over ``num_gpus``;
* counts saved activations per layer from the shape (GQA, SwiGLU, RoPE, fp32 norm upcasts,
  eager attention scores), with full activation checkpointing keeping one layer input per layer;
* counts the logits/loss buffer ``~10 * b * s * V`` bytes (bf16 logits, fp32 upcast, fp32 grad),
  the largest single term for 128k vocabularies;
* takes the peak over the two moments that matter: end of forward (activations + logits alive,
  gradients only when accumulating) and the optimizer step (gradients + the foreach AdamW
  intermediate, activations freed);
* adds the caching allocator's reserve (``peak_gb`` predicts ``torch.cuda.max_memory_reserved``)
  and the CUDA context (``nvml_used_gb`` predicts what nvidia-smi shows, which is what OOMs).

The verdict compares ``nvml_used_gb`` with the playbook's bands: pass at or below 0.8 of the
GPU's memory, high OOM risk above 0.8 up to 0.9, fail above 0.9. The playbook figure's own
verdict is reported beside it (``verdict_playbook``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from gpu_preflight.tools.estimator.memory_advice import gpu_memory_advice
from gpu_preflight.tools.estimator.memory_knobs import (
    adapter_cast,
    adapter_copy_bytes_per_token,
    dequant_excess_bytes,
    eval_transient_bytes,
    fp32_stream,
    frozen_unsaved_bytes_per_token,
    load_peak_bytes,
    qlora_frozen_bytes,
)
from gpu_preflight.tools.estimator.modelshape import ResolvedModel, muon_share
from gpu_preflight.tools.estimator.spec import TrainingSpec

GB = 1e9
PLAYBOOK_BYTES_PER_PARAM = 18.0
PLAYBOOK_HEADROOM = 1.2
PASS_RATIO = 0.8
HIGH_RISK_RATIO = 0.9
ALLOCATOR_RESERVE_RATIO = 0.08
"""Reserved over allocated: torchtune PR #527 saw 14.0 GB allocated vs 16.0 reserved; 5-15% is usual."""
CUDA_CONTEXT_GB = 0.6
"""CUDA context and kernels with lazy module loading (the default since CUDA 11.7 / torch 1.13): 0.3-1.3 GB
across reports. Eager loading (older stacks) loads every kernel up front: the HF perf doc's V100 run (torch 1.x,
CUDA 11.2) measured 1,343 MiB; ``overheads.cuda_context_gb`` takes a measured figure."""

Verdict = Literal["pass", "high_oom_risk", "fail"]
Phase = Literal["forward_end", "optimizer_step", "eval", "loading"]


def verdict_for(ratio: float) -> Verdict:
    """The playbook's bands on ``needed / gpu_ram``.

    >>> verdict_for(0.8), verdict_for(0.8000001), verdict_for(0.9), verdict_for(0.91)
    ('pass', 'high_oom_risk', 'high_oom_risk', 'fail')
    """
    if ratio <= PASS_RATIO:
        return "pass"
    if ratio <= HIGH_RISK_RATIO:
        return "high_oom_risk"
    return "fail"


class GpuMemoryBreakdown(BaseModel):
    """Per-GPU components in GB; the peak is not their sum (see ``peak_phase``)."""

    weights_gb: float = Field(description="Working weights (half copies, or fp32 when training in fp32).")
    frozen_weights_gb: float = Field(description="Frozen base weights of LoRA/QLoRA (quantized for QLoRA).")
    master_weights_gb: float
    gradients_gb: float
    optimizer_gb: float
    activations_gb: float
    logits_gb: float = Field(description="Logits and cross-entropy buffers at the end of the forward.")
    gather_buffers_gb: float = Field(description="ZeRO-3/FSDP all-gather of two layers (current + prefetch).")
    ddp_buckets_gb: float = Field(description="DDP gradient buckets (a second gradient copy unless bucket views).")
    step_transient_gb: float = Field(description="foreach AdamW intermediate during optimizer.step().")
    dequant_gb: float = Field(default=0.0, description="QLoRA: a 4-bit weight dequantized for its matmul, beyond "
                              "the loss buffers it meets (the head's, when quantized).")
    eval_gb: float = Field(default=0.0, description="An eval pass over the resident state (eval_micro_batch).")
    load_gb: float = Field(default=0.0, description="QLoRA: allocated while the base model is loaded and quantized "
                           "(quant_load); the peak when it is the largest phase.")
    allocator_reserve_gb: float
    cuda_context_gb: float


class PlaybookMemory(BaseModel):
    model_state_gb: float
    frozen_weight_gb: float
    activations_gb: float
    kv_or_temp_gb: float
    total_gb: float
    required_gb: float


class GpuMemoryFit(BaseModel):
    gpu_ram_gb: float
    peak_gb: float = Field(description="Refined peak per GPU, no headroom: what torch.cuda.max_memory_reserved shows.")
    allocated_peak_gb: float = Field(description="What torch.cuda.max_memory_allocated shows.")
    nvml_used_gb: float = Field(description="peak_gb + CUDA context: what nvidia-smi shows; the verdict uses it.")
    required_gb: float = Field(description="The playbook's figure: 1.2 * (18*trainable + frozen + act + temp) / 1e9.")
    utilization_ratio: float = Field(description="nvml_used_gb / gpu_ram_gb.")
    verdict: Verdict
    verdict_basis: str
    verdict_basis_gb: float
    verdict_playbook: Verdict
    peak_phase: Phase
    breakdown: GpuMemoryBreakdown
    playbook: PlaybookMemory
    advice: list[str]


def _half(training: TrainingSpec) -> bool:
    return training.precision in ("bf16", "fp16", "fp8")  # fp8: float8 matmuls on bf16 tensors


def _fp32_adapters(t: TrainingSpec) -> bool:
    """LoRA/QLoRA adapters held in fp32 (``lora_adapter_dtype``): their weights, gradients and optimizer states
    are fp32 whatever the base precision (PEFT's ``cast_adapter_dtype``)."""
    return t.method != "full" and t.lora_adapter_dtype == "fp32"


def _half_activations(t: TrainingSpec) -> bool:
    """Activations in half precision: a half run, unless QLoRA's fp32 upcast makes the stream fp32."""
    return _half(t) and not fp32_stream(t)


def activation_bytes_per_token_per_layer(m: ResolvedModel, t: TrainingSpec) -> float:
    """Saved activations of one block for one token, without recompute.

    Elements saved for backward (Korthikanti et al. 2022 counting, flash/SDPA attention keeps no
    score matrix): attention: norm input, q/k/v input, q, k, v, attention output (+ q/k once more
    with RoPE: a margin, see below); MLP: norm input and output, gate, up, activation and product
    (gated) or fc1 output and activation (plain). Checked against real transformers on CPU
    (tests/test_memory_real_transformers.py): HF's BERT layer to 16 B per token, its Llama layer to
    exactly this count less ``q + kv`` elements, because ``apply_rotary_pos_emb`` keeps only the
    rotated q/k. That margin stays: the bench's GPU peaks sit above autograd's exact count (without it
    the trusted memory bias goes from -0.7 % to -3.4 %). Half precision adds fp32 norm inputs (~8h bytes): autocast
    runs norms in fp32 (``torch_compile`` fuses the norm and recomputes the upcast in backward: not
    saved). fp8 (torchao float8 linears) saves the same bf16 tensors: torchtitan's Llama-3.1-8B on 8 H100
    took 77.0 GiB with compile and 76.8 GiB with compile + float8 (benchmarks/llama3_h100_202412_torchtitan.md,
    Table 1). Dropout adds 1-byte masks. Eager attention keeps the softmax
    probabilities, ``n_heads * seq`` of them per token (fp32 under autocast plus a half copy). QLoRA after
    ``prepare_model_for_kbit_training`` saves fp32 tensors (:func:`.memory_knobs.fp32_stream`).

    >>> from gpu_preflight.tools.estimator.modelshape import resolve_model
    >>> from gpu_preflight.tools.estimator.spec import ModelSpec
    >>> m = resolve_model(ModelSpec(name="llama-3.2-1b"))
    >>> t = TrainingSpec(seq_len=2048, micro_batch=4)
    >>> round(activation_bytes_per_token_per_layer(m, t) / m.hidden_size, 1)  # autograd keeps 53.1h (CPU count)
    55.5
    """
    h, q, kv, inter = m.hidden_size, m.q_dim, m.kv_dim, m.intermediate_size
    half = _half_activations(t)
    elem = 2 if half else 4
    attention = 2 * h + 2 * q + 2 * kv + ((q + kv) if m.rotary else 0)
    mlp = 2 * h + (4 * inter if m.mlp_gated else 2 * inter)
    total = float((attention + mlp) * elem)
    if half and not t.torch_compile:
        total += 8 * h  # fp32 norm inputs under autocast
    if m.dropout:
        total += 2 * h  # 1-byte masks after attention and MLP
    if t.attention == "eager":
        # Softmax probabilities per head and key: fp32 under autocast plus the half copy the matmul
        # saves (6 B), or 4 B in fp32; dropout on them keeps its output (4 B) and mask (1 B).
        per_score = (6 if half else 4) + (5 if m.dropout else 0)
        total += per_score * m.n_heads * t.seq_len
    return total


SELECTIVE_AC_KEEP = 0.41
"""Selective (op-level) checkpointing keeps matmul outputs and recomputes cheap ops: torchtitan's
Llama-3.1-8B runs (8 and 128 H100s, ``bench/cases``) imply 0.40-0.42 of the unsaved activations."""
LOSS_BYTES = {"standard": 10.0, "hf": 14.0, "hf_legacy": 16.0, "no_upcast": 6.0, "chunked": 3.0, "fused": 0.5,
              "none": 0.0}
"""Per (token, vocab) entry at the loss, half precision (fp32 training adds 2: the logits are fp32 already).

* standard = bf16 logits + fp32 upcast + fp32 grad (torchtitan's loss: ``del pred`` before backward; its
  Llama-3.1-8B cases sit within 3 %);
* hf = transformers >= 4.46 causal-LM heads: ``logits = self.lm_head(...)`` stays bf16 in the returned output
  (2 B, alive through backward), ``ForCausalLMLoss`` upcasts (``logits = logits.float()``,
  src/transformers/loss/loss_utils.py, read at 0114da07) and ``cross_entropy`` saves the fp32 log-softmax
  (4 B); backward then holds the log-softmax grad and its input grad (4 + 4 B): 14 B at the head's backward;
* hf_legacy = transformers 4.36-4.45 (``LlamaForCausalLM.forward``: ``logits = logits.float()`` then
  ``shift_logits = logits[..., :-1, :].contiguous()``): the returned fp32 logits (4) and the saved
  log-softmax (4) stay while backward makes its grad and the shifted input's grad (4 + 4): 16 B;
* no_upcast = ``F.cross_entropy`` straight on the bf16 logits of a ``model.to(torch.bfloat16)`` loop without
  autocast (LLMs-from-scratch ch05/10_llm-training-speed/01_opt_single_gpu.py, ``calc_loss_batch``): the
  log-softmax is saved in bf16 (2 B) and backward adds its grad and the input grad (2 + 2 B); the logits
  themselves die with the loss function (6 B). In fp32 it is the standard loss (12 B);
* chunked = bf16 logits + one of 8 fp32 chunks (torchtune CEWithChunkedOutputLoss); fused = a hidden-size
  chunk; none = no vocabulary logits at all (a sequence-classification or regression head: ``b x labels``).

can-i-finetune-this (transformers 5.8.1, benchmarks/results/Qwen__Qwen2.5-1.5B-Instruct_qlora_s1024_b1_r16_steps3
.json) shows hf's two moments: 2.86 GiB allocated after the first forward (weights, checkpoints and 6 B per
logit) and a 4.02 GiB peak in backward (8 B more per logit: 14). Its reserved counter grows 18-20 B per logit
at 4,096 tokens (the allocator's cache of these large blocks), more than the 8 % reserve counted here."""


TRAINER_HF_LOSS_BYTES = 12.0
"""The hf loss under the HF Trainer (``framework = "hf_trainer"``): 12 B per logit, not 14.

Why: ``Trainer.compute_loss`` runs ``outputs = model(**inputs)`` and returns ``loss`` alone unless
``return_outputs``; ``training_step`` then calls ``self.accelerator.backward(loss)`` (src/transformers/trainer.py,
read at 000945a9), so ``outputs.logits`` (2 B) is freed before backward. What remains at the head's backward is the
saved fp32 log-softmax and its two gradients (4 + 4 + 4 B). The forward holds no more: a >= 4.46 head keeps 2 + 4 + 4
while ``cross_entropy`` runs; remote code that shifts a bf16 copy first (Qwen v1's ``QWenLMHeadModel``:
``shift_logits = lm_logits[..., :-1, :].contiguous()`` into ``CrossEntropyLoss``, which autocast runs in fp32) holds
2 + 2 + 4 + 4. Own loops that keep ``outputs`` alive through ``loss.backward()`` (PEFT's method comparison,
can-i-finetune-this) keep 14. Qwen v1's README profile (Trainer, 1.8B/7B/14B LoRA, 256-8,192 tokens) was +18 % (7B)
and +21 % (1.8B) at 8,192 tokens with 14 B, +11 % and +8 % with 12. Trainer subclasses (TRL, axolotl, LLaMA-Factory)
override ``compute_loss``; not read, so they keep 14."""


def activations_bytes(m: ResolvedModel, t: TrainingSpec) -> float:
    """All saved activations of one micro-batch on one GPU (ZeRO/FSDP do not shard activations); LoRA/QLoRA
    keep no input of a frozen, adapter-less linear (:func:`.memory_knobs.frozen_unsaved_bytes_per_token`), and fp32
    adapters keep their own copy of each adapted input (:func:`.memory_knobs.adapter_copy_bytes_per_token`)."""
    tokens = t.micro_batch * t.seq_len
    per_layer = (activation_bytes_per_token_per_layer(m, t) - frozen_unsaved_bytes_per_token(m, t)
                 + adapter_copy_bytes_per_token(m, t))
    if t.activation_checkpointing == "selective":
        return tokens * m.n_layers * per_layer * SELECTIVE_AC_KEEP
    if t.activation_checkpointing:
        resid = m.hidden_size * (2 if _half_activations(t) else 4)
        # One saved input per layer, plus one layer's full activations while it is recomputed.
        return tokens * (m.n_layers * resid + per_layer)
    return tokens * m.n_layers * per_layer


def _loss_bytes(t: TrainingSpec) -> float:
    if t.loss == "none":
        return 0.0
    if t.loss == "hf" and t.framework == "hf_trainer":
        return TRAINER_HF_LOSS_BYTES  # fp32 too: 4 (log-softmax) + 4 + 4; the fp32 logits die with ``outputs``
    if not _half(t):  # fp32 logits: no upcast copy to make, whatever the loss code says
        return LOSS_BYTES["standard" if t.loss == "no_upcast" else t.loss] + 2
    return LOSS_BYTES[t.loss]


def logits_bytes(m: ResolvedModel, t: TrainingSpec) -> float:
    """Logits + fp32 upcast + fp32 softmax grad with the stock cross-entropy; less with chunked/fused losses."""
    return float(t.micro_batch * t.seq_len * m.vocab_size * _loss_bytes(t))


def _optimizer_bytes_per_param(t: TrainingSpec, m: ResolvedModel) -> float:
    """Resident optimizer state per trainable parameter.

    Lion keeps one momentum (Chen et al. 2023, arXiv 2302.06675, Program 1); the 8-bit AdamWs two 1-byte
    moments (paged: the same bytes, in CUDA unified memory the driver may evict to the host under pressure,
    which this does not count on); Muon one momentum (``zeros_like(grad)``, KellerJordan/Muon) on the layers'
    matrices and AdamW's two moments on the rest (embeddings, head, norms)."""
    state = 4 if (t.precision == "fp32" or t.master_weights_fp32 or _fp32_adapters(t)) else 2
    if t.optimizer == "adamw":
        return 2 * state
    if t.optimizer in ("adamw_8bit", "paged_adamw_8bit"):
        return 2.0  # two 8-bit moments; block constants are negligible
    if t.optimizer in ("sgd", "lion"):
        return float(state)  # one momentum buffer
    if t.optimizer == "muon":
        share = muon_share(m)
        return share * state + (1 - share) * 2 * state
    return state * 2 / m.hidden_size  # adafactor: factored row+column second moments


def estimate_gpu_memory(
    m: ResolvedModel, t: TrainingSpec, params_trainable: int, gpu_ram_gb: float, *,
    cuda_context_gb: float = CUDA_CONTEXT_GB,
) -> GpuMemoryFit:
    n = t.num_gpus
    shard = t.sharding_resolved
    half = _half(t)
    wbytes = 2 if half else 4
    p_total, p_train = m.params_total, params_trainable
    full = t.method == "full"

    # Model states, unsharded, in bytes.
    weights: float
    frozen: float
    if full:
        weights = float(p_total * wbytes)
        frozen = 0.0
    else:
        weights = p_train * (4 if _fp32_adapters(t) else wbytes)  # adapter working copies
        frozen = qlora_frozen_bytes(m, t, wbytes) if t.method == "qlora" else float(p_total * wbytes)
    mixed = half and t.master_weights_fp32 and not _fp32_adapters(t)  # fp32 adapters are their own masters
    master = p_train * 4.0 if mixed else 0.0
    fp32_grads = mixed or not half or _fp32_adapters(t)
    grads = p_train * (4.0 if fp32_grads else 2.0)
    optimizer = p_train * _optimizer_bytes_per_param(t, m)
    foreach = t.optimizer in ("adamw", "muon") and t.optimizer_impl == "foreach" and not t.optimizer_in_backward
    adam_share = 1 - muon_share(m) if t.optimizer == "muon" else 1.0  # Muon's AdamW part only
    transient = p_train * adam_share * (4 if fp32_grads else 2) if foreach else 0.0

    # Sharding over data-parallel ranks.
    if shard in ("zero1",):
        master, optimizer, transient = master / n, optimizer / n, transient / n
    elif shard in ("zero2",):
        master, optimizer, grads, transient = master / n, optimizer / n, grads / n, transient / n
    elif shard in ("zero3", "fsdp"):
        weights, frozen, master, optimizer, grads, transient = (
            x / n for x in (weights, frozen, master, optimizer, grads, transient)
        )
    gather = 2 * m.layer_params * wbytes if shard in ("zero3", "fsdp") and n > 1 else 0.0
    ddp_buckets = grads if shard == "ddp" else 0.0
    if t.offload in ("optimizer", "optimizer_and_params"):
        master, optimizer, transient = 0.0, 0.0, 0.0
        grads = grads / 2 if mixed else grads  # fp32 grads live on the host; half grads stay for the copy
    if t.offload == "optimizer_and_params":
        weights = 0.0
        frozen = 0.0
        grads = 0.0  # FSDP CPU offload moves gradients to the host as they are reduced
    if t.optimizer_in_backward:
        grads = 2 * m.layer_params * (4.0 if (mixed or not half) else 2.0)  # about one layer in flight

    act = activations_bytes(m, t)
    adapter_copies = (act - activations_bytes(m, t.model_copy(update={"lora_adapter_dtype": "base"}))
                      if adapter_cast(t) else 0.0)
    logits = logits_bytes(m, t)
    dequant = dequant_excess_bytes(m, t, logits)
    resident = weights + frozen + master + optimizer + gather
    grads_kept = t.grad_accum > 1 or not t.zero_grad_set_to_none
    grads_in_forward = grads + ddp_buckets if grads_kept else 0.0
    forward_end = resident + act + logits + grads_in_forward + dequant
    step = resident + grads + ddp_buckets + transient
    evaluation = eval_transient_bytes(m, t, activation_bytes_per_token_per_layer(m, t), _loss_bytes(t))
    eval_peak = resident + (grads + ddp_buckets if not t.zero_grad_set_to_none else 0.0) + evaluation
    load = load_peak_bytes(m, t, wbytes, n if shard in ("zero3", "fsdp") else 1)
    phases: list[tuple[float, Phase]] = [(forward_end, "forward_end"), (step, "optimizer_step"),
                                         (eval_peak if evaluation else 0.0, "eval"), (load, "loading")]
    allocated, phase = max(phases, key=lambda p: p[0])  # the first of equals, as listed
    reserve = allocated * ALLOCATOR_RESERVE_RATIO
    peak = allocated + reserve
    used = peak + cuda_context_gb * GB
    ratio = used / (gpu_ram_gb * GB)

    # The playbook rule, with the same sharding so multi-GPU specs compare like with like.
    state_rule = PLAYBOOK_BYTES_PER_PARAM * p_train
    if shard in ("zero1", "zero2"):
        state_rule = 2 * p_train + (PLAYBOOK_BYTES_PER_PARAM - 2) * p_train / n
    elif shard in ("zero3", "fsdp"):
        state_rule /= n
    frozen_rule = 0.0 if full else frozen
    total_rule = state_rule + frozen_rule + act + logits
    required = PLAYBOOK_HEADROOM * total_rule / GB

    verdict = verdict_for(ratio)
    return GpuMemoryFit(
        gpu_ram_gb=round(gpu_ram_gb, 2),
        peak_gb=_gb(peak),
        allocated_peak_gb=_gb(allocated),
        nvml_used_gb=_gb(used),
        required_gb=round(required, 2),
        utilization_ratio=round(ratio, 4),
        verdict=verdict,
        verdict_basis="refined: nvml_used_gb (peak_gb + cuda_context_gb) against 0.8/0.9 of gpu_ram_gb",
        verdict_basis_gb=_gb(used),
        verdict_playbook=verdict_for(required / gpu_ram_gb),
        peak_phase=phase,
        breakdown=GpuMemoryBreakdown(
            weights_gb=_gb(weights), frozen_weights_gb=_gb(frozen), master_weights_gb=_gb(master),
            gradients_gb=_gb(grads), optimizer_gb=_gb(optimizer), activations_gb=_gb(act), logits_gb=_gb(logits),
            gather_buffers_gb=_gb(gather), ddp_buckets_gb=_gb(ddp_buckets), step_transient_gb=_gb(transient),
            allocator_reserve_gb=_gb(reserve), cuda_context_gb=cuda_context_gb, eval_gb=_gb(evaluation),
            dequant_gb=_gb(dequant), load_gb=_gb(load),
        ),
        playbook=PlaybookMemory(
            model_state_gb=_gb(state_rule), frozen_weight_gb=_gb(frozen_rule), activations_gb=_gb(act),
            kv_or_temp_gb=_gb(logits), total_gb=_gb(total_rule), required_gb=round(required, 2),
        ),
        advice=gpu_memory_advice(verdict, t, act, logits, allocated, adapter_copies, phase),
    )


def _gb(value: float) -> float:
    return round(value / GB, 3)

"""Host dispatch: the CPU time eager PyTorch spends issuing a micro-batch's operators.

Why: a framework launches every operator from the host. The GPU runs them asynchronously, so while each kernel
takes longer than its launch the host runs ahead and its cost is hidden; once the kernels are shorter than the
launches (a small micro-batch) the GPU waits for the host, and a micro-batch takes ``max(GPU time, host time)``,
not the sum. Overhead "doesn't scale with problem size (while compute and memory do)", so the tell is a step time
that stops shrinking with the tokens (Horace He, "Making Deep Learning Go Brrrr From First Principles", 2022,
horace.io/brrr_intro.html, section "Overhead"). Qwen's README profile (``bench/cases/published_extra.json``,
qwen1-*) shows exactly that: LoRA at batch 1 x 256 tokens ran 1.0 s per 8 micro-batches on an A100 for 1.8B
(1.2 s for 7B), where FLOPs said 0.14 s.

The host time of one micro-batch is ``ops x HOST_S_PER_OP`` with ``ops`` counted from the model's structure
(:func:`ops_per_micro_batch`): the forward's operators, once more for the recompute under activation
checkpointing, and the backward's autograd kernels. ``HOST_S_PER_OP`` is one constant from the literature, not
fitted on any case here: no ``bench/cases`` row is in-sample.

Scored on ``bench/cases`` (issue 18, H29): only the two Qwen rows at 256 tokens per micro-batch are host-bound;
1.8B +630% -> +59%, 7B +102% -> +43% (both now inside the band). Every other case's GPU work per micro-batch is
at least 1.5x its dispatch time (PEFT's L40S rows 0.24-0.43, can-i-finetune's 0.5B LoRA 0.66, llm.c 0.02), so
it does not move. What is left on the Qwen rows (measured 125 and 150 ms per micro-batch against 78 and 104 ms
of counted dispatch) is Qwen v1's remote code, HF Trainer and autocast work not counted as operators here.
Counting autocast's casts of PEFT's fp32 adapters (:data:`LORA_CAST_OPS`, Qwen's stack had fp32 adapters under
autocast) took them to +30 % and +16 %; counting Qwen v1's fused ``c_attn`` as the one adapted matrix it is
(``model.fused_qkv``: two adapter paths fewer per layer) took them back to +57 % and +41 %.
"""

from __future__ import annotations

from gpu_preflight.tools.estimator.memory_knobs import adapter_cast, adapter_input_dims
from gpu_preflight.tools.estimator.modelshape import ResolvedModel, layer_matrices
from gpu_preflight.tools.estimator.spec import TrainingSpec

HOST_S_PER_OP = 10e-6
"""Host time per eager operator: Python, the module call, the dispatcher and the CUDA launch together, of order
10 us (Horace He, op. cit., "Overhead"; the bare launch is a few us of it: pytorch.org/blog/accelerating-pytorch-
with-cuda-graphs and NVIDIA's CUDA Graph guide, docs.nvidia.com/dl-cuda-graph, "kernel launch overhead"). The round
literature figure is taken as is, not fitted; its exact wording in the post was not re-read for this change."""

NORM_OPS_RMS = 8
"""transformers' ``LlamaRMSNorm.forward``: to(fp32), pow, mean, add eps, rsqrt, mul, to(dtype), mul weight."""
NORM_OPS_LAYER_NORM = 1
"""``nn.LayerNorm`` is one fused ``native_layer_norm``."""
ROTARY_OPS = 14
"""``apply_rotary_pos_emb`` on q and k: each x*cos, rotate_half (two slices, neg, cat), *sin, add = 7, twice."""
ATTENTION_SHAPE_OPS = 6 + 3
"""q, k, v view + transpose (6); the attention kernel call, the output transpose and reshape (3)."""
LORA_OPS_PER_ADAPTER = 6
"""PEFT ``lora.Linear.forward`` per adapted matrix: input cast to the adapter dtype, dropout, lora_A, lora_B,
the scaling multiply and the add into the base output."""
LORA_CAST_OPS = {"pure": 1, "amp": 3}
"""fp32 adapters on a half stream (:func:`.memory_knobs.adapter_cast`) add per adapted matrix: ``pure``, the
fp32 sum's ``result.to(torch_result_dtype)``; ``amp``, autocast's casts of the fp32 input and of ``lora_A``'s and
``lora_B``'s weights to bf16 (the sum stays bf16)."""
QLORA_OPS_PER_LINEAR = 2
"""bitsandbytes ``Linear4bit``: ``dequantize_4bit`` (output allocation and kernel) before the matmul."""
HEAD_AND_LOSS_OPS = 20
"""Once per micro-batch: embedding, final norm, LM head, the shifted-logit slices, upcast, log-softmax, NLL."""
BACKWARD_OPS_PER_FORWARD_OP = 1.5
"""Autograd runs one node per differentiable forward op, whose formula launches 0-3 kernels (a view: none; mul:
two; a trainable linear: grad input and grad weight; a frozen one: grad input only): 1.5 assumed."""
RECOMPUTE_SELECTIVE_SHARE = 0.5
"""Selective checkpointing re-runs the element-wise ops (about half a block's operators), not the matmuls."""


def adapted_matrices_per_layer(m: ResolvedModel, t: TrainingSpec) -> int:
    """LoRA/QLoRA modules in one block (the LM head's, if named, is not a block's); 0 for full training."""
    if t.method not in ("lora", "qlora"):
        return 0
    return len(adapter_input_dims(m, t))


def forward_ops_per_layer(m: ResolvedModel, t: TrainingSpec) -> int:
    """Eager operators one decoder block issues in its forward (HF transformers' Llama block as the pattern).

    >>> from gpu_preflight.tools.estimator.modelshape import resolve_model
    >>> from gpu_preflight.tools.estimator.spec import ModelSpec, TrainingSpec
    >>> m = resolve_model(ModelSpec(name="llama-3.1-8b"))
    >>> forward_ops_per_layer(m, TrainingSpec(seq_len=512, micro_batch=1))  # 7 linears + 9 + 14 + 2 + 16 + 2
    50
    >>> forward_ops_per_layer(m, TrainingSpec(seq_len=512, micro_batch=1, method="lora", lora_rank=8))  # + 7 x 6
    92
    >>> forward_ops_per_layer(m, TrainingSpec(seq_len=512, micro_batch=1, method="lora", lora_rank=8,
    ...     lora_adapter_dtype="fp32", master_weights_fp32=False))  # + 7 x (6 + 1): the fp32 sum cast back
    99
    """
    mats = layer_matrices(m)
    norms = 2 * (NORM_OPS_LAYER_NORM if m.layer_norm else NORM_OPS_RMS)
    mlp = 2 if m.mlp_gated else 1  # activation (and the gate's multiply)
    ops = len(mats) + ATTENTION_SHAPE_OPS + (ROTARY_OPS if m.rotary else 0) + mlp + norms + 2  # 2 residual adds
    ops += 3 if m.dropout else 0  # attention-probability and two residual dropouts
    ops += (LORA_OPS_PER_ADAPTER + LORA_CAST_OPS.get(adapter_cast(t), 0)) * adapted_matrices_per_layer(m, t)
    if t.method == "qlora":
        ops += QLORA_OPS_PER_LINEAR * len(mats)
    return ops


def compiled_forward_ops_per_layer(m: ResolvedModel, t: TrainingSpec) -> int:
    """With ``torch_compile`` Inductor fuses the element-wise operators between two matmuls into one Triton kernel
    and launches the graph from generated code (PyTorch docs, "Introduction to torch.compile": it fuses pointwise
    ops and removes Python overhead): one matmul-like kernel plus at most one fused kernel each."""
    matmuls = len(layer_matrices(m)) + 1 + 2 * adapted_matrices_per_layer(m, t)  # linears, attention, lora A/B
    return 2 * matmuls


def ops_per_micro_batch(m: ResolvedModel, t: TrainingSpec) -> float:
    """Host operators per micro-batch: forward, recompute (full or selective checkpointing), backward.

    >>> from gpu_preflight.tools.estimator.modelshape import resolve_model
    >>> from gpu_preflight.tools.estimator.spec import ModelSpec, TrainingSpec
    >>> m = resolve_model(ModelSpec(name="llama-3.1-8b"))
    >>> ops_per_micro_batch(m, TrainingSpec(seq_len=512, micro_batch=1))  # (32 x 50 + 20) x 2.5
    4050.0
    """
    per_layer = compiled_forward_ops_per_layer(m, t) if t.torch_compile else forward_ops_per_layer(m, t)
    forward = m.n_layers * per_layer + HEAD_AND_LOSS_OPS
    recompute = {True: 1.0, "selective": RECOMPUTE_SELECTIVE_SHARE}.get(t.activation_checkpointing, 0.0)
    return forward * (1.0 + recompute + BACKWARD_OPS_PER_FORWARD_OP) - (
        HEAD_AND_LOSS_OPS * recompute)  # the head and loss are not checkpointed


def host_time_per_micro_batch_s(m: ResolvedModel, t: TrainingSpec) -> float:
    """Seconds the host needs to issue one micro-batch."""
    return ops_per_micro_batch(m, t) * HOST_S_PER_OP


def host_dispatch_s(m: ResolvedModel, t: TrainingSpec, gpu_s_per_step: float) -> float:
    """Seconds per optimizer step the GPU waits for the host: ``grad_accum x max(0, host - GPU)`` per micro-batch,
    where ``gpu_s_per_step`` is the step's GPU work that runs per micro-batch (matmuls, dequantization, eager
    attention scores, LoRA adapter paths). The optimizer, comm and fixed terms stay apart, as before."""
    gpu_per_micro = gpu_s_per_step / t.grad_accum
    return t.grad_accum * max(0.0, host_time_per_micro_batch_s(m, t) - gpu_per_micro)

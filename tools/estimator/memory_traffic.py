"""HBM traffic of the non-matmul work in a training step that grows with tokens: eager attention's score matrix
and LoRA's adapter path.

Why: the cold compute term is FLOPs / (peak x MFU), and the MFU priors come from stacks with fused attention
(FlashAttention, SDPA), which never write the ``heads x keys`` score matrix to memory. Eager attention (HF's
``eager`` implementation, Megatron-LM's 2021 ``FusedScaleMaskSoftmax`` between two batched GEMMs) writes it,
reads it back through the softmax and again in the second GEMM, and does the same in the backward pass. That
is ``n_heads x keys`` elements per token and layer, against ``~24 h^2`` FLOPs per token and layer in the
matmuls: at ``h`` = 2304 with 24 heads over 2,048 keys (Megatron-LM's 1.7B row) the score traffic takes about
a quarter of the matmul time on an A100, at ``h`` = 25,600 (its 1T row) about 2 %. Bandwidth-bound, so timed
over ``hbm_bw_gbps x HBM_ACHIEVED_FRACTION`` like the optimizer term.

Passes over the score matrix per layer (one pass = every element read or written once, ``score_bytes`` each):

* forward: the ``Q K^T`` GEMM writes it (1); the (fused scale + mask +) softmax reads and writes it (2); the
  ``P V`` GEMM reads the probabilities (1) = 4;
* backward: the ``dO V^T`` GEMM writes ``dP`` (1); the softmax backward reads ``P`` and ``dP`` and writes
  ``dS`` (3); ``dS`` is read by the two GEMMs for ``dQ`` and ``dK`` (2); ``P`` is read again for ``dV`` (1) = 7;
* attention dropout (models that train with it, ``model.dropout``): forward reads and writes the
  probabilities and writes a 1-byte mask, backward reads the gradient and the mask and writes it: 4 passes
  and 2 mask bytes;
* full activation checkpointing re-runs the forward (4, plus dropout's 2 passes and mask byte).

HF's unfused ``/ sqrt(d)`` and ``+ mask`` are two more read/write pairs each; they are left out (the lower
bound), as are the element-wise ops on ``h``-sized tensors (norms, residuals, activations), which fused-attention
priors already contain.

Scored on ``bench/cases`` (issue 18, round 2): Megatron-LM's 1.7B row +36% -> +7% and its 1T row +15% -> +13%
(out of sample); HF's bert-large rows on V100 are in sample (the V100 and fp32 MFU factors were re-derived with
this term in the step: fp16 -20/+28% -> -20/+27%, fp32 -13/0/+9% -> -11/+1/+10%); LLMs-from-scratch's fp32 eager
GPT-2 124M +7% -> +8%. Trusted throughput median 11.8% -> 11.5% over the 42 trusted cases of that day.

Tried and not kept: a like term for the element-wise ops (norms, residual adds, the activation, rotary; forward
2 tensors, backward 3, per op), with the priors read as whole-step figures on their reference rows (MPT-7B,
Llama-3.1-8B: 2.6-2.7e-4 element-wise bytes per FLOP). It narrowed llm-foundry's spread by hidden size (125M
+21% -> +14%, 760M +14% -> +9%) but moved the trusted median only 11.7% -> 11.1%, the hold-out cases' median
19.0% -> 19.8%, and pushed llm.c's fused-kernel GPT-2 124M out of the cold band (-16% -> -24%).

LoRA's adapter path (:func:`lora_adapter_bytes_per_gpu`) is the same kind of work: each adapted matrix adds a
rank-``r`` detour whose matmuls are tiny but whose element-wise kernels stream full ``in``- and ``out``-wide tensors,
so its cost depends on which matrices are adapted (and on their dtype: PEFT's fp32 adapters cast every adapted
input), which FLOPs cannot say. PEFT's method comparison measured it on
one L40S harness (``bench/cases/published_peft.json``): LoRA r10 on the MLP's three matrices ran 13 % slower than
LoRA r64 on q/v (5,777 vs 6,659 tokens/s) with fewer trainable parameters; the FLOPs model put them within 0.1 %.
"""

from __future__ import annotations

from gpu_preflight.tools.estimator.memory_knobs import adapter_cast, adapter_input_dims, stream_bytes
from gpu_preflight.tools.estimator.modelshape import ResolvedModel, adapted_names, layer_matrices
from gpu_preflight.tools.estimator.spec import TrainingSpec

EAGER_SCORE_PASSES = 4.0 + 7.0
"""Forward 4 + backward 7 passes over the score matrix (module docstring). Derived from the kernels, not
fitted. Scored on bench/cases (out of sample for Megatron-LM; the V100 and fp32 MFU factors in
``throughput.py`` were re-derived from HF's bert-large rows with this term in the step)."""
DROPOUT_PASSES = 2.0 + 2.0
"""Attention dropout: forward read + write, backward read + write (plus the 1-byte mask: :data:`DROPOUT_MASK_BYTES`)."""
DROPOUT_MASK_BYTES = 1.0 + 1.0
"""The bool mask written in the forward and read in the backward, per score element."""
FORWARD_PASSES = 4.0
"""Passes of the forward alone (re-run under full activation checkpointing)."""


def score_bytes(t: TrainingSpec) -> float:
    """Bytes of one score element: the compute dtype (fp32 training keeps fp32 scores; AMP's GEMMs write fp16/bf16)."""
    return 4.0 if t.precision == "fp32" else 2.0


def eager_bytes_per_score(t: TrainingSpec, m: ResolvedModel) -> float:
    """HBM bytes per score element per step pass (forward, backward, recompute) for eager attention; 0 otherwise.

    >>> from gpu_preflight.tools.estimator.modelshape import resolve_model
    >>> from gpu_preflight.tools.estimator.spec import ModelSpec, TrainingSpec
    >>> gpt2 = resolve_model(ModelSpec(name="gpt2"))
    >>> eager_bytes_per_score(TrainingSpec(seq_len=1024, micro_batch=1, attention="eager"), gpt2.model_copy(
    ...     update={"dropout": False}))  # 11 passes x 2 B (bf16)
    22.0
    >>> eager_bytes_per_score(TrainingSpec(seq_len=1024, micro_batch=1, attention="eager", precision="fp32",
    ...     activation_checkpointing=True), gpt2.model_copy(update={"dropout": True}))  # (11 + 4 + 4 + 2) x 4 + 2 + 1
    87.0
    >>> eager_bytes_per_score(TrainingSpec(seq_len=1024, micro_batch=1, attention="sdpa"), gpt2)
    0.0
    """
    if t.attention != "eager":
        return 0.0
    b = score_bytes(t)
    passes, mask = EAGER_SCORE_PASSES, 0.0
    if m.dropout:
        passes, mask = passes + DROPOUT_PASSES, DROPOUT_MASK_BYTES
    if t.activation_checkpointing is True:
        passes += FORWARD_PASSES + (DROPOUT_PASSES / 2 if m.dropout else 0.0)
        mask += DROPOUT_MASK_BYTES / 2 if m.dropout else 0.0
    return passes * b + mask


def eager_attention_bytes_per_gpu(t: TrainingSpec, m: ResolvedModel) -> float:
    """HBM bytes one GPU moves per optimizer step through eager attention's score matrices.

    Score elements per token: ``n_heads x keys`` in every layer, keys the padded length (eager attention computes
    the whole square and masks it, causal or windowed alike). Tokens per GPU: the step's computed tokens over the
    data-parallel GPUs."""
    per_score = eager_bytes_per_score(t, m)
    if per_score == 0.0:
        return 0.0
    tokens_per_gpu = t.compute_tokens_per_step / t.num_gpus
    return tokens_per_gpu * m.n_layers * m.n_heads * t.padded_seq_len * per_score


LORA_IN_PASSES = 1.0 + 5.0
"""Passes over an adapted matrix's input per token. Forward: ``lora_A`` reads ``x`` (1). Backward: ``lora_A``'s
input gradient is written (1) and its weight gradient reads ``x`` again (1); the adapter's input gradient is added
to the frozen path's (read 2, write 1). PEFT ``lora.Linear.forward``; dropout 0 (``nn.Identity``); adapters in the
model's dtype (``lora_adapter_dtype = "base"``; fp32 ones on a half stream: :data:`LORA_CAST_BYTES`)."""
LORA_OUT_PASSES = 6.0 + 4.0
"""Passes over an adapted matrix's output per token. Forward: ``lora_B`` writes (1), ``* scaling`` reads and writes
(2), ``result + ...`` reads two and writes one (3). Backward: the scaling multiply's gradient (2); ``lora_B``'s input
and weight gradients each read the output gradient (2). The rank-``r`` intermediate is negligible."""
LORA_RECOMPUTE_PASSES = (1.0, 6.0)
"""Full activation checkpointing re-runs the adapter's forward: (input, output) passes."""
LORA_CAST_BYTES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "pure": ((30.0, 56.0), (10.0, 28.0)),
    "amp": ((36.0, 20.0), (14.0, 12.0)),
}
"""fp32 adapters on a half stream (:func:`.memory_knobs.adapter_cast`): bytes per (input, output) element per token,
then what full checkpointing re-runs. Counted from PEFT's ``lora.Linear.forward`` (``x.to(fp32)``, ``lora_B(lora_A(x))
* scaling``, ``result + ...``, ``result.to(torch_result_dtype)``) and each op's backward, dropout 0.

* ``pure`` (half weights, no autocast): forward input 2 + 4 (the cast) + 4 (``lora_A`` reads it) = 10; output 4
  (``lora_B`` writes fp32) + 8 (scaling) + 2 + 4 + 4 (the add promotes to fp32) + 4 + 2 (back to half) = 28.
  Backward input 4 + 4 (``lora_A``'s two gradients) + 6 (the cast's) + 6 (added to the frozen path's) = 20;
  output 6 + 6 (the casts') + 8 (scaling) + 8 (``lora_B``'s two gradients) = 28.
* ``amp`` (autocast re-casts the fp32 copy to bf16 for ``lora_A``, so the rest stays half): forward input 6 + 6 + 2
  = 14, output 12 as in the half path; backward input 2 + 2 + 6 + 6 + 6 = 22, output 8."""
LORA_DROPOUT_PASSES = (2.0, 2.0, 2.0)
"""``lora_dropout`` > 0 (each adapter's own ``nn.Dropout``, on the fp32 copy where adapters are fp32): passes over
the adapted input per token (forward read and write, backward read and write, and the forward again under full
checkpointing), each with one byte of mask (written, read, written)."""


def lora_adapter_bytes_per_token(t: TrainingSpec, m: ResolvedModel) -> float:
    """HBM bytes per token one micro-batch moves through LoRA's adapter paths (0 for full training).

    >>> from gpu_preflight.tools.estimator.modelshape import resolve_model
    >>> from gpu_preflight.tools.estimator.spec import ModelSpec, TrainingSpec
    >>> m = resolve_model(ModelSpec(name="llama-3.2-3b"))
    >>> t = TrainingSpec(seq_len=768, micro_batch=4, method="lora", lora_rank=32, lora_targets=["q_proj", "v_proj"])
    >>> lora_adapter_bytes_per_token(t, m)  # (6 x 3072 + 10 x 3072) + (6 x 3072 + 10 x 1024), x 2 B x 28 layers
    4358144.0
    >>> mlp = t.model_copy(update={"lora_targets": ("gate_proj", "up_proj", "down_proj")})
    >>> round(lora_adapter_bytes_per_token(mlp, m) / lora_adapter_bytes_per_token(t, m), 2)
    3.61
    >>> fp32 = t.model_copy(update={"lora_adapter_dtype": "fp32", "master_weights_fp32": False})
    >>> lora_adapter_bytes_per_token(fp32, m)  # (30 x 3072 + 56 x 3072) + (30 x 3072 + 56 x 1024), x 28 layers
    11583488.0
    """
    if t.method not in ("lora", "qlora"):
        return 0.0
    cast = adapter_cast(t)
    if cast:
        (b_in, b_out), (re_in, re_out) = LORA_CAST_BYTES[cast]
    else:
        elem = stream_bytes(t)
        b_in, b_out = LORA_IN_PASSES * elem, LORA_OUT_PASSES * elem
        re_in, re_out = LORA_RECOMPUTE_PASSES[0] * elem, LORA_RECOMPUTE_PASSES[1] * elem
    if t.lora_dropout > 0:
        drop = 4.0 if cast else stream_bytes(t)  # dropout runs on the fp32 copy where adapters are fp32
        fwd, bwd, again = (passes * drop + 1.0 for passes in LORA_DROPOUT_PASSES)
        b_in, re_in = b_in + fwd + bwd, re_in + again
    if t.activation_checkpointing is True:
        b_in, b_out = b_in + re_in, b_out + re_out
    mats = layer_matrices(m)
    names = adapted_names(m, t.lora_targets)
    per_layer = b_in * sum(adapter_input_dims(m, t)) + b_out * sum(mats[n][1] for n in names if n in mats)
    head = b_in * m.hidden_size + b_out * m.vocab_size if "lm_head" in names else 0.0
    return per_layer * m.n_layers + head


def lora_adapter_bytes_per_gpu(t: TrainingSpec, m: ResolvedModel) -> float:
    """HBM bytes one GPU moves per optimizer step through LoRA's adapter paths: per token times the step's computed
    tokens over the data-parallel GPUs."""
    return lora_adapter_bytes_per_token(t, m) * t.compute_tokens_per_step / t.num_gpus

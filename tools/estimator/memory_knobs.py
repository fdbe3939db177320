"""GPU memory terms of the issue-18 knobs: the QLoRA 4-bit format, and evaluation inside the training peak.

Kept apart from :mod:`.memory_gpu` (the component model) so that module keeps one job; both are pure
arithmetic on the resolved shape and the training spec.
"""

from __future__ import annotations

from gpu_preflight.tools.estimator.modelshape import ResolvedModel
from gpu_preflight.tools.estimator.spec import TrainingSpec

QUANT_BYTES_PER_PARAM = {
    # bitsandbytes NF4 (QLoRA paper, Dettmers et al. 2023, arXiv 2305.14314, section 2 "Double
    # Quantization"): 4-bit codes (0.5 B) plus one fp32 absmax per block of 64 weights, 32/64 = 0.5 bit.
    "nf4": 0.5 + 4 / 64,
    # Double quantization: the absmax constants become 8-bit, with one fp32 second-level constant per
    # 256 of them: 8/64 + 32/(64*256) = 0.127 bit/param (the paper's figure), 0.0159 B.
    "nf4_double_quant": 0.5 + (8 / 64 + 32 / (64 * 256)) / 8,
    # GPTQ 4-bit, group size 128 (AutoGPTQ/transformers GPTQConfig default): per group an fp16 scale (2 B)
    # and a 4-bit zero point packed into int32 qzeros (0.5 B): 2.5/128 B; g_idx adds 4 B per input row
    # (4/out_features per weight, < 0.001 B at 4096 wide, not counted).
    "gptq": 0.5 + 2.5 / 128,
    # torchao int4 weight-only (Int4WeightOnlyConfig, group_size 128 default): packed int4 codes plus a bf16
    # scale and a bf16 zero per group of 128 (scales_and_zeros): 4/128 B.
    "torchao_int4": 0.5 + 4 / 128,
}
"""Resident bytes per quantized weight by QLoRA base format.

>>> {k: round(v, 4) for k, v in QUANT_BYTES_PER_PARAM.items()}
{'nf4': 0.5625, 'nf4_double_quant': 0.5159, 'gptq': 0.5195, 'torchao_int4': 0.5312}
"""


def qlora_frozen_bytes(m: ResolvedModel, t: TrainingSpec, wbytes: int) -> float:
    """Frozen base weights of a QLoRA run: the layers' linears (and the head with ``quant_lm_head``) in the
    4-bit format; embeddings, norms and (by default) the head in the compute dtype.

    Why the head stays bf16 by default: bitsandbytes quantizes ``nn.Linear`` only (embeddings never), and
    transformers leaves the output layer out (``get_keys_to_not_convert`` keeps the last module, the LM head)
    unless ``llm_int8_skip_modules`` says otherwise. A tied head is the embedding itself: it stays unquantized.
    """
    head = 0 if m.tied_embeddings else m.vocab_size * m.hidden_size
    plain = m.embedding_params + m.n_layers * 2 * m.hidden_size  # embeddings, head, norms
    if t.quant_lm_head:
        plain -= head
    return (m.params_total - plain) * QUANT_BYTES_PER_PARAM[t.quant_format] + plain * wbytes


def kv_cache_bytes(m: ResolvedModel, t: TrainingSpec) -> float:
    """KV cache of one eval generation batch: ``2 x layers x kv_heads x head_dim x bytes x (seq_len + gen)
    x batch`` (keys and values of every layer, for the prompt and the generated tokens; HF's DynamicCache
    keeps every position, a sliding window included)."""
    if not t.eval_generation_tokens:
        return 0.0
    elem = 4 if t.precision == "fp32" else 2
    batch = t.eval_micro_batch or t.micro_batch
    return float(2 * m.n_layers * m.kv_dim * elem * (t.seq_len + t.eval_generation_tokens) * batch)


def eval_transient_bytes(m: ResolvedModel, t: TrainingSpec, per_layer_token_bytes: float,
                         loss_bytes_per_logit: float) -> float:
    """What an eval pass adds on top of the resident training state (0 when the run does not evaluate).

    Under ``no_grad`` nothing is saved for backward: one layer's intermediates are alive at a time (counted
    as one layer's training activations, ``per_layer_token_bytes`` per token), plus either the logits and
    the loss buffers of the eval batch (a loss pass) or the KV cache (a generation pass, whose logits are
    one position per sample); the larger pass sets the eval peak.
    """
    if t.eval_micro_batch is None and not t.eval_generation_tokens:
        return 0.0
    tokens = (t.eval_micro_batch or t.micro_batch) * t.seq_len
    layer = tokens * per_layer_token_bytes
    loss_pass = layer + tokens * m.vocab_size * loss_bytes_per_logit
    generation = layer + kv_cache_bytes(m, t)
    return max(loss_pass, generation)

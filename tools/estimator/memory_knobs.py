"""GPU memory terms of the issue-18 knobs: the QLoRA 4-bit format, and evaluation inside the training peak.

Kept apart from :mod:`.memory_gpu` (the component model) so that module keeps one job; both are pure
arithmetic on the resolved shape and the training spec.
"""

from __future__ import annotations

from typing import Literal

from gpu_preflight.tools.estimator.modelshape import ResolvedModel, adapted_names, layer_matrices
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


DEQUANT_FORMATS = ("nf4", "nf4_double_quant")
"""Formats whose matmul dequantizes the whole 4-bit weight: bitsandbytes' ``MatMul4Bit.backward`` runs
``grad_A = torch.matmul(grad_output, F.dequantize_4bit(B, ctx.state))`` (bitsandbytes/autograd/_functions.py, read at
95f9af30, 2026-08), and its forward did the same before the fused ``gemm_4bit`` kernels of #1949 (2026-05), which
still fall back to dequantize + ``F.linear`` above 1,536 tokens; torchao's NF4 (torchtune QLoRA) runs
``F.linear(input, weight.to(input.dtype))``. GPTQ's and torchao int4's kernels read the packed weight instead."""


def dequant_excess_bytes(m: ResolvedModel, t: TrainingSpec, logits: float) -> float:
    """What a 4-bit matmul's dequantized weight adds to the forward-end peak, beyond the loss buffers it meets.

    The largest one is the LM head's (``vocab x hidden``) where the head is quantized (``quant_lm_head``): it lives
    beside every saved activation and the half logits and their gradient (4 B per logit, or the whole loss buffer
    when that is smaller, as with a chunked loss). Otherwise it is the largest layer matrix, dequantized in a layer's
    backward after the loss buffers are gone. LitGPT's Llama-2-7B QLoRA row (head quantized, chunked loss): 0.26 GB.

    >>> from gpu_preflight.tools.estimator.modelshape import resolve_model
    >>> from gpu_preflight.tools.estimator.spec import ModelSpec
    >>> m = resolve_model(ModelSpec(name="llama-3.1-8b"))
    >>> t = TrainingSpec(method="qlora", lora_rank=8, seq_len=512, micro_batch=2, quant_lm_head=True, loss="chunked")
    >>> dequant_excess_bytes(m, t, 3.0 * 1024 * m.vocab_size) / 1e9  # the head: 128256 x 4096 x 2 B
    1.050673152
    >>> dequant_excess_bytes(m, t.model_copy(update={"quant_lm_head": False}), 1.0)  # 4096 x 14336 x 2 B - 1
    117440511.0
    """
    if t.method != "qlora" or t.quant_format not in DEQUANT_FORMATS:
        return 0.0
    elem = 4.0 if t.precision == "fp32" else 2.0
    layer = max(i * o for i, o in layer_matrices(m).values()) * elem
    head = m.vocab_size * m.hidden_size * elem if t.quant_lm_head and not m.tied_embeddings else 0.0
    held = min(logits, 4.0 * t.micro_batch * t.seq_len * m.vocab_size) if head > layer else 0.0
    return max(0.0, max(head, layer) + held - logits)


KBIT_UPCAST_FORMATS = ("nf4", "nf4_double_quant")
"""Formats whose unquantized weights PEFT's ``prepare_model_for_kbit_training`` casts to fp32: it skips GPTQ,
AQLM, EETQ, HQQ and torchao models (huggingface/peft@5d602fdb src/peft/utils/other.py lines 197-209)."""


def qlora_frozen_bytes(m: ResolvedModel, t: TrainingSpec, wbytes: int) -> float:
    """Frozen base weights of a QLoRA run: the layers' linears (and the head with ``quant_lm_head``) in the
    4-bit format; embeddings, norms and (by default) the head in the compute dtype, or in fp32 with
    ``kbit_upcast_fp32``.

    Why the head stays bf16 by default: bitsandbytes quantizes ``nn.Linear`` only (embeddings never), and
    transformers leaves the output layer out (``get_keys_to_not_convert`` keeps the last module, the LM head)
    unless ``llm_int8_skip_modules`` says otherwise. A tied head is the embedding itself: it stays unquantized.

    Why fp32 with ``kbit_upcast_fp32``: PEFT's ``prepare_model_for_kbit_training`` (its QLoRA recipe,
    docs/source/developer_guides/quantization.md line 59) runs ``param.data = param.data.to(torch.float32)``
    on every fp16/bf16 parameter that is not a ``Params4bit`` (huggingface/peft@5d602fdb
    src/peft/utils/other.py lines 204-209). The fp32 head then meets bf16 autocast, which casts the frozen
    weight to bf16 on every forward (autocast caches casts of leaf tensors that require grad only) and the
    matmul keeps that copy for its backward: ``V x h x 2`` bytes more while the step runs. can-i-finetune-this
    on an RTX 4080 (bench/cases/published_more.json) measured QLoRA as large as LoRA on Qwen2.5-0.5B
    (1.67 vs 1.69 GiB at 256 tokens): its 136 M tied-embedding parameters at 4 + 2 bytes outweigh the
    quantized layers' savings.

    >>> from gpu_preflight.tools.estimator.modelshape import resolve_model
    >>> from gpu_preflight.tools.estimator.spec import ModelSpec
    >>> m = resolve_model(ModelSpec(name="qwen2.5-0.5b"))
    >>> base = dict(method="qlora", lora_rank=8, seq_len=256, micro_batch=1)
    >>> plain = qlora_frozen_bytes(m, TrainingSpec(**base), 2)
    >>> up = qlora_frozen_bytes(m, TrainingSpec(**base, kbit_upcast_fp32=True), 2)
    >>> round((up - plain) / (m.embedding_params + m.n_layers * 2 * m.hidden_size), 1)  # +2 B fp32, +2 B autocast copy
    4.0
    """
    head = 0 if m.tied_embeddings else m.vocab_size * m.hidden_size
    plain = m.embedding_params + m.n_layers * 2 * m.hidden_size  # embeddings, head, norms
    if t.quant_lm_head:
        plain -= head
    quantized = (m.params_total - plain) * QUANT_BYTES_PER_PARAM[t.quant_format]
    if not (t.kbit_upcast_fp32 and t.quant_format in KBIT_UPCAST_FORMATS):
        return quantized + plain * wbytes
    head_copy = 0 if t.quant_lm_head else m.vocab_size * m.hidden_size * 2  # autocast's bf16 copy of the head
    return quantized + plain * 4 + (head_copy if wbytes == 2 else 0)


def load_peak_bytes(m: ResolvedModel, t: TrainingSpec, wbytes: int, shards: int) -> float:
    """QLoRA's allocated peak while the base model is loaded and quantized, per GPU (0 for other methods).

    ``per_tensor`` (the default): each weight reaches the GPU in half precision and is quantized there before the
    next arrives; transformers' bitsandbytes path moves one ``Params4bit`` at a time (``.to(cuda)`` quantizes it),
    LitGPT and torchtune copy a bf16 state dict into 4-bit parameters one tensor at a time. The peak is the
    quantized model (before PEFT's fp32 upcast, which comes after loading) plus the largest matrix in half.
    transformers #43032 (RTX 5080 16 GB, phi-4 14.7 B, NF4): 4.48 loaded it "in ~9GB"; this gives 10.1 GB.

    ``full_model``: the whole model is on the GPU in half precision before it is quantized, as with torchao's
    ``quantize_`` on a model already moved to the GPU (its ``device=`` argument, pytorch/ao#699, quantizes tensor
    by tensor instead) or transformers 5.0.0.dev's ``core_model_loading`` (#43032: the same load OOMed "at 15GB+";
    29.4 GB here). The caching allocator keeps those blocks reserved after the half weights are freed, so this
    figure is also what ``max_memory_reserved`` shows through training unless the script calls ``empty_cache``.
    Every process loads its own copy: the figure is not divided by sharding. A GPTQ checkpoint is 4-bit on disk:
    nothing is quantized while it loads (and ``full_model`` is refused for it).

    >>> from gpu_preflight.tools.estimator.modelshape import resolve_model
    >>> from gpu_preflight.tools.estimator.spec import ModelSpec
    >>> m = resolve_model(ModelSpec(name="custom", family="phi3", n_layers=40, hidden_size=5120, n_heads=40,
    ...                             n_kv_heads=10, intermediate_size=17920, vocab_size=100352))
    >>> t = TrainingSpec(method="qlora", lora_rank=16, seq_len=512, micro_batch=1, quant_format="nf4")
    >>> round(load_peak_bytes(m, t, 2, 1) / 1e9, 2), round(m.params_total * 2 / 1e9, 2)
    (10.09, 29.32)
    >>> round(load_peak_bytes(m, t.model_copy(update={"quant_load": "full_model"}), 2, 1) / 1e9, 2)
    29.42
    """
    if t.method != "qlora":
        return 0.0
    largest = max(i * o for i, o in layer_matrices(m).values())
    if t.quant_lm_head and not m.tied_embeddings:
        largest = max(largest, m.vocab_size * m.hidden_size)
    if t.quant_load == "full_model":
        return m.params_total * wbytes + largest * QUANT_BYTES_PER_PARAM[t.quant_format]
    resident = qlora_frozen_bytes(m, t.model_copy(update={"kbit_upcast_fp32": False}), wbytes) / shards
    return resident + (0 if t.quant_format == "gptq" else largest * wbytes)


def stream_bytes(t: TrainingSpec) -> float:
    """Bytes of one element of the activation stream: 4 in fp32 training or on QLoRA's fp32 stream, else 2."""
    return 4.0 if t.precision == "fp32" or fp32_stream(t) else 2.0


def fp32_stream(t: TrainingSpec) -> bool:
    """QLoRA whose unquantized weights were cast to fp32 runs its activations in fp32.

    Why: the fp32 embedding makes the residual stream fp32, the fp32 norms keep it so (``weight *
    hidden.to(input_dtype)``), and bitsandbytes' ``Linear4bit.forward`` casts its input to the compute dtype
    but returns ``matmul_4bit(...).to(inp_dtype)`` (bitsandbytes 0.49.2 bitsandbytes/nn/modules.py): every
    4-bit linear's output, and what the MLP saves from it, is fp32. can-i-finetune-this measured 198 KB per
    token and layer on Qwen2.5-1.5B QLoRA without checkpointing (8.165 - 2.865 GiB after the first forward,
    1,024 tokens, 28 layers: benchmarks/results/*_s1024_b1_r16_steps3{,_nockpt}.json), twice a bf16 count.
    """
    return (t.method == "qlora" and t.kbit_upcast_fp32 and t.quant_format in KBIT_UPCAST_FORMATS
            and t.precision in ("bf16", "fp16", "fp8"))


def eval_prompt_tokens(t: TrainingSpec) -> int:
    """Prompt length of a generation eval: ``eval_prompt_tokens``, else the training ``seq_len`` (an upper
    bound: a prompt is a training sample without its answer)."""
    return t.eval_prompt_tokens or t.seq_len


def kv_cache_bytes(m: ResolvedModel, t: TrainingSpec) -> float:
    """KV cache of one eval generation batch: ``2 x layers x kv_heads x head_dim x bytes x (prompt + gen)
    x batch`` (keys and values of every layer, for the prompt and the generated tokens; HF's DynamicCache
    keeps every position, a sliding window included)."""
    if not t.eval_generation_tokens:
        return 0.0
    elem = 4 if t.precision == "fp32" else 2
    batch = t.eval_micro_batch or t.micro_batch
    return float(2 * m.n_layers * m.kv_dim * elem * (eval_prompt_tokens(t) + t.eval_generation_tokens) * batch)


def eval_transient_bytes(m: ResolvedModel, t: TrainingSpec, per_layer_token_bytes: float,
                         loss_bytes_per_logit: float) -> float:
    """What an eval pass adds on top of the resident training state (0 when the run does not evaluate).

    Under ``no_grad`` nothing is saved for backward: one layer's intermediates are alive at a time (counted
    as one layer's training activations, ``per_layer_token_bytes`` per token). A loss eval
    (``eval_generation_tokens`` 0) adds the logits and loss buffers of the eval batch. A generation eval adds
    the KV cache of prompt + generated tokens and one position's logits per sample, never ``b x s x V``:
    ``generate`` asks the model for the last position's logits only (``logits_to_keep=1``, transformers
    >= 4.45, generation/utils.py ``GenerationMixin.generate``: "set it to 1 to avoid computing the whole logit
    matrix") and keeps ``[:, -1, :]`` in fp32 per step (4 B, plus the processed scores, 4 B).

    >>> from gpu_preflight.tools.estimator.modelshape import resolve_model
    >>> from gpu_preflight.tools.estimator.spec import ModelSpec
    >>> m = resolve_model(ModelSpec(name="llama-3.2-3b"))
    >>> t = TrainingSpec(seq_len=768, micro_batch=4, eval_micro_batch=50, eval_generation_tokens=300)
    >>> round(kv_cache_bytes(m, t) / 1e9, 2)  # 2 x 28 layers x 1024 x 2 B x (768 + 300) x 50
    6.12
    """
    if t.eval_micro_batch is None and not t.eval_generation_tokens:
        return 0.0
    batch = t.eval_micro_batch or t.micro_batch
    if t.eval_generation_tokens:
        layer = batch * eval_prompt_tokens(t) * per_layer_token_bytes  # the prefill's one live layer
        return layer + kv_cache_bytes(m, t) + batch * m.vocab_size * 8.0
    tokens = batch * t.seq_len
    return tokens * per_layer_token_bytes + tokens * m.vocab_size * loss_bytes_per_logit


def adapter_cast(t: TrainingSpec) -> Literal["", "pure", "amp"]:
    """How fp32 LoRA adapters (``lora_adapter_dtype = "fp32"``) meet a half-precision stream: ``pure`` on half
    weights without autocast, ``amp`` under autocast (``master_weights_fp32``), ``""`` where nothing is cast
    (base-dtype adapters, fp32 training, QLoRA's fp32 stream, full training).

    Why it matters: PEFT's ``lora.Linear.forward`` runs ``x = self._cast_input_dtype(x, lora_A.weight.dtype)``
    (peft@5d602fdb src/peft/tuners/lora/layer.py#L1061), so each adapted matrix makes its own fp32 copy of its
    input, and ``lora_A`` keeps that copy (or, under autocast, autocast's bf16 re-cast of it) for its weight
    gradient instead of the shared half input.
    """
    if t.method not in ("lora", "qlora") or t.lora_adapter_dtype != "fp32" or t.precision == "fp32":
        return ""
    if fp32_stream(t):
        return ""
    return "amp" if t.master_weights_fp32 else "pure"


QKV = ("q_proj", "k_proj", "v_proj")


def adapter_input_dims(m: ResolvedModel, t: TrainingSpec) -> list[int]:
    """The input width of each LoRA module in one layer: one per adapted matrix, except that with
    ``lora_qkv_merged`` the adapted q/k/v are one module over their one shared input.

    Why: PEFT wraps every target matrix in its own ``lora.Linear`` (own dropout, own cast, own ``lora_A``);
    LitGPT's ``LoRAQKVLinear`` adapts its fused attention matrix with one ``lora_A`` over the enabled q/k/v parts
    and one ``lora_dropout(x)`` (litgpt/lora.py), so an input copy or a dropout mask is kept once, not per part.

    >>> from gpu_preflight.tools.estimator.modelshape import resolve_model
    >>> from gpu_preflight.tools.estimator.spec import ModelSpec
    >>> m = resolve_model(ModelSpec(name="llama-3.2-3b"))
    >>> t = TrainingSpec(method="lora", lora_rank=8, lora_targets=["q_proj", "v_proj"], seq_len=512, micro_batch=1)
    >>> adapter_input_dims(m, t), adapter_input_dims(m, t.model_copy(update={"lora_qkv_merged": True}))
    ([3072, 3072], [3072])
    """
    mats = layer_matrices(m)
    names = [n for n in adapted_names(m, t.lora_targets) if n in mats]
    if t.lora_qkv_merged:
        first = next((n for n in names if n in QKV), None)
        names = [n for n in names if n not in QKV or n == first]
    return [mats[n][0] for n in names]


LORA_DROPOUT_MASK_BYTES = 1
"""``lora_dropout`` > 0 on CUDA: ``F.dropout`` runs ``native_dropout``, which keeps a bool mask (1 B per element) for
its backward (aten/src/ATen/native/Dropout.cpp: ``is_fused_kernel_acceptable`` is true for CUDA tensors with
0 < p < 1). On CPU the unfused path multiplies by a noise tensor of the input's dtype and keeps that instead, which
is what the CPU check in tests/test_lora_dropout.py sees."""


def adapter_copy_bytes_per_token(m: ResolvedModel, t: TrainingSpec, mask_bytes: float = LORA_DROPOUT_MASK_BYTES
                                 ) -> float:
    """Per token and layer: the inputs adapters keep for backward apart from the shared half input, one per adapted
    matrix: fp32 adapters' copies (4 B per input element on half weights, 2 B for autocast's re-cast), and with
    ``lora_dropout`` each adapter's own dropped-out input (base adapters: the stream's dtype) plus dropout's mask.
    0 where nothing is cast and no dropout runs: ``lora_A`` then keeps the shared input.

    Why dropout costs a copy per adapter: PEFT gives every adapted matrix its own ``nn.Dropout``
    (``lora_B(lora_A(dropout(x)))``, peft@5d602fdb src/peft/tuners/lora/layer.py), so ``lora_A`` keeps that
    adapter's dropout output, not ``x``; with fp32 adapters the output replaces the fp32 copy, so only the mask is
    new. Checked against real PEFT's saved tensors (tests/test_lora_dropout.py).

    >>> from gpu_preflight.tools.estimator.modelshape import resolve_model
    >>> from gpu_preflight.tools.estimator.spec import ModelSpec
    >>> m = resolve_model(ModelSpec(name="llama-3.2-3b"))
    >>> t = TrainingSpec(method="lora", lora_rank=64, lora_targets=["q_proj", "v_proj"], seq_len=768, micro_batch=4,
    ...     master_weights_fp32=False, lora_adapter_dtype="fp32")
    >>> adapter_copy_bytes_per_token(m, t)  # 2 x 3072 x 4 B
    24576.0
    >>> adapter_copy_bytes_per_token(m, t.model_copy(update={"lora_adapter_dtype": "base", "lora_dropout": 0.05}))
    18432.0
    """
    cast = adapter_cast(t)
    dropout = t.method in ("lora", "qlora") and t.lora_dropout > 0
    if not cast and not dropout:
        return 0.0
    elem = {"pure": 4.0, "amp": 2.0}.get(cast, stream_bytes(t))
    per_input = elem + (mask_bytes if dropout else 0.0)
    return float(sum(adapter_input_dims(m, t)) * per_input)


def frozen_unsaved_bytes_per_token(m: ResolvedModel, t: TrainingSpec) -> float:
    """Per token and layer: linear inputs that LoRA/QLoRA never save, because the weight that reads them is
    frozen and carries no adapter, or its adapter keeps a copy of its own (fp32 adapters, LoRA dropout:
    :func:`adapter_copy_bytes_per_token`).

    Why: autograd saves an input for backward only if a gradient that uses it will be computed. ``mm`` keeps
    its left operand for the weight's gradient alone, and PyTorch's codegen guards that save with
    ``grad_fn->should_compute_output(...)`` ("We don't want to save tensors if we know that they will never
    be used when computing the derivative", tools/autograd/gen_variable_type.py, ``guard_for``); bitsandbytes'
    4-bit matmul keeps no input either. A LoRA adapter's ``lora_A`` does save its input (the same tensor).
    So with frozen MLP matrices the MLP norm's output (``h``, read by gate/up) and the product read by
    ``down_proj`` (``inter``) are not kept; with no adapter on q/k/v, the attention norm's output (``h``).
    The attention output stays: SDPA keeps it for its own backward. bitsandbytes before 0.43.2 kept the input
    of every 4-bit matmul (``ctx.tensors = (A, B)`` in ``MatMul4Bit.forward``, dropped by "fix QLoRA mem bug:
    delete useless buffered activation", bitsandbytes commit 9e753741, #1270): ``quant_saves_input``.

    >>> from gpu_preflight.tools.estimator.modelshape import resolve_model
    >>> from gpu_preflight.tools.estimator.spec import ModelSpec
    >>> m = resolve_model(ModelSpec(name="llama-3.2-3b"))
    >>> t = TrainingSpec(method="lora", lora_rank=32, lora_targets=["q_proj", "v_proj"], seq_len=768, micro_batch=4)
    >>> frozen_unsaved_bytes_per_token(m, t)  # (3072 + 8192) x 2 B: the MLP norm output and down_proj's input
    22528.0
    >>> frozen_unsaved_bytes_per_token(m, t.model_copy(update={"lora_adapter_dtype": "fp32",
    ...     "master_weights_fp32": False}))  # fp32 adapters keep their own copies: no half input is kept
    28672.0
    """
    if t.method == "full" or (t.method == "qlora" and t.quant_saves_input):
        return 0.0
    names = set(adapted_names(m, t.lora_targets))
    own_copy = bool(adapter_cast(t)) or t.lora_dropout > 0  # lora_A keeps its own copy, not the shared input
    unsaved = 0
    if own_copy or not names & {"q_proj", "k_proj", "v_proj", "qkv_proj"}:
        unsaved += m.hidden_size
    if own_copy or not names & {"gate_proj", "up_proj", "gate_up_proj"}:
        unsaved += m.hidden_size
    if own_copy or "down_proj" not in names:
        unsaved += m.intermediate_size
    return unsaved * stream_bytes(t)

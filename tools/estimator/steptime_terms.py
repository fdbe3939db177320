"""A cold training step as compute plus the parts of a step that do not scale with tokens.

Why: FLOPs / (peak x MFU) says how long the matmuls take. A step also runs the optimizer update,
gradient clipping and (on several GPUs) the gradient all-reduce, and it pays a fixed cost for the
data loader, Python and kernel launches. None of these grows with the batch, so they vanish in a
4M-token pretraining step and dominate a small-batch fine-tune: a published full fine-tune of a 3B
model on one 48 GB card with under 1,000 tokens per optimizer step ran at 0.36 s/step where FLOPs
alone said 0.15 s (issue 18). The step is modelled as::

    step_s = compute_s + optimizer_s + comm_s + dequant_s + eager_attention_s + lora_adapters_s + host_dispatch_s
             + fixed_s

* ``optimizer_s``: HBM bytes the update, clipping and (fp16) unscaling move per trainable parameter,
  times the parameters this GPU updates, over ``hbm_bw_gbps x HBM_ACHIEVED_FRACTION``. These are
  element-wise kernels with no reuse, so bandwidth, not FLOPs, sets their time. Muon adds its
  Newton-Schulz matmuls here, at the run's matmul rate (:func:`muon_ns_time_s`).
* ``comm_s``: data-parallel collectives not hidden behind compute (see :func:`comm_time_s`).
* ``dequant_s``: QLoRA's 4-bit base weights dequantized to the compute dtype before each matmul that uses
  them (:func:`dequant_time_s`), memory-bound like the optimizer; 0 for other methods.
* ``eager_attention_s``: eager attention's score matrices written and read back, forward and backward
  (:mod:`.memory_traffic`), memory-bound; 0 with FlashAttention/SDPA.
* ``lora_adapters_s``: LoRA's adapter paths stream each adapted matrix's input and output several times per token
  (:func:`.memory_traffic.lora_adapter_bytes_per_gpu`), memory-bound; it is why the target list changes speed.
* ``host_dispatch_s``: eager PyTorch issues every operator from the host; when a micro-batch's GPU work
  (compute + dequant + eager attention + adapters) is shorter than the host's ``ops x 10 us``, the GPU waits for the
  host and a micro-batch takes the host's time (:mod:`.host_dispatch`). This term is that wait, 0 for large ones.
* ``fixed_s``: :data:`FIXED_STEP_S`.

Each term is in the throughput result (``step_time_terms_s``) so a probe can be compared term by term.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from gpu_preflight.tools.estimator.catalogue import ResolvedGpu, lookup_gpu
from gpu_preflight.tools.estimator.host_dispatch import host_dispatch_s, host_time_per_micro_batch_s
from gpu_preflight.tools.estimator.memory_knobs import QUANT_BYTES_PER_PARAM
from gpu_preflight.tools.estimator.memory_traffic import eager_attention_bytes_per_gpu, lora_adapter_bytes_per_gpu
from gpu_preflight.tools.estimator.modelshape import ResolvedModel, muon_share, newton_schulz_flops
from gpu_preflight.tools.estimator.spec import TrainingSpec

HBM_ACHIEVED_FRACTION = 0.8
"""Streaming element-wise kernels reach about 80-90% of the datasheet DRAM bandwidth on A100/H100 and
GDDR6X cards (STREAM-style copy/triad figures); the optimizer's kernels also walk many small tensors
(norms, biases) in chunks, so the lower end is taken. Assumed, not measured in this project."""

FIXED_STEP_S = 0.005
"""Per optimizer step: fetching and collating the batch, the host-to-device copy, the scheduler and
logging, and the launches of a few hundred optimizer kernels. A few ms on any stack (issue 18);
5 ms is assumed. It is what keeps a tiny model's predicted step from shrinking to microseconds."""

# Bytes of HBM traffic per trainable parameter for one optimizer update (reads + writes), with the
# states and master weights in fp32 (4 B). Counted from the kernels each implementation launches:
ADAMW_BYTES_FP32 = {
    # torch AdamW foreach (torch.optim.adam._multi_tensor_adam, the default): p *= 1-lr*wd (r p, w p:
    # 8), lerp m toward g (r m g, w m: 12), v *= b2 (8), v += (1-b2) g*g (r v g, w v: 12), tmp = sqrt(v)
    # (r v, w tmp: 8), tmp /= bc2 (8), tmp += eps (8), p += -step * m / tmp (r p m tmp, w p: 16) = 80.
    "foreach": 80.0,
    # for-loop (single-tensor) AdamW runs the same ops per tensor: the same bytes, more launches.
    "loop": 80.0,
    # fused AdamW (torch fused=True, apex FusedAdam, DeepSpeed FusedAdam): one kernel reads p g m v
    # (16) and writes p m v (12) = 28.
    "fused": 28.0,
}
ADAM8BIT_BYTES_STATE = 1.0
"""bitsandbytes 8-bit Adam: one fused kernel per tensor; m and v are 1 byte each (block absmax: noise)."""
LION_BYTES_FP32 = {
    # lion-pytorch's reference update (Chen et al. 2023, Program 1, one tensor at a time): p *= 1-lr*wd (8),
    # u = m.clone() (8), u *= b1 (8), u = u + (1-b1) g (12), sign_ (8), p += -lr u (12), m *= b2 (8),
    # m += (1-b2) g (12) = 76.
    "foreach": 76.0, "loop": 76.0,
    # one fused kernel (lion-pytorch use_triton, bitsandbytes Lion): reads p g m (12), writes p m (8) = 20.
    "fused": 20.0,
}
MUON_MATRIX_BYTES_FP32 = 52.0
"""Muon's element-wise work on a matrix (KellerJordan/Muon ``muon_update``): momentum lerp (12), Nesterov lerp
into the gradient (12), the bf16 copy (6) and its norm and scaling (6), decoupled weight decay (8), the bf16
update added to p (10): about 52 B. The Newton-Schulz matmuls are FLOPs, timed apart (:func:`muon_ns_time_s`)."""
SGD_BYTES_FP32 = 32.0
"""SGD with momentum (torch foreach): buf *= mu (8), buf += g (12), p += -lr buf (12) = 32."""
ADAFACTOR_BYTES_FP32 = 60.0
"""HF Adafactor (factored second moment, per-tensor loop): g*g + eps to a temporary, its row/column
means, the rsqrt outer product into the update, update *= g, its RMS, clip, scale, p -= update: about
15 full-size fp32 reads/writes = 60 B."""
CLIP_PASSES = 3.0
"""torch clip_grad_norm_ reads every gradient for the norm, then scales all of them in place (read +
write) without checking the norm first (no host sync): 3 gradient-sized passes. HF Trainer, torchtitan
and llm-foundry clip by default (max_grad_norm 1.0); it is assumed on."""
FP16_UNSCALE_PASSES = 2.0
"""fp16 loss scaling: GradScaler unscales every gradient in place (read + write) before the step."""
ZERO_GRAD_PASSES = 1.0
"""zero_grad(set_to_none=False) writes zeros over every gradient; set_to_none (torch >= 2.0) frees them."""


def state_bytes(t: TrainingSpec) -> float:
    """Bytes of one parameter, gradient or optimizer state as the optimizer sees it.

    fp32 training and mixed precision with fp32 master weights update fp32 tensors (HF AMP keeps the
    model itself in fp32; Megatron/FSDP keep an fp32 master copy); pure bf16/fp16 updates 2-byte ones.
    """
    return 4.0 if t.precision == "fp32" or t.master_weights_fp32 else 2.0


def optimizer_bytes_per_param(t: TrainingSpec, muon_matrix_share: float = 1.0) -> float:
    """HBM bytes moved per trainable parameter per optimizer step: update + clipping (+ unscale, zeroing).

    ``muon_matrix_share``: with Muon, the share of parameters in hidden matrices (the rest run AdamW).

    >>> from gpu_preflight.tools.estimator.spec import TrainingSpec
    >>> optimizer_bytes_per_param(TrainingSpec(seq_len=512, micro_batch=1))  # foreach AdamW, fp32 states
    92.0
    >>> optimizer_bytes_per_param(TrainingSpec(seq_len=512, micro_batch=1, optimizer_impl="fused",
    ...                                        master_weights_fp32=False))  # fused, pure bf16
    20.0
    >>> optimizer_bytes_per_param(TrainingSpec(seq_len=512, micro_batch=1, optimizer="lion"))  # 76 + 3 x 4 clip
    88.0
    """
    b = state_bytes(t)
    scale = b / 4.0
    if t.optimizer == "adamw":
        update = ADAMW_BYTES_FP32[t.optimizer_impl] * scale
    elif t.optimizer in ("adamw_8bit", "paged_adamw_8bit"):
        update = 3 * b + 4 * ADAM8BIT_BYTES_STATE  # reads p g m v, writes p m v
    elif t.optimizer == "lion":
        update = LION_BYTES_FP32[t.optimizer_impl] * scale
    elif t.optimizer == "muon":
        share = muon_matrix_share
        update = (share * MUON_MATRIX_BYTES_FP32 + (1 - share) * ADAMW_BYTES_FP32[t.optimizer_impl]) * scale
    elif t.optimizer == "sgd":
        update = SGD_BYTES_FP32 * scale
    else:  # adafactor
        update = ADAFACTOR_BYTES_FP32 * scale
    grad_passes = CLIP_PASSES + (FP16_UNSCALE_PASSES if t.precision == "fp16" else 0.0)
    grad_passes += 0.0 if t.zero_grad_set_to_none else ZERO_GRAD_PASSES
    return update + grad_passes * b


def optimizer_time_s(t: TrainingSpec, gpu: ResolvedGpu, params_trainable: int, muon_matrix_share: float = 1.0) -> float:
    """Seconds one GPU spends in the memory-bound optimizer work of one step.

    Sharded optimizers (ZeRO-1/2/3, FSDP) update ``1/num_gpus`` of the parameters on each GPU; DDP
    updates all of them everywhere. An optimizer offloaded to the CPU does not touch HBM: 0 here (its
    CPU time is not modelled).
    """
    if t.offload != "none":
        return 0.0
    params = params_trainable / t.num_gpus if t.sharding_resolved not in ("none", "ddp") else params_trainable
    bytes_per_param = optimizer_bytes_per_param(t, muon_matrix_share)
    return params * bytes_per_param / (gpu.hbm_bw_gbps * 1e9 * HBM_ACHIEVED_FRACTION)


def muon_ns_time_s(t: TrainingSpec, m: ResolvedModel, params_trainable: int, matmul_flops_per_s: float) -> float:
    """Seconds of Muon's Newton-Schulz matmuls per step (0 for other optimizers), at the run's matmul rate.

    The reference spreads the matrices over the data-parallel ranks and all-gathers the updates, so the
    whole run's rate applies. From the FLOP count (:func:`.modelshape.newton_schulz_flops`, ``30 h`` per
    parameter of a square matrix) its share of a step's ``6 N B`` model FLOPs is about ``5 h / B`` for ``B``
    tokens per step: 0.5% for a 4096-wide model at 4M tokens, 20x the matmul time at 1,000 tokens. (The
    Gram Newton-Schulz write-up reports 2-17% of wall clock on large runs; not a case here.)"""
    if t.optimizer != "muon" or t.offload != "none":
        return 0.0
    return newton_schulz_flops(m) * params_trainable / m.params_total / matmul_flops_per_s


def quantized_params(m: ResolvedModel, t: TrainingSpec) -> int:
    """Base weights a QLoRA run stores in 4 bits: every linear of the layers, and the LM head only with
    ``quant_lm_head`` (bitsandbytes replaces ``nn.Linear`` only; transformers keeps the head out by default).
    Embeddings and norms stay in the compute dtype (the same split as the memory model's frozen weights)."""
    head = m.vocab_size * m.hidden_size if t.quant_lm_head and not m.tied_embeddings else 0
    return m.n_layers * (m.layer_params - 2 * m.hidden_size) + head


def dequant_passes(t: TrainingSpec) -> int:
    """Times each 4-bit weight is dequantized per micro-batch: the forward and the input-gradient matmul of the
    backward (bitsandbytes ``MatMul4Bit.forward`` and ``.backward`` each call ``F.dequantize_4bit`` on the
    weight; the weight gets no gradient), plus the recomputed forward under full activation checkpointing
    (selective checkpointing re-runs element-wise ops only, not the linears).

    >>> from gpu_preflight.tools.estimator.spec import TrainingSpec
    >>> dequant_passes(TrainingSpec(seq_len=512, micro_batch=1, method="qlora", lora_rank=8,
    ...                             activation_checkpointing=True))
    3
    """
    return 2 + (1 if t.activation_checkpointing is True else 0)


def dequant_time_s(t: TrainingSpec, gpu: ResolvedGpu, m: ResolvedModel) -> float:
    """Seconds per optimizer step one GPU spends dequantizing QLoRA's 4-bit base weights (0 for other methods).

    Why a time term and not a flat factor: QLoRA keeps the base in a 4-bit storage type and dequantizes it to
    the 16-bit computation type whenever a weight is used, in the forward and the backward pass (Dettmers et
    al. 2023, QLoRA, arXiv 2305.14314, section 3, "QLoRA Finetuning"). In bitsandbytes that is
    ``F.dequantize_4bit`` writing the whole weight in the compute dtype before an ordinary matmul
    (``bitsandbytes/autograd/_functions.py``, ``MatMul4Bit.forward`` and ``.backward``; the fused 4-bit kernel
    serves single-token inference only): a read of the packed weight (:data:`.memory_knobs.QUANT_BYTES_PER_PARAM`,
    0.52-0.56 B with its block constants) and a 2 B write per weight, a streaming kernel bound by HBM bandwidth
    and paid per micro-batch whatever its size. Large next to a 1,000-token step, small next to a 16,000-token
    one, which the flat x0.75 it replaces could not say. Under FSDP each GPU dequantizes the gathered layer, so
    per GPU the full count. Scored on ``bench/cases`` (issue 18, second pass; all QLoRA rows are flagged
    suspect): Answer.AI's 2x4090/2x3090 rows (16-20k tokens per GPU step) -57..-51% -> -42..-35%, torchtune's
    4090 row -62% -> -50%, can-i-finetune's 7B on a 4080 -33% -> -17%; its 1.5B rows +8% -> +35%, whose
    measured rate includes the first (warm-up) step and so reads low.

    >>> from gpu_preflight.tools.estimator.catalogue import resolve_gpu
    >>> from gpu_preflight.tools.estimator.modelshape import resolve_model
    >>> from gpu_preflight.tools.estimator.spec import ModelSpec, TrainingSpec
    >>> m = resolve_model(ModelSpec(name="llama-3.1-8b"))
    >>> t = TrainingSpec(seq_len=2048, micro_batch=2, method="qlora", lora_rank=8, activation_checkpointing=True)
    >>> # 6.979e9 weights x 3 passes x (0.516 B nf4 double-quant + 2 B bf16) / (0.8 x 1008 GB/s), seconds -> ms:
    >>> round(dequant_time_s(t, resolve_gpu("RTX 4090", "gpu"), m) * 1000, 1)
    65.3
    """
    if t.method != "qlora":
        return 0.0
    out_bytes = 4.0 if t.precision == "fp32" else 2.0
    per_pass = quantized_params(m, t) * (QUANT_BYTES_PER_PARAM[t.quant_format] + out_bytes)
    return t.grad_accum * dequant_passes(t) * per_pass / (gpu.hbm_bw_gbps * 1e9 * HBM_ACHIEVED_FRACTION)


PCIE_GBPS_PER_DIRECTION = {3: 15.75, 4: 31.5, 5: 63.0}
"""PCIe x16 payload bandwidth per direction by generation, GB/s."""
NVLINK_ACHIEVED_FRACTION = 0.8
"""NCCL all-reduce bus bandwidth reaches about 80% of NVLink's per-direction figure on 8-GPU SXM
boards (nccl-tests on DGX A100/H100: ~230-240 of 300 GB/s, ~360-380 of 450 GB/s)."""
PCIE_ACHIEVED_FRACTION = 0.6
"""Over PCIe NCCL shares the root complex and, on GeForce cards without peer-to-peer, bounces through
host memory; 0.6 of the link's per-direction figure is assumed."""
PCIE_MEASURED_FRACTION = PCIE_ACHIEVED_FRACTION / 0.8
"""An offer's measured host<->GPU bandwidth (Vast ``pcie_bw``) already includes the link's own efficiency, about
0.8 of the datasheet figure on a healthy x16 link (a pinned copy moves ~25 of Gen4's 31.5 GB/s): 0.75 of the
measurement keeps a healthy offer at the catalogue's 0.6, and a degraded one (x8 lanes, a shared root complex)
is charged what it measured."""
GPUS_PER_NODE = 8
"""Above this many GPUs the run spans nodes, and the inter-node fabric (InfiniBand, RoCE, Ethernet) is
not in the spec or the catalogue: the collectives are then assumed hidden (comm 0, said in the notes).
The cold MFU priors were fitted on tuned multi-node runs (torchtitan, llm-foundry, Llama 2, Megatron)
whose measured rates already include their communication; charging it again made them 5-20% slow."""
EXPOSED_COMM_FRACTION = 0.05
"""Share of a collective that no schedule hides on a known link: the first all-gather before the forward
and the last gradient bucket after the backward (assumed)."""


def link_gbps(gpu: ResolvedGpu, num_gpus: int) -> tuple[float | None, str]:
    """Achieved collective bandwidth per GPU per direction (GB/s), or None where it is unknown."""
    if num_gpus > GPUS_PER_NODE:
        return None, "multi-node, fabric unknown: assumed hidden"
    row = lookup_gpu(gpu.name) if gpu.tflops_source == "catalogue" else None
    interconnect = (row.interconnect or "") if row else ""
    if row and row.nvlink_gbps and "bridge" not in interconnect.lower():
        return row.nvlink_gbps / 2 * NVLINK_ACHIEVED_FRACTION, f"NVLink {row.nvlink_gbps / 2:g} GB/s/direction"
    if gpu.pcie_measured_gbps:
        return gpu.pcie_measured_gbps * PCIE_MEASURED_FRACTION, f"PCIe {gpu.pcie_measured_gbps:g} GB/s (offer pcie_bw)"
    gen = row.pcie_gen if row and row.pcie_gen in PCIE_GBPS_PER_DIRECTION else 4
    assumed = "" if row and row.pcie_gen else " (assumed)"
    return PCIE_GBPS_PER_DIRECTION[gen] * PCIE_ACHIEVED_FRACTION, f"PCIe Gen{gen}{assumed}"


def comm_time_s(t: TrainingSpec, gpu: ResolvedGpu, params_total: int, params_trainable: int,
                compute_s: float) -> tuple[float, str]:
    """Seconds per step of data-parallel communication that compute does not hide, and the link used.

    Bytes each GPU sends, with ring collectives (``f = (n-1)/n``):

    * DDP: one gradient all-reduce per step (``no_sync`` while accumulating), ``2 f x grad bytes``; it
      overlaps the last micro-batch's backward (2/3 of its compute).
    * ZeRO-1/2: reduce-scatter of gradients plus all-gather of updated parameters, the same volume.
    * ZeRO-3/FSDP: every micro-batch all-gathers the weights for the forward and again for the backward
      and reduce-scatters the gradients, ``f x (2 x weight bytes x all params + grad bytes x trainable)``
      (a LoRA run still gathers its frozen weights); it overlaps that micro-batch's compute.

    Exposed time is ``max(EXPOSED_COMM_FRACTION x comm, comm - overlap)``; 0 across nodes (see
    :data:`GPUS_PER_NODE`). Weights travel in the compute dtype (2 B, fp32: 4 B) and gradients in the
    optimizer's (:func:`state_bytes`).
    """
    n = t.num_gpus
    if n == 1:
        return 0.0, "single GPU"
    bw, link = link_gbps(gpu, n)
    if bw is None:
        return 0.0, link
    f = (n - 1) / n
    grad_b = state_bytes(t)
    weight_b = 4.0 if t.precision == "fp32" else 2.0
    per_micro = compute_s / t.grad_accum
    sharding = t.sharding_resolved
    if sharding in ("zero3", "fsdp"):
        volume = f * (2 * weight_b * params_total + grad_b * params_trainable)
        syncs, overlap = t.grad_accum, per_micro
    elif sharding in ("zero1", "zero2"):
        volume, syncs, overlap = f * (grad_b + weight_b) * params_trainable, 1, per_micro * 2 / 3
    else:
        volume, syncs, overlap = 2 * f * grad_b * params_trainable, 1, per_micro * 2 / 3
    comm = volume / (bw * 1e9)
    return syncs * max(EXPOSED_COMM_FRACTION * comm, comm - overlap), link


class StepTimeTerms(BaseModel):
    """Seconds per optimizer step, by cause (cold estimates; the sum is ``step_time_s``)."""

    compute: float = Field(description="Matmul FLOPs / (peak x MFU), with the checkpointing factor.")
    optimizer: float = Field(description="Optimizer update + gradient clipping over HBM bandwidth.")
    comm: float = Field(description="Data-parallel collectives not hidden behind compute.")
    dequant: float = Field(default=0.0, description="QLoRA: 4-bit base weights dequantized per micro-batch pass.")
    eager_attention: float = Field(default=0.0, description="Eager attention's score matrices over HBM bandwidth.")
    lora_adapters: float = Field(default=0.0, description="LoRA adapter paths' element-wise traffic over HBM.")
    host_dispatch: float = Field(
        default=0.0, description="Host operator dispatch the GPU waits for (eager PyTorch, small micro-batches).")
    fixed: float = Field(description="Data loader, scheduler and logging per step.")
    comm_link: str = Field(default="", description="The link the comm term used.")


def step_time_terms(t: TrainingSpec, gpu: ResolvedGpu, m: ResolvedModel, params_trainable: int,
                    compute_s: float, matmul_flops_per_s: float) -> tuple[StepTimeTerms, float, str]:
    """The terms of a cold step (kept to the microsecond), their exact sum in seconds, and a one-line
    note naming the bytes and the link used. Muon's Newton-Schulz matmuls go in the optimizer term."""
    share = muon_share(m) if t.optimizer == "muon" else 1.0
    ns = muon_ns_time_s(t, m, params_trainable, matmul_flops_per_s)
    opt = optimizer_time_s(t, gpu, params_trainable, share) + ns
    comm, link = comm_time_s(t, gpu, m.params_total, params_trainable, compute_s)
    dequant = dequant_time_s(t, gpu, m)
    hbm_bytes_per_s = gpu.hbm_bw_gbps * 1e9 * HBM_ACHIEVED_FRACTION
    eager = eager_attention_bytes_per_gpu(t, m) / hbm_bytes_per_s
    adapters = lora_adapter_bytes_per_gpu(t, m) / hbm_bytes_per_s
    host = host_dispatch_s(m, t, compute_s + dequant + eager + adapters)
    terms = StepTimeTerms(compute=round(compute_s, 6), optimizer=round(opt, 6), comm=round(comm, 6),
                          dequant=round(dequant, 6), eager_attention=round(eager, 6), lora_adapters=round(adapters, 6),
                          host_dispatch=round(host, 6),
                          fixed=FIXED_STEP_S, comm_link=link)
    impl = f"/{t.optimizer_impl}" if t.optimizer in ("adamw", "lion", "muon") else ""
    opt_note = ("optimizer offloaded to CPU (not modelled)" if t.offload != "none" else
                f"{t.optimizer}{impl} {optimizer_bytes_per_param(t, share):.4g} B/param at "
                f"{HBM_ACHIEVED_FRACTION:g} x {gpu.hbm_bw_gbps:g} GB/s")
    if ns:
        opt_note += f" + Newton-Schulz {ns * 1000:.3g} ms"
    deq_note = (f"; 4-bit dequant {dequant_passes(t)} passes x {quantized_params(m, t) / 1e9:.3g}e9 weights"
                if dequant else "")
    eager_note = f"; eager attention scores {eager * 1000:.3g} ms" if eager else ""
    adapter_note = f"; LoRA adapter paths {adapters * 1000:.3g} ms" if adapters else ""
    host_note = (f"; host-bound: {host_time_per_micro_batch_s(m, t) * 1000:.3g} ms of operator dispatch per "
                 f"micro-batch, {host * 1000:.3g} ms per step not hidden" if host else "")
    note = (f"step terms: {opt_note}; comm {link}{deq_note}{eager_note}{adapter_note}{host_note}; "
            f"fixed {FIXED_STEP_S * 1000:g} ms")
    return terms, compute_s + opt + comm + dequant + eager + adapters + host + FIXED_STEP_S, note

"""Peer estimators run on the same cases as ours, so the benchmark shows where we stand.

Two kinds of peers:

* **Formula peers, reimplemented here** (no dependency, always run): DeepSpeed's model-state
  estimators and EleutherAI's ``calc_transformer_mem.py``. They are transcribed line for line from
  the cited functions, so their error is theirs, not a paraphrase's:

  - ``deepspeed/runtime/zero/stage_1_and_2.py::estimate_zero2_model_states_mem_needs`` and
    ``deepspeed/runtime/zero/stage3.py::estimate_zero3_model_states_mem_needs`` (GPU side only;
    model states, no activations, which is exactly what a user who calls them reads).
  - ``EleutherAI/cookbook calc/calc_transformer_mem.py::calc_mem`` (training branch, per-GPU total),
    driven with the flags a user would pass for the case (``--num-mlp-linears 3`` and
    ``--ffn-expansion-factor I/h`` for gated MLPs, ``--kv-size-ratio`` for GQA, the ZeRO stage).

* **pip-installable peers** (llm-analysis, ftuneai, gpu-estimator, alloc): they pin old
  ``transformers``/``huggingface-hub`` or pull in torch, so they are never project dependencies. They
  run only when the caller points ``--peer-python`` at the interpreter of a throwaway virtualenv that
  has them (the accuracy module docstring shows how to make one); ``bench/peer_runner.py`` is executed
  there as a subprocess and talks JSON on stdin/stdout, so nothing of theirs is imported here.

Every peer answers ``None`` for a case it cannot express (LoRA for a full-fine-tune formula, a GPU
missing from its catalogue, an architecture it refuses), and the benchmark scores it only on the
cases it answered, saying how many that was.
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu_preflight.tools.estimator.modelshape import ResolvedModel
from gpu_preflight.tools.estimator.spec import RunSpec

GB = 1e9
RUNNER = Path(__file__).with_name("peer_runner.py")

FORMULA_PEERS = ("deepspeed", "eleuther")
"""Reimplemented in this module; always available."""
EXTERNAL_PEERS = ("llm-analysis", "ftuneai", "gpu-estimator", "alloc")
"""Run through ``peer_runner.py`` in a throwaway virtualenv."""


@dataclass(frozen=True)
class PeerFacts:
    """The case as plain numbers: what every peer needs, resolved once by our own model code."""

    case_id: str
    kind: str
    gpu: str
    family: str
    n_layers: int
    hidden_size: int
    n_heads: int
    n_kv_heads: int
    intermediate_size: int
    vocab_size: int
    mlp_gated: bool
    tied_embeddings: bool
    params_total: int
    params_trainable: int
    largest_layer_params: int
    method: str
    lora_rank: int | None
    lora_targets: str
    precision: str
    master_weights_fp32: bool
    optimizer: str
    seq_len: int
    micro_batch: int
    grad_accum: int
    num_gpus: int
    sharding: str
    offload: str
    activation_checkpointing: bool
    attention: str
    target_tokens: int

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def facts_for(case_id: str, kind: str, gpu: str, spec: RunSpec, m: ResolvedModel, params_trainable: int,
              target_tokens: int) -> PeerFacts:
    """Flatten a case for the peers. ``largest_layer_params`` is DeepSpeed's notion: the biggest single
    module (``model_to_params`` walks ``model.modules()``), which for LLMs is the embedding or LM head."""
    t = spec.training
    largest = max(m.vocab_size * m.hidden_size, m.hidden_size * m.intermediate_size, m.hidden_size * m.q_dim)
    return PeerFacts(
        case_id=case_id, kind=kind, gpu=gpu, family=m.family, n_layers=m.n_layers, hidden_size=m.hidden_size,
        n_heads=m.n_heads, n_kv_heads=m.n_kv_heads, intermediate_size=m.intermediate_size, vocab_size=m.vocab_size,
        mlp_gated=m.mlp_gated, tied_embeddings=m.tied_embeddings, params_total=m.params_total,
        params_trainable=params_trainable, largest_layer_params=largest, method=t.method, lora_rank=t.lora_rank,
        lora_targets=t.lora_targets, precision=t.precision, master_weights_fp32=t.master_weights_fp32,
        optimizer=t.optimizer, seq_len=t.seq_len, micro_batch=t.micro_batch, grad_accum=t.grad_accum,
        num_gpus=t.num_gpus, sharding=t.sharding_resolved, offload=t.offload,
        activation_checkpointing=t.activation_checkpointing, attention=t.attention, target_tokens=target_tokens,
    )


# ----------------------------------------------------------------------------------------------- DeepSpeed


def ds_estimate_zero2_model_states_mem_needs(total_params: int, num_gpus_per_node: int = 1, num_nodes: int = 1,
                                             cpu_offload: bool = True,
                                             additional_buffer_factor: float = 1.5) -> tuple[int, int]:
    """Transcribed from ``deepspeed.runtime.zero.stage_1_and_2`` (returns cpu_mem, gpu_mem in bytes)."""
    total_gpus = num_nodes * num_gpus_per_node
    if cpu_offload:
        gpu_mem = 2 * total_params
        cpu_mem = total_params * max(4 * total_gpus, 16) * additional_buffer_factor
    else:
        gpu_mem = 4 * total_params + int(16 * total_params / total_gpus)
        cpu_mem = total_params * 4 * num_gpus_per_node * additional_buffer_factor
    return int(cpu_mem), int(gpu_mem)


def ds_estimate_zero3_model_states_mem_needs(total_params: int, largest_layer_params: int, num_gpus_per_node: int = 1,
                                             num_nodes: int = 1, cpu_offload: bool = True,
                                             cpu_offload_params: bool = True, zero_init: bool = True,
                                             additional_buffer_factor: float = 1.5) -> tuple[int, int, int]:
    """Transcribed from ``deepspeed.runtime.zero.stage3`` (returns cpu_mem, gpu_mem, largest_layer_memory)."""
    total_gpus = num_nodes * num_gpus_per_node
    gpus_factor = 1 / num_nodes
    largest_layer_memory = 4 * largest_layer_params
    if cpu_offload:
        if cpu_offload_params:
            gpu_mem = largest_layer_memory
            if zero_init:
                cpu_mem = total_params * 18 * gpus_factor * additional_buffer_factor
            else:
                cpu_mem = total_params * max(4 * num_gpus_per_node, 18 * gpus_factor) * additional_buffer_factor
        else:
            gpu_mem = largest_layer_memory + int(2 * total_params / total_gpus)
            if zero_init:
                cpu_mem = total_params * 16 * gpus_factor * additional_buffer_factor
            else:
                cpu_mem = total_params * max(4 * num_gpus_per_node, 16 * gpus_factor) * additional_buffer_factor
    else:
        gpu_mem = largest_layer_memory + int(18 * total_params / total_gpus)
        if zero_init:
            cpu_mem = largest_layer_params * 4 * num_gpus_per_node * additional_buffer_factor
        else:
            cpu_mem = total_params * 4 * num_gpus_per_node * additional_buffer_factor
    return int(cpu_mem), int(gpu_mem), largest_layer_memory


def deepspeed_memory_gb(f: PeerFacts) -> float | None:
    """GPU model-state bytes from the estimator a DeepSpeed user would call for this sharding.

    ZeRO-3/FSDP cases use the ZeRO-3 estimator; everything else the ZeRO-2 one (DeepSpeed has no
    ZeRO-0/1 estimator, so a single-GPU or DDP user gets ZeRO-2's ``4P + 16P/N``). Only full
    fine-tuning in mixed precision is what these functions describe.
    """
    if f.method != "full":
        return None
    per_node = min(f.num_gpus, 8)
    nodes = max(1, math.ceil(f.num_gpus / per_node))
    offload = f.offload != "none"
    if f.sharding in ("zero3", "fsdp"):
        _, gpu, _ = ds_estimate_zero3_model_states_mem_needs(
            f.params_total, f.largest_layer_params, per_node, nodes, cpu_offload=offload,
            cpu_offload_params=f.offload == "optimizer_and_params")
    else:
        _, gpu = ds_estimate_zero2_model_states_mem_needs(f.params_total, per_node, nodes, cpu_offload=offload)
    return gpu / GB


# ------------------------------------------------------------------------------------------------ EleutherAI


def eleuther_memory_gb(f: PeerFacts) -> float | None:
    """``calc_mem`` training branch of EleutherAI/cookbook ``calc/calc_transformer_mem.py`` (GiB -> GB).

    Transcribed with its defaults (zero_allgather_bucket_size 5e8, zero3_max_live_params 1e9,
    high/low precision 4/2 bytes, 4-byte grads, 12-byte Adam incl. master, misc_mem_gib 0). Its
    embedding count is always untied (2Vh) and it adds learned positions (h*s); that is the tool.
    """
    if f.method != "full":
        return None
    stage = {"none": 0, "ddp": 0, "zero1": 1, "zero2": 2, "zero3": 3, "fsdp": 3}[f.sharding]
    mixed = f.precision != "fp32"
    h, layers, s, b, v, a = (f.hidden_size, f.n_layers, f.seq_len, f.micro_batch, f.vocab_size, f.n_heads)
    kv_ratio = f.n_kv_heads / f.n_heads
    ffn = f.intermediate_size / h
    mlp_linears = 3 if f.mlp_gated else 2
    n = f.num_gpus
    embed_params = 2 * v * h
    positional_params = h * s
    ln_params = 8 * h * layers + 2 * h
    attention_params = int(2 * (1 + kv_ratio) * layers * h * h)
    mlp_params = mlp_linears * layers * h * ffn * h
    total_params = embed_params + positional_params + ln_params + attention_params + mlp_params
    low, high = 2, 4
    bytes_per_param = low if mixed else high
    per_gpu_model_mem = total_params * bytes_per_param
    if stage == 3:
        per_gpu_model_mem /= n
    per_gpu_gradient_mem = total_params * 4
    if stage >= 2:
        per_gpu_gradient_mem /= n
    per_gpu_optimizer_mem = total_params * 12
    if stage >= 1:
        per_gpu_optimizer_mem /= n
    comm = 0.0
    if stage >= 1 and n > 1:
        comm += 5e8 * bytes_per_param
    if stage == 3 and n > 1:
        comm += 1e9 * bytes_per_param
    if f.activation_checkpointing:
        act = s * b * h * layers * (16 * low + 2)
    else:
        act = s * b * h * layers * ((16 * low + 2) + (2 * low + 1) * (a * s / h))
    per_gpu = act + per_gpu_gradient_mem + per_gpu_model_mem + per_gpu_optimizer_mem + comm
    return per_gpu / GB


# --------------------------------------------------------------------------------------------- external


@dataclass
class ExternalResult:
    """What the runner answered: predictions per case and peer, and why a peer could not run at all."""

    predictions: dict[str, dict[str, dict[str, float | None] | None]]
    unavailable: dict[str, str]
    refused: dict[str, dict[str, str]]


def run_external(facts: list[PeerFacts], python: str, timeout_s: float = 300.0) -> ExternalResult:
    """Run ``peer_runner.py`` with the throwaway virtualenv's interpreter; never raises for a peer's fault."""
    payload = json.dumps([f.as_json() for f in facts])
    try:
        proc = subprocess.run([python, str(RUNNER)], input=payload, capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return ExternalResult({}, dict.fromkeys(EXTERNAL_PEERS, f"runner did not start or finish: {exc}"), {})
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError:
        tail = (proc.stderr or proc.stdout)[-300:]
        return ExternalResult({}, dict.fromkeys(EXTERNAL_PEERS, f"runner failed (rc {proc.returncode}): {tail}"), {})
    return ExternalResult(out.get("predictions", {}), out.get("unavailable", {}), out.get("refused", {}))

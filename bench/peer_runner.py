"""Runs the pip-installable peers inside their own throwaway virtualenv; spoken to over stdin/stdout JSON.

Why a separate process: llm-analysis pins ``huggingface-hub<0.15``/old ``transformers``, gpu-estimator
pulls torch; none of that may leak into gpu-preflight's environment. ``bench/peers.py`` sends a list of
flattened cases (``PeerFacts``) and gets back ```{"predictions": {peer: {case_id: {"memory_gb": x,
"tokens_per_s_total": y}}}, "unavailable": {peer: reason}, "refused": {peer: {case_id: reason}}}``.
Nothing here touches the network: every peer is driven from explicit shapes, never from a Hub name.

Settings chosen for each peer (a user has to pick them too; each is the tool's documented knob):

* llm-analysis 0.2.2: ``train()`` with a model JSON of the case's shape, its own GPU catalogue,
  dtype ``w16a16e16``, ``flops_efficiency=0.5`` (its default 1.0 is a latency lower bound), full
  recompute when the case checkpoints, DeepSpeed ZeRO stage from the sharding. Full fine-tuning in
  half precision only; it refuses FFN sizes that are not a multiple of the hidden size.
* ftuneai 0.4.1: its ``MemoryEstimator``/``TimeEstimator`` with a ``ModelSpec`` built from the case
  (its model database has no MPT/BERT/GPT-2/Llama-2), default MFU, its own GPU database for time.
* gpu-estimator 0.2.0: ``GPUEstimator.estimate`` (params, batch, seq, precision, optimizer,
  checkpointing), total memory split evenly over the case's GPUs; throughput from its steps/s
  heuristic.
* alloc 0.0.16: ``alloc.ghost(param_count, dtype, batch, seq, hidden)`` (memory only).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable
from typing import Any

Prediction = dict[str, float | None]

LLM_ANALYSIS_GPUS = {"A100 SXM4": "a100-sxm-80gb", "A100-SXM4-40GB": "a100-sxm-40gb", "H100 SXM": "h100-sxm-80gb",
                     "Tesla V100": "v100-sxm-16gb", "RTX A6000": "a6000-48gb"}
FTUNE_GPUS = {"A100 SXM4": "A100-80GB", "A100-SXM4-40GB": "A100-40GB", "H100 SXM": "H100-80GB",
              "Tesla V100": "V100-16GB", "RTX 4090": "RTX-4090-24GB"}
GPU_ESTIMATOR_GPUS = {"A100 SXM4": "A100", "A100-SXM4-40GB": "A100", "H100 SXM": "H100", "Tesla V100": "V100",
                      "RTX 4090": "RTX4090", "RTX A6000": "A6000"}
GIB = 2**30


def _quiet(fn: Callable[[], Any]) -> Any:
    """Peers print banners and logs; keep stdout for the JSON answer."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return fn()


def llm_analysis_peer(f: dict[str, Any]) -> Prediction | None:
    from llm_analysis.analysis import train

    if f["method"] != "full" or f["precision"] == "fp32" or f["gpu"] not in LLM_ANALYSIS_GPUS:
        return None
    cfg = {"name": f["case_id"], "num_layers": f["n_layers"], "n_head": f["n_heads"], "hidden_dim": f["hidden_size"],
           "vocab_size": f["vocab_size"], "max_seq_len": f["seq_len"], "num_key_value_heads": f["n_kv_heads"],
           "ffn_embed_dim": f["intermediate_size"], "model_type": f["family"]}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(cfg, fh)
        path = fh.name
    stage = {"none": 0, "ddp": 0, "zero1": 1, "zero2": 2, "zero3": 3, "fsdp": 3}[f["sharding"]]
    try:
        out = _quiet(lambda: train(
            model_name=path, gpu_name=LLM_ANALYSIS_GPUS[f["gpu"]], dtype_name="w16a16e16", log_level="ERROR",
            batch_size_per_gpu=f["micro_batch"], gradient_accumulation_steps=f["grad_accum"], seq_len=f["seq_len"],
            total_num_tokens=f["target_tokens"], activation_recomputation=2 if f["activation_checkpointing"] else 0,
            ds_zero=stage, total_num_gpus=f["num_gpus"], flash_attn=f["attention"] != "eager",
            mlp_gated_linear_units=f["mlp_gated"], flops_efficiency=0.5,
            master_weights_dtype_bytes=4 if f["master_weights_fp32"] else 2))
    finally:
        os.unlink(path)
    tokens_per_iter = f["micro_batch"] * f["grad_accum"] * f["seq_len"]
    per_gpu = tokens_per_iter / out["latency_per_iter"]
    return {"memory_gb": out["(weight+op_state+grad+act)_memory_per_gpu"] / 1e9,
            "tokens_per_s_total": per_gpu * f["num_gpus"]}


def ftune_peer(f: dict[str, Any]) -> Prediction | None:
    from ftuneai.core.memory import MemoryEstimator
    from ftuneai.core.models import ModelSpec, TrainingConfig
    from ftuneai.core.time import TimeEstimator
    from ftuneai.loader import get_gpu

    sharding = {"none": "none", "ddp": "none", "zero1": "zero_1", "zero2": "zero_2", "zero3": "zero_3",
                "fsdp": "fsdp"}[f["sharding"]]
    optimizer = {"adamw": "adamw", "adamw_8bit": "adam_8bit", "sgd": "sgd", "adafactor": "adafactor"}[f["optimizer"]]
    model = ModelSpec(name=f["case_id"], parameters=f["params_total"], hidden_size=f["hidden_size"],
                      num_layers=f["n_layers"], num_attention_heads=f["n_heads"], num_kv_heads=f["n_kv_heads"],
                      intermediate_size=f["intermediate_size"], vocab_size=f["vocab_size"], max_seq_length=f["seq_len"])
    from ftuneai.core.models import FineTuneMethod, LoRATarget, OptimizerType, Quantization, ShardingStrategy

    config = TrainingConfig(
        model=f["case_id"], method=FineTuneMethod(f["method"]),
        quantization=Quantization("4bit" if f["method"] == "qlora" else "none"), batch_size=f["micro_batch"],
        seq_length=f["seq_len"], gradient_checkpointing=f["activation_checkpointing"],
        optimizer=OptimizerType(optimizer), lora_rank=f["lora_rank"] or 16,
        lora_target=LoRATarget("all_linear" if f["lora_targets"] == "all_linear" else "attention"),
        flash_attention=f["attention"] != "eager", sharding=ShardingStrategy(sharding), num_gpus=f["num_gpus"])
    mem = _quiet(lambda: MemoryEstimator(model, config).estimate())
    tps: float | None = None
    if f["gpu"] in FTUNE_GPUS:
        samples = max(1, f["target_tokens"] // f["seq_len"])
        est = _quiet(lambda: TimeEstimator(model, config).estimate(
            gpu=get_gpu(FTUNE_GPUS[f["gpu"]]), dataset_size=samples, epochs=1, num_gpus=f["num_gpus"],
            gradient_accumulation_steps=f["grad_accum"]))
        if est.total_hours > 0:
            tps = est.total_tokens / (est.total_hours * 3600)
    return {"memory_gb": mem.total_gb, "tokens_per_s_total": tps}


def gpu_estimator_peer(f: dict[str, Any]) -> Prediction | None:
    from gpu_estimator.estimator import GPUEstimator

    gpu = GPU_ESTIMATOR_GPUS.get(f["gpu"])
    optimizer = {"adamw": "adamw", "sgd": "sgd"}.get(f["optimizer"])
    if optimizer is None:
        return None
    est = GPUEstimator()
    res = _quiet(lambda: est.estimate(
        model_params=f["params_trainable"] if f["method"] != "full" else f["params_total"],
        batch_size=f["micro_batch"], sequence_length=f["seq_len"], precision=f["precision"], optimizer=optimizer,
        gpu_type=gpu, gradient_checkpointing=f["activation_checkpointing"]))
    memory = res.total_memory_gb * GIB / 1e9 / f["num_gpus"]
    tps = None
    if gpu is not None:
        steps = est._estimate_throughput(f["params_total"], f["micro_batch"], f["seq_len"], gpu)
        tps = steps * f["micro_batch"] * f["seq_len"] * f["num_gpus"]
    return {"memory_gb": memory if f["method"] == "full" else None, "tokens_per_s_total": tps}


def alloc_peer(f: dict[str, Any]) -> Prediction | None:
    import alloc

    if f["method"] != "full":
        return None
    dtype = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[f["precision"]]
    rep = _quiet(lambda: alloc.ghost(param_count=f["params_total"], dtype=dtype, batch_size=f["micro_batch"],
                                     seq_length=f["seq_len"], hidden_dim=f["hidden_size"]))
    if rep.estimation_failed:
        return None
    return {"memory_gb": rep.total_gb * GIB / 1e9 / f["num_gpus"], "tokens_per_s_total": None}


PEERS: dict[str, Callable[[dict[str, Any]], Prediction | None]] = {
    "llm-analysis": llm_analysis_peer, "ftuneai": ftune_peer, "gpu-estimator": gpu_estimator_peer,
    "alloc": alloc_peer,
}


def main() -> int:
    facts = json.load(sys.stdin)
    predictions: dict[str, dict[str, Prediction | None]] = {}
    unavailable: dict[str, str] = {}
    refused: dict[str, dict[str, str]] = {}
    for name, fn in PEERS.items():
        answers: dict[str, Prediction | None] = {}
        for f in facts:
            try:
                answers[f["case_id"]] = fn(f)
            except ImportError as exc:
                unavailable[name] = f"not importable in this interpreter: {exc}"
                break
            except Exception as exc:  # a peer refusing a case is a result, not a crash
                answers[f["case_id"]] = None
                refused.setdefault(name, {})[f["case_id"]] = f"{type(exc).__name__}: {str(exc)[:160]}"
        if name not in unavailable:
            predictions[name] = answers
    json.dump({"predictions": predictions, "unavailable": unavailable, "refused": refused}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

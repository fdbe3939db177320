"""The run spec: what an agent plans to train, in the file format the playbooks' inputs map to.

A spec has four sections, ``model``, ``training``, ``target`` and ``overheads`` (plus an optional
``baseline``), and loads from JSON or TOML with exactly these key names. Every size carries its
unit in its name. Validation is strict (unknown keys are refused, so a typo such as
``micro_batch_size`` is an error rather than a silently ignored default) and cross-field rules
(batch consistency, LoRA rank, offload needs a sharded optimizer) are checked here once, so every
estimator can trust what it gets.

Imported by the offers and telemetry rooms and by both doors on purpose: the run spec is the one input
language of every capability (an option table prices a spec; a probe calibrates one).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gpu_preflight.tools.common.errors import PreflightError, from_validation_error
from gpu_preflight.tools.common.files import read_text_file
from gpu_preflight.tools.common.limits import loads_json, loads_toml
from gpu_preflight.tools.estimator.frameworks import METHOD_ONLY, Loss, fill_defaults

# The smaller sections live in spec_parts; re-exported here, where callers import the spec from.
from gpu_preflight.tools.estimator.spec_parts import BaselineSpec as BaselineSpec
from gpu_preflight.tools.estimator.spec_parts import DiskItems as DiskItems
from gpu_preflight.tools.estimator.spec_parts import NonNegativeFloat as NonNegativeFloat
from gpu_preflight.tools.estimator.spec_parts import OverheadsSpec as OverheadsSpec
from gpu_preflight.tools.estimator.spec_parts import PositiveFloat as PositiveFloat
from gpu_preflight.tools.estimator.spec_parts import PositiveInt as PositiveInt
from gpu_preflight.tools.estimator.spec_parts import StackChange as StackChange
from gpu_preflight.tools.estimator.spec_parts import TargetSpec as TargetSpec
from gpu_preflight.tools.estimator.spec_parts import _Strict

Method = Literal["full", "lora", "qlora"]
Precision = Literal["bf16", "fp16", "fp32", "fp8"]
QuantFormat = Literal["nf4", "nf4_double_quant", "gptq", "torchao_int4"]
Optimizer = Literal["adamw", "adamw_8bit", "paged_adamw_8bit", "sgd", "adafactor", "lion", "muon"]
LoraModule = Literal["q_proj", "k_proj", "v_proj", "qkv_proj", "o_proj", "gate_proj", "up_proj", "gate_up_proj",
                     "down_proj", "lm_head"]
"""PEFT ``target_modules`` names of Llama-style models; on a 2-matrix MLP (GPT-2, NeoX) up/down are fc1/fc2."""
Offload = Literal["none", "optimizer", "optimizer_and_params"]

Sharding = Literal["none", "ddp", "zero1", "zero2", "zero3", "fsdp"]
Attention = Literal["sdpa", "flash", "eager"]
Tuning = Literal["untuned", "normal", "well_tuned"]
Framework = Literal["hf_trainer", "trl", "peft", "axolotl", "unsloth", "torchtune", "llama_factory", "litgpt",
                    "lightning", "llm_foundry", "torchtitan", "megatron_lm", "nemo", "deepspeed", "nanogpt",
                    "custom", "other"]
"""One value per row of ``data/frameworks.toml``, plus ``custom``/``other`` (no row; tests keep them in step)."""

class ModelSpec(_Strict):
    """The model: a preset name, a Hugging Face ``config.json`` path, or explicit sizes and shape."""

    name: str = Field(default="custom", max_length=200, description="Preset name (e.g. llama-3.1-8b) or a label.")
    params_total: PositiveInt | None = Field(default=None, le=10**13, description="All parameters of the base model.")
    params_trainable: PositiveInt | None = Field(
        default=None, le=10**13, description="Trained parameters; derived from the method when absent."
    )
    hf_config: str | None = Field(default=None, description="Path to a Hugging Face config.json (no download).")
    family: str | None = Field(default=None, description="llama, mistral, qwen2, gemma, gemma2, phi3, gpt2, gpt_neox.")
    n_layers: PositiveInt | None = Field(default=None, le=1000)
    hidden_size: PositiveInt | None = Field(default=None, le=1_000_000)
    n_heads: PositiveInt | None = Field(default=None, le=10_000)
    n_kv_heads: PositiveInt | None = Field(default=None, le=10_000)
    head_dim: PositiveInt | None = Field(default=None, le=100_000)
    intermediate_size: PositiveInt | None = Field(default=None, le=10_000_000)
    vocab_size: PositiveInt | None = Field(default=None, le=10_000_000)
    tied_embeddings: bool | None = None
    mlp_gated: bool | None = Field(
        default=None, description="SwiGLU/GeGLU MLP (3 matrices) rather than a 2-matrix MLP."
    )
    dropout: bool | None = Field(default=None, description="Dropout active in training (GPT-2/BERT: yes; Llama: no).")
    fused_qkv: bool | None = Field(
        default=None, description="q, k and v are one matrix (LoRA target qkv_proj): Phi-3's qkv_proj, GPT-2's and "
        "Qwen (v1)'s c_attn, GPT-NeoX's query_key_value. Default: phi3, gpt2, gpt_neox.")
    fused_gate_up: bool | None = Field(
        default=None, description="The MLP's gate and up are one matrix (LoRA target gate_up_proj): Phi-3. "
        "Default: phi3.")
    attention_window: PositiveInt | None = Field(
        default=None, le=10_000_000,
        description="Sliding-window attention span in tokens (Mistral-7B-v0.1: 4096; gemma2: every other layer).",
    )


class TrainingSpec(_Strict):
    """How it is trained. Defaults are the common single-GPU bf16 AdamW fine-tune."""

    method: Method = "full"
    precision: Precision = Field(
        default="bf16", description="fp8: float8 linears (torchao/Transformer Engine) on bf16 weights; needs "
        "FP8 tensor cores (Ada, Hopper, Blackwell).")
    master_weights_fp32: bool = Field(
        default=True,
        description="Mixed precision keeps fp32 master weights and fp32 Adam states (18 B/param). "
        "False: pure bf16/fp16 weights and optimizer states (about 8 B/param).",
    )
    optimizer: Optimizer = Field(
        default="adamw",
        description="paged_adamw_8bit: adamw_8bit's states in paged memory (same resident size); lion: one "
        "momentum; muon (method full): one momentum per hidden matrix, AdamW for embeddings, head, norms.",
    )
    seq_len: PositiveInt = Field(le=10_000_000, description="The longest sample (or the packed window): sets the "
                                 "memory peak.")
    mean_seq_len: PositiveInt | None = Field(
        default=None, le=10_000_000,
        description="Mean sample length, with packing=false: sets the real tokens per step (throughput).",
    )
    packing: bool = Field(
        default=True,
        description="true: samples packed into full seq_len windows; false: one sample per row, padded to the "
        "longest in its micro-batch (seq_len assumed when micro_batch > 1).",
    )
    micro_batch: PositiveInt = Field(le=1_000_000)
    grad_accum: PositiveInt = Field(default=1, le=1_000_000)
    global_batch: PositiveInt | None = Field(default=None, description="micro_batch * grad_accum * data-parallel GPUs.")
    activation_checkpointing: bool | Literal["selective"] = Field(
        default=False, description="true: full (one input kept per layer); selective: torchtitan-style op-level."
    )
    loss: Loss = Field(
        default="standard",
        description="standard cross-entropy holds fp32 logits; hf: transformers >= 4.46 causal-LM loss (bf16 logits "
        "kept, fp32 copy in the loss); hf_legacy: transformers 4.36-4.45 (fp32 logits in forward); no_upcast: "
        "cross_entropy on bf16 logits of a model.to(bfloat16) loop without autocast; chunked (torchtune) "
        "upcasts one chunk at a time; fused (Liger, Cut-Cross-Entropy) never materializes the logits; none: no "
        "vocabulary logits (a classification head).",
    )
    optimizer_in_backward: bool = Field(
        default=False, description="Step each parameter during backward and free its gradient (torchtune)."
    )
    offload: Offload = "none"
    num_gpus: PositiveInt = Field(default=1, le=4096)
    sharding: Sharding | None = Field(default=None, description="Default: none on 1 GPU, ddp on more.")
    lora_rank: PositiveInt | None = Field(default=None, le=65536)
    quant_format: QuantFormat = Field(
        default="nf4_double_quant",
        description="qlora base weights: bitsandbytes nf4 (0.5625 B/param), nf4_double_quant (0.516), gptq "
        "(4-bit, group 128: 0.52), torchao_int4 (group 128: 0.531).",
    )
    quant_lm_head: bool = Field(default=False, description="qlora: quantize the LM head too (default: kept bf16).")
    quant_load: Literal["per_tensor", "full_model"] = Field(
        default="per_tensor", description="qlora: how the base model is quantized while loading. per_tensor: each "
        "weight as it arrives (transformers quantization_config, LitGPT, torchtune); full_model: the half-precision "
        "model is on the GPU first (torchao quantize_ after .to('cuda')): the load can set the peak.")
    kbit_upcast_fp32: bool = Field(
        default=False, description="qlora: PEFT's prepare_model_for_kbit_training casts the unquantized weights "
        "(embeddings, head, norms) to fp32 (framework peft: true; not for gptq/torchao_int4).")
    quant_saves_input: bool = Field(
        default=False, description="qlora: the 4-bit matmul keeps its input for backward (bitsandbytes < 0.43.2; "
        "framework litgpt: true, it pins 0.42.0).")
    lora_adapter_dtype: Literal["fp32", "base"] = Field(
        default="base", description="lora/qlora adapters' dtype. fp32: PEFT >= 0.12 upcasts them "
        "(autocast_adapter_dtype; framework peft, hf_trainer, trl, axolotl, llama_factory: fp32), each adapted "
        "input is cast and kept in fp32; base: the model's dtype (torchtune, litgpt).")
    lora_dropout: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="lora/qlora: dropout on each adapter's input (PEFT default 0; "
        "framework litgpt 0.05). Above 0 each adapter keeps its own dropped-out input and a mask for backward.")
    lora_qkv_merged: bool = Field(
        default=False, description="lora/qlora: q/k/v adapters are one module over their shared input, with one "
        "dropout (LitGPT's LoRAQKVLinear; framework litgpt). PEFT: one module per matrix.")
    lora_targets: Literal["all_linear", "attention"] | tuple[LoraModule, ...] = Field(
        default="all_linear",
        description='all_linear (every layer matrix, no lm_head), attention (q/k/v/o), or module names, e.g. '
        '["q_proj", "v_proj"] ("lm_head" adds the output layer); a fused model names qkv_proj / gate_up_proj '
        '(model.fused_qkv, model.fused_gate_up).',
    )
    attention: Attention = Field(default="sdpa", description="sdpa/flash keep no score matrix; eager stores it.")
    optimizer_impl: Literal["foreach", "fused", "loop"] = Field(
        default="foreach",
        description="torch AdamW implementation: foreach (torch default) holds a full-size temporary in step().",
    )
    zero_grad_set_to_none: bool = Field(
        default=True, description="torch>=2.0 frees gradients between steps; False keeps them through the forward."
    )
    torch_compile: bool = Field(
        default=False, description="torch.compile the model: x1.16 matmul speed, no fp32 norm copies saved.")
    eval_micro_batch: PositiveInt | None = Field(
        default=None, le=1_000_000, description="Eval batch while training state stays resident (peak = max).")
    eval_generation_tokens: int = Field(
        default=0, ge=0, le=10_000_000, description="Tokens generated per eval sample (KV cache at eval batch).")
    eval_prompt_tokens: PositiveInt | None = Field(
        default=None, le=10_000_000, description="Longest eval prompt when the eval generates (default seq_len).")
    framework: Framework | None = Field(
        default=None,
        description="The training stack (nanogpt: also nanochat, modded-nanogpt; llm_foundry: Composer). Sets the "
        "cold MFU class (unless tuning/mfu is given) and the memory fields it defaults (optimizer_impl, "
        "activation_checkpointing, loss, attention) that the spec leaves out; custom/other: generic, with a warning.",
    )
    tuning: Tuning = Field(
        default="normal",
        description="Picks the cold MFU: untuned 0.20, normal 0.30, well_tuned 0.40; given, beats framework.",
    )
    mfu: float | None = Field(default=None, gt=0, le=1, description="Override the assumed MFU for cold estimates.")
    _from_framework: tuple[str, ...] = PrivateAttr(default=())
    """Fields the framework filled (not the user): the output says where the MFU prior came from."""

    @property
    def from_framework(self) -> tuple[str, ...]:
        return self._from_framework

    @model_validator(mode="wrap")
    @classmethod
    def _framework_defaults(cls, data: Any, handler: ModelWrapValidatorHandler[TrainingSpec]) -> TrainingSpec:
        """Fill what the spec left out from ``training.framework`` before the fields are checked, so every
        estimator (memory, step-time terms, throughput) sees the framework's real defaults."""
        filled: tuple[str, ...] = ()
        if isinstance(data, dict):
            data, filled = fill_defaults(data)
        spec = handler(data)
        spec._from_framework = filled
        return spec

    @field_validator("lora_targets", mode="before")
    @classmethod
    def _lora_targets(cls, value: Any) -> Any:
        """One plain message for both shapes (pydantic's union report names its internal branches)."""
        names = get_args(LoraModule)
        if value in ("all_linear", "attention"):
            return value
        if (not isinstance(value, list | tuple) or not value or len(set(map(str, value))) != len(value)
                or any(v not in names for v in value)):
            raise ValueError(f"all_linear, attention, or a list of distinct module names from {', '.join(names)}")
        return tuple(value)

    @field_validator("mean_seq_len")
    @classmethod
    def _mean_below_longest(cls, value: int | None, info: ValidationInfo) -> int | None:
        longest = info.data.get("seq_len")
        if value is not None and longest is not None and value > longest:
            raise ValueError(f"at most seq_len ({longest}, the longest sample)")
        return value

    @field_validator(*METHOD_ONLY)
    @classmethod
    def _method_only(cls, value: Any, info: ValidationInfo) -> Any:
        """A knob of the adapters or the 4-bit base, given where that method does not run: refused, not ignored."""
        default = cls.model_fields[str(info.field_name)].default
        methods = METHOD_ONLY[str(info.field_name)]
        if value != default and info.data.get("method", "full") not in methods:
            raise ValueError(f"applies only to method={' or '.join(methods)} (leave it out, or {default!r})")
        return value

    @field_validator("quant_load")
    @classmethod
    def _gptq_loads_quantized(cls, value: str, info: ValidationInfo) -> str:
        if value == "full_model" and info.data.get("quant_format") == "gptq":
            raise ValueError("per_tensor with quant_format=gptq (a GPTQ checkpoint is already 4-bit when it loads)")
        return value

    @field_validator("optimizer")
    @classmethod
    def _muon_full_only(cls, value: str, info: ValidationInfo) -> str:
        if value == "muon" and info.data.get("method", "full") != "full":
            raise ValueError("muon only with method=full (LoRA adapters use adamw, lion, sgd...)")
        return value

    @property
    def sharding_resolved(self) -> Sharding:
        if self.sharding is not None:
            return self.sharding
        return "ddp" if self.num_gpus > 1 else "none"

    @property
    def global_batch_resolved(self) -> int:
        return self.micro_batch * self.grad_accum * self.num_gpus

    @property
    def tokens_per_step(self) -> int:
        """Real (not padding) tokens per optimizer step: full windows when packed, else mean-length samples."""
        per_sample = self.seq_len if self.packing else (self.mean_seq_len or self.seq_len)
        return self.global_batch_resolved * per_sample

    @property
    def padded_seq_len(self) -> int:
        """Tokens a sample costs in compute: the window when packed; unpacked, a micro-batch of one sample is
        padded to nothing (pad-to-longest collators, HF and TRL's default), a larger one is assumed padded to
        ``seq_len`` (its longest sample nears the longest overall on long-tailed chat/instruction data)."""
        if self.packing or self.micro_batch > 1:
            return self.seq_len
        return self.mean_seq_len or self.seq_len

    @property
    def compute_tokens_per_step(self) -> int:
        """Tokens the matmuls run over per optimizer step, padding included."""
        return self.global_batch_resolved * self.padded_seq_len

    @model_validator(mode="after")
    def _consistent(self) -> TrainingSpec:
        expected = self.micro_batch * self.grad_accum * self.num_gpus
        if self.global_batch is not None and self.global_batch != expected:
            raise ValueError(
                f"global_batch={self.global_batch} but micro_batch*grad_accum*num_gpus="
                f"{self.micro_batch}*{self.grad_accum}*{self.num_gpus}={expected}; make them agree"
            )
        if self.method in ("lora", "qlora") and self.lora_rank is None:
            raise ValueError(f"method={self.method} needs lora_rank (a positive integer, e.g. 16)")
        if self.method == "full" and self.lora_rank is not None:
            raise ValueError("lora_rank applies only to method lora or qlora")
        sharding = self.sharding_resolved
        if self.offload != "none" and sharding not in ("zero1", "zero2", "zero3", "fsdp"):
            raise ValueError(f"offload={self.offload} needs sharding zero1/zero2/zero3/fsdp, got {sharding}")
        if self.offload == "optimizer_and_params" and sharding not in ("zero3", "fsdp"):
            raise ValueError(f"offload=optimizer_and_params needs sharding zero3 or fsdp, got {sharding}")
        if self.optimizer_in_backward and self.grad_accum > 1:
            raise ValueError("optimizer_in_backward cannot accumulate gradients: set grad_accum to 1")
        if self.num_gpus > 1 and sharding == "none":
            raise ValueError("sharding=none with num_gpus>1; use ddp, zero1, zero2, zero3 or fsdp")
        return self


class RunSpec(_Strict):
    """One planned training run."""

    model: ModelSpec
    training: TrainingSpec
    target: TargetSpec
    overheads: OverheadsSpec = Field(default_factory=OverheadsSpec)
    baseline: BaselineSpec | None = None


def parse_spec(data: Any, *, prefix: str = "spec") -> RunSpec:
    """Validate a spec object (already parsed JSON/TOML) into a :class:`RunSpec`, or raise one clear error."""
    if isinstance(data, RunSpec):
        return data
    if not isinstance(data, dict):
        raise PreflightError(prefix, data, "an object with sections model, training, target, overheads")
    _reject_non_finite(data, prefix)
    try:
        return RunSpec.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc, prefix) from None


def _reject_non_finite(data: Any, path: str) -> None:
    """NaN and infinity can arrive from JSON (``NaN``) or TOML (``nan``); name the exact field."""
    if isinstance(data, dict):
        for key, value in data.items():
            _reject_non_finite(value, f"{path}.{key}")
    elif isinstance(data, list):
        for index, value in enumerate(data):
            _reject_non_finite(value, f"{path}[{index}]")
    elif isinstance(data, float) and not math.isfinite(data):
        raise PreflightError(path, data, "a finite number")


def load_spec_file(path: str | Path) -> RunSpec:
    """Load a spec from a ``.json`` or ``.toml`` file (chosen by suffix, else by trying JSON first)."""
    file = Path(path)
    text = read_text_file(file, field="spec", kind="spec")
    data = parse_spec_text(text, toml=file.suffix.lower() == ".toml", source=file.name)
    spec = parse_spec(data)
    if spec.model.hf_config and not Path(spec.model.hf_config).is_absolute():
        # A relative hf_config is relative to the spec file, like an include.
        resolved = (file.parent / spec.model.hf_config).resolve()
        spec = spec.model_copy(update={"model": spec.model.model_copy(update={"hf_config": str(resolved)})})
    return spec


def parse_spec_text(text: str, *, toml: bool = False, source: str = "the spec text") -> dict[str, Any]:
    """JSON (else TOML) or TOML text to a dict; errors name ``source`` and where it broke, never the text."""
    if not toml:
        try:
            data = loads_json(text, field="spec", source=source, allowed="JSON or TOML")
        except PreflightError as json_exc:
            if "not JSON" not in json_exc.one_line():
                raise  # nested too deeply, a number too long, NaN: TOML would not read it either
            try:
                data = loads_toml(text, field="spec", source=source, allowed="JSON or TOML")
            except PreflightError as toml_exc:
                if "not TOML" not in toml_exc.one_line():
                    raise
                raise json_exc from None
    else:
        data = loads_toml(text, field="spec", source=source, allowed="TOML")
    if not isinstance(data, dict):
        raise PreflightError("spec", data, "an object with sections model, training, target, overheads")
    return data

"""Model shape and parameter counts: from presets, a Hugging Face ``config.json``, or the spec itself.

Why count from the shape: peers that build ``AutoModel`` (no LM head) undercount untied models
(Llama-3.1-8B as 7.50B), and peers that assume a 4h MLP miscount SwiGLU models. The shape also
drives the activation, logits and attention-FLOPs terms, so a resolved model always has one; when
the caller gives only ``params_total`` the shape is inferred from the usual aspect ratio and the
result says so.

>>> m = resolve_model(ModelSpec(name="llama-3.1-8b"))
>>> m.params_total, m.n_layers, m.hidden_size, m.shape_source
(8030261248, 32, 4096, 'preset')
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.common.files import read_text_file
from gpu_preflight.tools.common.limits import loads_json
from gpu_preflight.tools.common.nextstep import call
from gpu_preflight.tools.estimator.spec import ModelSpec

ShapeSource = Literal["preset", "hf_config", "spec", "inferred"]

_FAMILIES_GATED = {"llama", "mistral", "qwen2", "gemma", "gemma2", "mixtral_dense", "phi3"}
_FAMILIES_PLAIN = {"gpt2", "gpt_neox", "bert", "opt"}
_ARCH_TO_FAMILY = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "Qwen2ForCausalLM": "qwen2",
    "GemmaForCausalLM": "gemma",
    "Gemma2ForCausalLM": "gemma2",
    "GPT2LMHeadModel": "gpt2",
    "GPTNeoXForCausalLM": "gpt_neox",
}


class ResolvedModel(BaseModel):
    """A model with every number the estimators need."""

    name: str
    family: str
    params_total: int
    params_computed: int
    n_layers: int
    hidden_size: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tied_embeddings: bool
    mlp_gated: bool
    qkv_bias: bool
    rotary: bool
    layer_norm: bool
    dropout: bool
    learned_positions: int
    shape_source: ShapeSource
    source: str
    attention_window: int | None = None
    fused_qkv: bool = False
    fused_gate_up: bool = False

    @property
    def windowed_layers(self) -> int:
        """Layers whose attention is a sliding window: all of them, or every other one for Gemma 2 (Gemma 2
        report, arXiv 2408.00118, section 2: local 4096-token and global attention alternate)."""
        if self.attention_window is None:
            return 0
        return self.n_layers // 2 if self.family == "gemma2" else self.n_layers

    @property
    def q_dim(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_dim

    @property
    def embedding_params(self) -> int:
        """Input embedding, plus the LM head when untied, plus learned positions."""
        head = 0 if self.tied_embeddings else self.vocab_size * self.hidden_size
        return self.vocab_size * self.hidden_size + head + self.learned_positions * self.hidden_size

    @property
    def layer_params(self) -> int:
        return layer_param_count(self)

    @property
    def matmul_params(self) -> int:
        """Parameters that take part in a matmul per token: the layers and the LM head (6N's N)."""
        return self.n_layers * self.layer_params + self.vocab_size * self.hidden_size


def layer_param_count(m: ResolvedModel | _Shape) -> int:
    h, q, kv, inter = m.hidden_size, m.n_heads * m.head_dim, m.n_kv_heads * m.head_dim, m.intermediate_size
    attn = h * q + 2 * h * kv + q * h
    mlp = (3 if m.mlp_gated else 2) * h * inter
    norms = 2 * h * (2 if m.layer_norm else 1)
    if m.family == "gemma2":
        norms *= 2  # pre- and post- norms around attention and MLP
    bias = 0
    if m.qkv_bias:
        bias += q + 2 * kv
    if m.family in ("gpt2", "gpt_neox", "bert", "opt"):
        bias += q + 2 * kv + h + inter + h  # every linear has a bias
    return attn + mlp + norms + bias


class _Shape(BaseModel):
    family: str
    hidden_size: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate_size: int
    mlp_gated: bool
    qkv_bias: bool
    layer_norm: bool


def count_params(m: ResolvedModel | _Shape, n_layers: int, vocab: int, tied: bool, learned_positions: int) -> int:
    """Total parameters from the shape (embeddings, layers, final norm, LM head when untied)."""
    h = m.hidden_size
    final_norm = h * (2 if m.layer_norm else 1)
    head = 0 if tied else vocab * h
    return vocab * h + learned_positions * h + n_layers * layer_param_count(m) + final_norm + head


@lru_cache(maxsize=1)
def _presets() -> dict[str, dict[str, Any]]:
    raw = resources.files("gpu_preflight.tools.estimator").joinpath("data/models.toml").read_bytes()
    table: dict[str, dict[str, Any]] = {}
    for row in tomllib.loads(raw.decode("utf-8")).get("model", []):
        for key in [row["name"], *row.get("aliases", [])]:
            table[_norm(key)] = row
    return table


def preset_names() -> list[str]:
    return sorted({row["name"] for row in _presets().values()})


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum() or ch == ".")


def _family_flags(family: str) -> dict[str, Any]:
    plain = family in _FAMILIES_PLAIN
    return {
        "mlp_gated": not plain,
        "qkv_bias": family == "qwen2",
        "rotary": family not in ("gpt2", "bert", "opt"),
        "layer_norm": plain,
        "dropout": family in ("gpt2", "bert", "opt"),
        # One q/k/v matrix: GPT-2's c_attn (HF GPT2Attention), GPT-NeoX's query_key_value, Phi-3's qkv_proj; Phi-3
        # also fuses gate and up into gate_up_proj (HF Phi3MLP). LoRA adapts a fused matrix once.
        "fused_qkv": family in ("gpt2", "gpt_neox", "phi3"),
        "fused_gate_up": family == "phi3",
    }


def _from_hf_config(path: str) -> dict[str, Any]:
    field = "spec.model.hf_config"
    text = read_text_file(path, field=field, kind="config")
    cfg = loads_json(text, field=field, source=Path(path).name, allowed="a Hugging Face config.json object")
    if not isinstance(cfg, dict):
        raise PreflightError("spec.model.hf_config", path, "a config.json object")
    family = str(cfg.get("model_type", ""))
    archs = cfg.get("architectures") or []
    if archs and archs[0] in _ARCH_TO_FAMILY:
        family = _ARCH_TO_FAMILY[archs[0]]
    if family not in _FAMILIES_GATED | _FAMILIES_PLAIN:
        raise PreflightError(
            "spec.model.hf_config", f"model_type={family!r}",
            "llama, mistral, qwen2, gemma, gemma2, phi3, gpt2, gpt_neox",
        )
    if family == "gpt2":
        h = int(cfg["n_embd"])
        out: dict[str, Any] = {
            "n_layers": cfg["n_layer"], "hidden_size": h, "n_heads": cfg["n_head"], "n_kv_heads": cfg["n_head"],
            "intermediate_size": cfg.get("n_inner") or 4 * h, "vocab_size": cfg["vocab_size"],
            "tied_embeddings": bool(cfg.get("tie_word_embeddings", True)), "learned_positions": cfg["n_positions"],
        }
    else:
        heads = int(cfg["num_attention_heads"])
        out = {
            "n_layers": cfg["num_hidden_layers"], "hidden_size": cfg["hidden_size"], "n_heads": heads,
            "n_kv_heads": cfg.get("num_key_value_heads") or heads, "intermediate_size": cfg["intermediate_size"],
            "vocab_size": cfg["vocab_size"],
            "tied_embeddings": bool(cfg.get("tie_word_embeddings", family in ("gemma", "gemma2"))),
            "learned_positions": 0,
        }
        if cfg.get("head_dim"):
            out["head_dim"] = cfg["head_dim"]
    rates = [cfg.get(k) for k in ("attn_pdrop", "resid_pdrop", "hidden_dropout_prob", "attention_probs_dropout_prob",
                                  "attention_dropout", "hidden_dropout")]
    out["dropout"] = any(isinstance(r, int | float) and r > 0 for r in rates)
    window = cfg.get("sliding_window")
    if isinstance(window, int) and window > 0 and cfg.get("use_sliding_window", True) is not False:
        out["attention_window"] = window  # Mistral-7B-v0.1, Gemma 2; Qwen2 ships one with use_sliding_window false
    out["family"] = family
    out["name"] = cfg.get("_name_or_path") or Path(path).stem
    return out


def _infer_shape(params_total: int) -> dict[str, Any]:
    """A Llama-like shape for a bare parameter count: hidden = 128 * layers, 12*L*h^2 + 2*V*h params.

    Llama-3 1B/8B and GPT-2 sit near hidden/layers = 64-128; this keeps activation and FLOP terms
    in the right range when nothing else is known. The result is marked ``inferred``.
    """
    vocab = 32_000
    layers = 2
    for candidate in range(2, 200):
        h = 128 * candidate
        if 12 * candidate * h * h + 2 * vocab * h > params_total:
            break
        layers = candidate
    h = max(256, 128 * layers)
    return {
        "family": "llama", "n_layers": layers, "hidden_size": h,
        "n_heads": max(1, h // 128), "n_kv_heads": max(1, h // 128),
        "intermediate_size": int(8 * h / 3 / 64 + 1) * 64, "vocab_size": vocab, "tied_embeddings": False,
        "learned_positions": 0,
    }


def _follow_overridden_heads(base: dict[str, Any], explicit: dict[str, Any], merged: dict[str, Any]) -> None:
    """A preset refined by the spec: derived head numbers follow the spec's ``n_heads`` / ``hidden_size``.

    Why: ``{"name": "gpt2", "n_heads": 4}`` must not keep GPT-2's 12 k/v heads (more k/v heads than q heads), nor
    a head_dim the preset only derived from its own sizes. A preset's multi-head attention stays multi-head; its
    grouped-query k/v count stays as given; anything the spec names wins.
    """
    if "n_heads" in explicit and "n_kv_heads" not in explicit and base.get("n_kv_heads") == base.get("n_heads"):
        merged["n_kv_heads"] = explicit["n_heads"]
    derived = base.get("n_heads") and base.get("head_dim") == base.get("hidden_size", 0) // base["n_heads"]
    if explicit.keys() & {"n_heads", "hidden_size"} and "head_dim" not in explicit and derived:
        merged.pop("head_dim", None)


def resolve_model(spec: ModelSpec) -> ResolvedModel:
    """Fill in every shape number: hf_config, else preset, else the spec's own fields, else inferred.

    Fields given explicitly in the spec always win over the preset or config they refine.
    """
    base: dict[str, Any] = {}
    source = ""
    shape_source: ShapeSource = "spec"
    if spec.hf_config:
        base, source, shape_source = _from_hf_config(spec.hf_config), spec.hf_config, "hf_config"
    elif _norm(spec.name) in _presets():
        row = _presets()[_norm(spec.name)]
        base = {k: v for k, v in row.items() if k not in ("aliases", "source", "params_source")}
        base["learned_positions"] = row.get("max_position_embeddings", 0) if row["family"] == "gpt2" else 0
        source, shape_source = str(row.get("source", "preset")), "preset"
    explicit = spec.model_dump(exclude_none=True, exclude={"hf_config", "params_total", "params_trainable"})
    if spec.name == "custom":
        explicit.pop("name", None)
    merged = {**base, **explicit}
    _follow_overridden_heads(base, explicit, merged)
    shape_keys = ("n_layers", "hidden_size", "n_heads", "vocab_size")
    if not all(k in merged for k in shape_keys):
        params = spec.params_total or base.get("params_total")
        if params is None:
            raise PreflightError(
                "spec.model", spec.name, f"a preset name (see {call('models')}), hf_config, params_total, "
                "or the shape n_layers/hidden_size/n_heads/vocab_size",
            )
        merged = {**_infer_shape(int(params)), **merged}
        shape_source = "inferred"
    family = str(merged.get("family") or "llama")
    flags = _family_flags(family)
    for key in ("mlp_gated", "dropout", "fused_qkv", "fused_gate_up"):
        if key in merged:
            flags[key] = merged[key]
    if merged.get("fused_gate_up") and not flags["mlp_gated"]:
        raise PreflightError("spec.model.fused_gate_up", True, "false for a 2-matrix MLP (mlp_gated false)",
                             "only a gated MLP has a gate to fuse with up")
    h, heads = int(merged["hidden_size"]), int(merged["n_heads"])
    kv_heads = int(merged.get("n_kv_heads") or heads)
    if kv_heads > heads or heads % kv_heads:
        raise PreflightError("spec.model.n_kv_heads", kv_heads, f"a divisor of n_heads ({heads})",
                             "grouped-query attention shares each k/v head among a whole number of q heads")
    if "intermediate_size" not in merged:
        merged["intermediate_size"] = int(8 * h / 3) if flags["mlp_gated"] else 4 * h
    shape = _Shape(
        family=family, hidden_size=h, n_heads=heads, n_kv_heads=kv_heads,
        head_dim=int(merged.get("head_dim") or h // heads), intermediate_size=int(merged["intermediate_size"]),
        mlp_gated=bool(flags["mlp_gated"]), qkv_bias=bool(flags["qkv_bias"]), layer_norm=bool(flags["layer_norm"]),
    )
    tied = bool(merged.get("tied_embeddings", False))
    learned = int(merged.get("learned_positions", 0))
    computed = count_params(shape, int(merged["n_layers"]), int(merged["vocab_size"]), tied, learned)
    overridden = bool(explicit.keys() - {"name", "attention_window"})  # a window changes no parameter
    preset_total = base.get("params_total") if shape_source == "preset" and not overridden else None
    total = spec.params_total or preset_total or computed
    return ResolvedModel(
        name=str(merged.get("name", spec.name)), params_total=int(total), params_computed=computed,
        n_layers=int(merged["n_layers"]), vocab_size=int(merged["vocab_size"]), tied_embeddings=tied,
        rotary=bool(flags["rotary"]), dropout=bool(flags["dropout"]), learned_positions=learned,
        shape_source=shape_source, source=source, attention_window=merged.get("attention_window"),
        fused_qkv=bool(flags["fused_qkv"]), fused_gate_up=bool(flags["fused_gate_up"]),
        **shape.model_dump(),
    )


def layer_matrices(m: ResolvedModel) -> dict[str, tuple[int, int]]:
    """Each layer's weight matrices as PEFT names them, ``(in, out)``; a 2-matrix MLP has up/down only, a fused
    model one ``qkv_proj`` (and ``gate_up_proj``) where the others have two or three.

    >>> phi3 = resolve_model(ModelSpec(name="custom", family="phi3", n_layers=32, hidden_size=3072, n_heads=32,
    ...                                intermediate_size=8192, vocab_size=32064))
    >>> layer_matrices(phi3)
    {'qkv_proj': (3072, 9216), 'o_proj': (3072, 3072), 'gate_up_proj': (3072, 16384), 'down_proj': (8192, 3072)}
    """
    h, q, kv, inter = m.hidden_size, m.q_dim, m.kv_dim, m.intermediate_size
    attn = {"qkv_proj": (h, q + 2 * kv)} if m.fused_qkv else {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv)}
    if m.fused_gate_up:
        mlp = {"gate_up_proj": (h, 2 * inter)}
    else:
        mlp = {"gate_proj": (h, inter), "up_proj": (h, inter)} if m.mlp_gated else {"up_proj": (h, inter)}
    return {**attn, "o_proj": (q, h), **mlp, "down_proj": (inter, h)}


def adapted_names(m: ResolvedModel, targets: str | tuple[str, ...]) -> tuple[str, ...]:
    """The module names a LoRA ``targets`` value adapts: every layer matrix for ``all_linear``, q/k/v/o for
    ``attention``, else the list as given (``lm_head`` included when named).

    >>> adapted_names(resolve_model(ModelSpec(name="llama-3.1-8b")), "attention")
    ('q_proj', 'k_proj', 'v_proj', 'o_proj')
    """
    if targets == "all_linear":
        return tuple(layer_matrices(m))
    if targets == "attention":
        return ("qkv_proj", "o_proj") if m.fused_qkv else ("q_proj", "k_proj", "v_proj", "o_proj")
    return tuple(targets)


def lora_trainable_params(m: ResolvedModel, rank: int, targets: str | tuple[str, ...]) -> int:
    """LoRA adds ``rank * (in + out)`` per adapted matrix (PEFT): ``all_linear`` adapts every layer matrix
    (PEFT's ``all-linear`` leaves the LM head out), ``attention`` q/k/v/o, a list the modules named, where
    ``lm_head`` adds ``rank * (hidden + vocab)`` once.

    >>> m = resolve_model(ModelSpec(name="llama-3.1-8b"))
    >>> lora_trainable_params(m, 16, ("q_proj", "v_proj"))  # 16 * ((4096 + 4096) + (4096 + 1024)) * 32
    6815744
    """
    mats = layer_matrices(m)
    names = adapted_names(m, targets)
    missing = [n for n in names if n != "lm_head" and n not in mats]
    if missing:
        raise PreflightError("spec.training.lora_targets", list(names),
                             f"modules of this model: {', '.join([*mats, 'lm_head'])}",
                             "a 2-matrix MLP has no gate_proj; a fused model names qkv_proj and gate_up_proj")
    per_layer = sum(sum(mats[n]) for n in names if n != "lm_head")
    head = m.hidden_size + m.vocab_size if "lm_head" in names else 0
    return rank * (per_layer * m.n_layers + head)


def hidden_matrix_params(m: ResolvedModel) -> int:
    """Parameters in the layers' 2-D weight matrices: what Muon updates (KellerJordan/Muon: embeddings, the LM
    head, norms and biases go to AdamW). Llama-3.1-8B: 6.98 of 8.03 B."""
    return m.n_layers * sum(i * o for i, o in layer_matrices(m).values())


def muon_share(m: ResolvedModel) -> float:
    """Share of the trainable parameters (full training) that Muon updates; AdamW takes the rest."""
    return min(1.0, hidden_matrix_params(m) / m.params_total)


def newton_schulz_flops(m: ResolvedModel, steps: int = 5) -> float:
    """Matmul FLOPs of Muon's orthogonalization per optimizer step, all matrices together.

    Each of the ``steps`` quintic Newton-Schulz iterations on an ``a x b`` update (``a <= b``, the reference
    transposes to make it so) runs ``A = X X^T`` (``2a^2 b``), ``A A`` (``2a^3``) and ``(bA + cA^2) X``
    (``2a^2 b``): ``steps * (4a^2 b + 2a^3)``, i.e. ``30 h`` FLOPs per parameter of an ``h x h`` matrix.
    """
    per_layer = sum(4 * min(d) ** 2 * max(d) + 2 * min(d) ** 3 for d in layer_matrices(m).values())
    return float(steps * per_layer * m.n_layers)

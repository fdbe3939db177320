"""``training.framework``: the stack an agent knows, mapped to a cited MFU prior and memory defaults.

Why: ``tuning`` asks an agent to judge whether its stack is "well tuned", which it cannot; it does
know it will run torchtitan or the HF Trainer. Tried on eleven published pretraining runs (issue 18),
specs without ``tuning = "well_tuned"`` came out 35 % low with none inside the band; with it, 13.5 %
and 9 of 11 inside. The framework carries that fact. Each row of ``data/frameworks.toml`` names the
``tuning`` class (the existing MFU figures, no new ones) and the memory defaults that framework really
uses (optimizer implementation, loss, checkpointing, attention), each with the source it was read in.

Precedence: what the spec says wins. ``mfu`` beats everything, an explicit ``tuning`` beats the
framework's class, and an explicit memory field beats the framework's default; the framework only
fills what the spec left out (:func:`fill_defaults`, called by the spec's validator). Absent: today's
behaviour. ``custom``/``other``: today's behaviour and a warning to name the stack.

>>> framework_row("torchtitan").tuning
'well_tuned'
>>> fill_defaults({"framework": "torchtune", "seq_len": 2048, "loss": "standard"})[1]
('tuning', 'optimizer_impl', 'activation_checkpointing')
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from gpu_preflight.tools.estimator.spec import TrainingSpec

DATA_PATH = Path(__file__).resolve().parent / "data" / "frameworks.toml"
Loss = Literal["standard", "hf", "hf_legacy", "no_upcast", "chunked", "fused", "none"]
"""``training.loss``: which cross-entropy code holds the logits (bytes per logit in ``memory_gpu.LOSS_BYTES``)."""
METHOD_ONLY: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("quant_format", "quant_lm_head", "quant_load", "kbit_upcast_fp32", "quant_saves_input"),
                    ("qlora",)),
    **dict.fromkeys(("lora_adapter_dtype", "lora_dropout", "lora_qkv_merged"), ("lora", "qlora")),
}
"""``training`` fields that describe one method's parts, and the methods they apply to: the spec refuses them
elsewhere, and a framework offers its defaults for them only where they apply."""
UNNAMED = ("custom", "other")
"""Values that name no stack: accepted (an agent may truly run its own loop) but they buy no prior."""


class FrameworkDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    optimizer_impl: Literal["foreach", "fused", "loop"] | None = None
    activation_checkpointing: bool | Literal["selective"] | None = None
    loss: Loss | None = None
    attention: Literal["sdpa", "flash", "eager"] | None = None
    kbit_upcast_fp32: bool | None = None
    quant_saves_input: bool | None = None
    lora_adapter_dtype: Literal["fp32", "base"] | None = None
    lora_dropout: float | None = None
    lora_qkv_merged: bool | None = None
    quant_lm_head: bool | None = None


class FrameworkRow(BaseModel):
    """One ``[[framework]]`` table of ``data/frameworks.toml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    label: str
    tuning: Literal["untuned", "normal", "well_tuned"]
    prior_why: str
    prior_source: str
    defaults: FrameworkDefaults = FrameworkDefaults()
    defaults_source: list[str]
    unverified: str
    mfu_by_architecture: dict[str, float] = {}
    """MFU the framework's own benchmark states for a GPU architecture (bf16, no compile, no float8), used in
    place of its class figure there; the rows it came from are in-sample and named in ``mfu_source``."""
    mfu_source: str = ""


@functools.cache
def framework_rows() -> dict[str, FrameworkRow]:
    """The data file, validated once (a malformed row fails the first estimate loudly, and the tests)."""
    data = tomllib.loads(DATA_PATH.read_text(encoding="utf-8"))
    rows = [FrameworkRow.model_validate(r) for r in data["framework"]]
    return {r.name: r for r in rows}


def framework_row(name: str) -> FrameworkRow | None:
    return framework_rows().get(name)


def fill_defaults(data: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A raw ``training`` object with the named framework's class and defaults filled where it is silent.

    Returns the new object and the keys that came from the framework (for the output's explanation).
    An unknown name fills nothing: the field's own validation then refuses it with the allowed values.
    """
    row = framework_row(data["framework"]) if isinstance(data.get("framework"), str) else None
    if row is None:
        return data, ()
    offered: dict[str, Any] = {"tuning": row.tuning, **row.defaults.model_dump(exclude_none=True)}
    method = data.get("method", "full")  # a method's own knobs are refused elsewhere: offer them where they apply
    offered = {k: v for k, v in offered.items() if method in METHOD_ONLY.get(k, (method,))}
    filled = tuple(k for k in offered if k not in data)
    return {**data, **{k: offered[k] for k in filled}}, filled


def stated_mfu(t: TrainingSpec, architecture: str) -> float | None:
    """The named framework's own stated MFU on this GPU architecture, where its row has one and nothing in
    the spec overrides it (``mfu`` given, or a ``tuning`` other than the framework's class); else None.

    Why a stated figure beats the class: the class (well_tuned 0.40 on Hopper) is a typical tuned stack,
    while a framework that publishes its MFU on an architecture has measured its own. torchtitan states
    33% on H100 for Llama 3.1 8B; the class put its eight H100 rows 15-22% fast.
    """
    row = framework_row(t.framework) if t.framework else None
    if row is None or t.mfu is not None or t.tuning != row.tuning:
        return None
    return row.mfu_by_architecture.get(architecture)


def mfu_prior_source(t: TrainingSpec, from_framework: tuple[str, ...], architecture: str = "") -> str:
    """One short line: which MFU prior the cold estimate used, and why.

    Kept short on purpose: it travels in the MCP summary, which must stay under 2,500 bytes.
    """
    row = framework_row(t.framework) if t.framework else None
    if t.mfu is not None:
        return "training.mfu (given)"
    stated = stated_mfu(t, architecture)
    if row is not None and stated is not None:
        return f"framework {row.name} on {architecture}: its stated MFU {stated:g}"
    if row is not None and "tuning" in from_framework and t.tuning == row.tuning:
        return f"framework {row.name} -> {row.tuning} ({row.prior_why})"
    if "tuning" in t.model_fields_set:
        over = f"; overrides framework {row.name} -> {row.tuning}" if row and row.tuning != t.tuning else ""
        return f"training.tuning {t.tuning} (given{over})"
    return f"training.tuning {t.tuning} (default; set training.framework for a cited prior)"


def framework_warning(t: TrainingSpec) -> str | None:
    """``custom``/``other`` buy no prior: say so, and what naming the stack would give."""
    if t.framework not in UNNAMED:
        return None
    return (f"training.framework={t.framework}: generic MFU prior and memory defaults; name the stack "
            f"({', '.join(framework_rows())}) for its cited prior and defaults")

"""What an MCP result carries by default: the figures a decision needs, not every breakdown.

Why: Claude Code and Codex hand the model a tool's ``structuredContent`` and drop the markdown beside
it, so the JSON is what the model reads, every byte of it. Measured on the README's example specs
(``bench/mcp.py``), the full answers were ``estimate_run`` 6.6 KB (the optimization menu with its
``applicable: false`` items 1.5 KB, the memory breakdown 1.5 KB, ``formula_paths`` 0.2 KB),
``checklist_start`` 3.5 KB and ``plan_options`` 2.9 KB. The goal is <= 2.5 KB each.

``detail="summary"`` (the default) keeps the verdicts, the numbers each verdict compares, time and
cost (opt/base/pess), the tax and its rule, the abort thresholds, what is missing and the next step;
``detail="full"`` returns the whole model as before. Each summary is a *selection* of the full
answer's keys (same names, same nesting), so a caller that learned one reads the other.

The output models here are the full ones with nested models loosened to plain objects
(:func:`loose_model`): ``tools/list`` publishes only the top level anyway, and the server-side check
then accepts both shapes.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model
from pydantic_core import to_jsonable_python

Detail = Literal["summary", "full"]
MORE = 'detail="full" adds: '

Keep = dict[str, "Keep | None"]
"""Keys to keep: ``None`` keeps the value whole, a nested ``Keep`` selects inside it (lists item-wise)."""


def keys(*names: str) -> Keep:
    """Keep these keys whole."""
    return dict.fromkeys(names)


def select(value: Any, keep: Keep) -> Any:
    """The kept keys of a JSON value, nulls and empty lists left out (they say nothing).

    >>> select({"a": 1, "b": {"c": 2, "d": 3}, "e": None, "f": [{"g": 1, "h": 2}]}, {"b": {"c": None}, "e": None,
    ...        "f": {"g": None}})
    {'b': {'c': 2}, 'f': [{'g': 1}]}
    """
    if isinstance(value, list):
        return [select(v, keep) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, inner in keep.items():
        if key not in value or value[key] is None or value[key] == []:
            continue
        out[key] = value[key] if inner is None else select(value[key], inner)
    return out


def _loosen(annotation: Any) -> Any:
    """Nested models as ``dict[str, Any]``, inside lists, dicts and unions too."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return dict[str, Any]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list and args:
        return list[_loosen(args[0])]  # type: ignore[misc]  # a runtime-built annotation
    if origin is dict and len(args) == 2:
        return dict[args[0], _loosen(args[1])]  # type: ignore[misc,valid-type]
    if origin in (typing.Union, types.UnionType) and args:
        loosened = [_loosen(a) for a in args]
        result = loosened[0]
        for a in loosened[1:]:
            result = result | a
        return result
    return annotation


def loose_model(model: type[BaseModel], name: str, doc: str) -> type[BaseModel]:
    """``model``'s top-level fields, each optional (absent in a summary), nested models as objects, and
    ``detail``/``more`` saying which shape this is and what the full one adds."""
    fields: dict[str, Any] = {
        fname: (_loosen(info.annotation), Field(default=None, description=info.description))
        for fname, info in model.model_fields.items()
    }
    fields["detail"] = (Detail, "full")
    fields["more"] = (str, Field(default=None, description="What detail=\"full\" adds to a summary."))
    built: type[BaseModel] = create_model(name, __doc__=doc, __module__=__name__, **fields)
    return built


def shaped(full: BaseModel, keep: Keep, more: str, detail: Detail) -> dict[str, Any]:
    """The JSON answer: the whole model for ``full``, else its selection with ``detail``/``more``."""
    data: dict[str, Any] = to_jsonable_python(full)
    if detail == "full":
        return {**data, "detail": "full"}
    return {**select(data, keep), "detail": "summary", "more": MORE + more}


# ---------------------------------------------------------------- estimate_run

ESTIMATE_KEEP: Keep = {
    "model": {"name": None, "params_total": None, "params_trainable": None},
    "gpu": keys("name", "num_gpus", "gpu_ram_gb", "bf16_tflops", "hbm_bw_gbps"),
    "memory": {
        "gpu": keys("gpu_ram_gb", "peak_gb", "nvml_used_gb", "required_gb", "utilization_ratio",
                                  "verdict", "verdict_playbook", "advice"),
        "cpu": keys("required_gb", "cpu_ram_gb", "verdict", "advice"),
        "disk": keys("required_gb", "disk_gb", "verdict"),
        "network": keys("download_gb", "download_hours", "dominates_setup"),
    },
    "throughput": keys("method", "confidence", "tokens_per_s", "step_time_s", "mfu_assumed",
                   "mfu_prior_source"),  # notes: in warnings
    "time_hours": None,
    "cost_usd": None,
    "setup_debug_tax": None,
    "tax": {"expensive_hardware_justified": None, "reason": None,  # the hours: time_hours, setup_debug_tax
            "decision_rule": {"debug_on_cheap_first": None, "reason": None}},
    "train": keys("target_tokens", "target_steps", "train_hours", "eval_ckpt_overhead_hours"),
    "optimizations": {"key": None, "reason": None},
    "validation_gates": keys("window_minutes", "expected_tokens_per_s", "min_tokens_per_s",
                                           "consecutive_windows", "min_gpu_util_pct", "max_mem_used_pct",
                                           "early_checkpoint_step", "early_checkpoint_minutes"),
    "warnings": None,
    "next_step": None,
}
ESTIMATE_MORE = "memory breakdown, playbook figures, FLOP counts, inapplicable optimizations, rules, assumptions"


def estimate_summary(estimate: BaseModel, detail: Detail) -> dict[str, Any]:
    """``estimate_run``'s answer; the summary lists only the optimizations that apply."""
    out = shaped(estimate, ESTIMATE_KEEP, ESTIMATE_MORE, detail)
    if detail == "summary":
        applicable = [o for o in to_jsonable_python(estimate)["optimizations"] if o.get("applicable")]
        out["optimizations"] = select(applicable, {"key": None, "reason": None})
    return out


# ---------------------------------------------------------------- checklist_start

CHECKLIST_KEEP: Keep = {
    "id": None, "run_name": None, "policy": None, "title": None, "spec_hash": None,
    "items": {"id": None, "supplied_by": None, "required_fields": None, "optional_fields": None},
    "gates": None,  # a dict of gate briefs, selected in checklist_summary
    "next_step": None,
}
CHECKLIST_MORE = "each item's title and pass rule, each gate's reason (also in resource preflight://policies/{name})"


def checklist_summary(view: BaseModel, detail: Detail) -> dict[str, Any]:
    out = shaped(view, CHECKLIST_KEEP, CHECKLIST_MORE, detail)
    if detail == "summary":
        gate_keep: Keep = keys("requires", "probe_min_steps", "probe_max_steps", "probe_max_minutes")
        out["gates"] = {kind: select(g, gate_keep) for kind, g in out["gates"].items()}
    return out


# ---------------------------------------------------------------- plan_options

PLAN_KEEP: Keep = {
    "offers_captured_at": None, "offers_age": None, "offers_source": None, "ranked_by": None,
    # Rows in rank order; VRAM is the GPU's (memory_verdict says whether it fits); low reliability is a risk code.
    "rows": {**keys("offer_id", "gpu_option", "dph_total_usd", "cpu_ram_gb", "pred_tokens_per_s", "time_hours",
                    "cost_usd", "setup_debug_tax", "memory_verdict", "captured_on"),
             "major_risks": keys("code")},
    "rejected": None, "skipped_records": None, "recommendation": None, "rows_omitted": None, "warnings": None,
    "offers_sample": None,
}
PLAN_MORE = "per row rank, VRAM, TFLOPS, HBM bandwidth, effort, risk messages, reliability, download"


def plan_summary(plan: BaseModel, detail: Detail) -> dict[str, Any]:
    out = shaped(plan, PLAN_KEEP, PLAN_MORE, detail)
    if detail == "summary" and out.get("offers_sample"):
        out.pop("offers_source", None)  # the bundled file's path on this install; offers_sample says it
    return out

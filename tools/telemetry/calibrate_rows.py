"""calibrate's option rows and its rules 2-4: the probe scaled onto every offer, then trigger / switch / keep.

Why a module of its own: :mod:`.calibrate` re-estimates the run from the probe; building one row per
offer (the probe as that offer's baseline, migration priced in, the switch rule applied) and choosing
among the rows is a separate, longer job, and keeping it here keeps both files short enough to read.
Nothing here changes a figure: the rows and decisions are what :func:`.calibrate.calibrate` returned
before the split.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from gpu_preflight.tools.estimator.spec import BaselineSpec, RunSpec
from gpu_preflight.tools.estimator.throughput import Scenarios
from gpu_preflight.tools.offers.records import OfferSet

from .assess import Assessment
from .calibrate_rules import SWITCH_MIN_GAIN, Decision, Priority, decide_kill, pct, qualifies

if TYPE_CHECKING:
    from .calibrate import Probe

MAX_BASELINE_TOKENS_PER_S = 1e12  # BaselineSpec's bound
SCENARIOS = ("optimistic", "base", "pessimistic")


class TaxAnswer(BaseModel):
    """Stage D with the setup time actually spent."""

    setup_debug_hours: float
    wall_hours: float
    setup_debug_tax: float
    expensive_hardware_justified: bool


class OfferOption(BaseModel):
    """One offer with the probe scaled onto it; times and costs are to finish, migration included."""

    offer_id: int
    gpu_option: str
    dph_total_usd: float
    pred_tokens_per_s: float
    time_to_finish_hours: Scenarios
    cost_to_finish_usd: Scenarios
    time_gain_frac: float = Field(description="1 - its base time / staying's; 0.2 = 20% sooner.")
    cost_gain_frac: float | None = Field(description="1 - its base cost / staying's; null without a price here.")
    qualifies: bool
    risks: list[str]
    transfer_usd: float = Field(default=0.0, description="Download billed on top of hours x $/h.")


def scale_to_offers(run: RunSpec, p: Probe, offers: OfferSet, tokens_s: float, num_gpus: int, remaining: int,
                     eval_left: float, stay_time: float, stay_cost: float | None, expensive_ok: bool,
                     dph: float | None, priority: Priority, warnings: list[str]) -> tuple[list[OfferOption], int]:
    """The probe as every offer's baseline; the rest of the run, plus migration, priced per offer."""
    from gpu_preflight.tools.estimator.catalogue import lookup_gpu
    from gpu_preflight.tools.offers.options import plan_options

    if lookup_gpu(p.gpu) is None:
        warnings.append(f"{p.gpu!r} is not a catalogue GPU: the probe cannot be scaled to other offers")
        return [], 0
    resetup = p.resetup_hours if p.resetup_hours is not None else p.setup_debug_hours_so_far
    moving = resetup + run.overheads.migration_hours
    data = run.model_dump(mode="json", exclude_none=True)
    data["target"] = {"target_tokens": remaining * run.training.tokens_per_step}
    overheads = {k: v for k, v in data.get("overheads", {}).items()
                 if k not in ("eval_runtime_s", "eval_every_steps", "eval_ckpt_overhead_hours")}
    data["overheads"] = overheads | {"setup_debug_hours": round(moving, 6), "eval_ckpt_overhead_hours": eval_left}
    if tokens_s > MAX_BASELINE_TOKENS_PER_S:
        warnings.append(f"{tokens_s:.3g} tokens/s is beyond what a baseline may claim: not scaled to offers")
        return [], 0
    data["baseline"] = BaselineSpec(tokens_per_s=tokens_s, gpu=p.gpu, num_gpus=num_gpus,
                                    stack_change="none").model_dump()
    plan = plan_options(data, offers, rank="time", limit=1000)
    if p.vram_used_gb is not None:
        vram = {o.offer_id: o.gpu_ram_gb_per_gpu for o in offers.offers}
        fits = [r for r in plan.rejected if all(x.startswith("gpu_memory") for x in r.reasons)
                and vram.get(r.offer_id, 0.0) >= 1.1 * p.vram_used_gb]
        if fits:
            warnings.append(f"{len(fits)} offers rejected on estimated memory have >= 1.1x the probe's measured"
                            f" {p.vram_used_gb:.1f} GB VRAM peak: the memory estimate is high for this run")
    # A pricier machine is ruled out while the tax is high (run-calibrated Stage D).
    out: list[OfferOption] = []
    for row in plan.rows:
        if p.offer_id is not None and row.offer_id == p.offer_id:
            continue
        transfer = row.transfer_usd or 0.0
        costs = Scenarios(**{k: (getattr(row.time_hours, k) or 0.0) * row.dph_total_usd + transfer
                             for k in SCENARIOS})
        t_gain = 1 - (row.time_hours.base or 0) / stay_time if stay_time > 0 else 0.0
        c_gain = 1 - (costs.base or 0) / stay_cost if stay_cost else None
        ok = qualifies(t_gain, c_gain, priority)
        risks = [r.message for r in row.major_risks if r.code != "setup_tax_high"][:3]
        if ok and not expensive_ok and dph is not None and row.dph_total_usd > dph:
            ok = False
            risks.insert(0, "setup/debug tax > 25%: no pricier $/h until the run path is stable")
        out.append(OfferOption(
            offer_id=row.offer_id, gpu_option=row.gpu_option, dph_total_usd=row.dph_total_usd,
            pred_tokens_per_s=row.pred_tokens_per_s, time_to_finish_hours=row.time_hours,
            cost_to_finish_usd=costs, time_gain_frac=t_gain, transfer_usd=transfer,
            cost_gain_frac=c_gain, qualifies=ok, risks=risks))
    return out, len(plan.rows)


def decide_rest(kills: list[str], options: list[OfferOption], remaining: int, tokens_s: float, ratio: float | None,
            stay_time: float, stay_cost: float | None, tax: TaxAnswer, priority: Priority,
            assessment: Assessment | None, numbers: dict[str, Any], rule: str) -> Decision:
    """Rules 2-4 (trigger, switch, keep) for a live probe long enough to judge."""
    if kills:
        return decide_kill(kills, assessment, numbers, rule)
    if remaining == 0:
        return Decision(decision="keep", reason="the target is reached: nothing left to run", rule=rule,
                        numbers=numbers)
    best = _best(options, priority)
    cost_text = f" for ${stay_cost:.2f}" if stay_cost is not None else ""
    here = f"{stay_time:.3g} h{cost_text} to finish here"
    if best is not None:
        gains = f"{pct(best.time_gain_frac)} sooner"
        if best.cost_gain_frac is not None:
            gains += f", {pct(best.cost_gain_frac)} cheaper"
        numbers = numbers | {"best_offer": best.offer_id, "best_time_gain_frac": best.time_gain_frac,
                             "best_cost_gain_frac": best.cost_gain_frac}
        return Decision(
            decision="switch", switch_to_offer=f"{best.offer_id}", numbers=numbers,
            reason=f"{best.gpu_option} (offer {best.offer_id}) finishes in {best.time_to_finish_hours.base:.3g} h"
            f" for ${best.cost_to_finish_usd.base:.2f} incl. migration vs {here} ({gains})", rule=rule)
    top = max(options, key=lambda o: o.time_gain_frac, default=None)
    if top is not None:
        numbers = numbers | {"best_offer": top.offer_id, "best_time_gain_frac": top.time_gain_frac,
                             "best_cost_gain_frac": top.cost_gain_frac}
    vs = f", {pct(ratio)} of the pre-estimate" if ratio is not None else ""
    taxed = ("" if tax.expensive_hardware_justified
             else f"; tax {pct(tax.setup_debug_tax)} > 25%: stay on cheap hardware")
    best_seen = f" (best seen: {pct(top.time_gain_frac)} sooner)" if top is not None else ""
    return Decision(decision="keep", rule=rule, numbers=numbers,
                    reason=f"on track: {tokens_s:,.0f} tokens/s live{vs}; {here}; no offer >= "
                    f"{pct(SWITCH_MIN_GAIN)} better including migration{best_seen}{taxed}")


def _best(options: list[OfferOption], priority: Priority) -> OfferOption | None:
    good = [o for o in options if o.qualifies]
    if not good:
        return None
    if priority == "cost":
        return max(good, key=lambda o: (o.cost_gain_frac or 0.0, o.time_gain_frac))
    if priority == "time":
        return max(good, key=lambda o: (o.time_gain_frac, o.cost_gain_frac or 0.0))
    return max(good, key=lambda o: o.time_gain_frac + (o.cost_gain_frac or 0.0))

"""MCP tools for offers: the option table (``plan_options``) and normalized offers (``search_offers``)."""

from __future__ import annotations

from typing import Annotated, Literal

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from gpu_preflight.server._errors import tool_errors
from gpu_preflight.server.annotations import OPEN_WORLD_READ
from gpu_preflight.server.schemas import ChecklistArg, DetailArg, SpecArg, result
from gpu_preflight.server.summaries import loose_model, plan_summary
from gpu_preflight.tools.common.render import table
from gpu_preflight.tools.estimator.spec import parse_spec
from gpu_preflight.tools.offers.options import PlanResult, plan_options
from gpu_preflight.tools.offers.planning import offers_for
from gpu_preflight.tools.offers.records import Offer
from gpu_preflight.tools.offers.render import plan_markdown

OffersFile = Annotated[str | None, Field(default=None, description="`vastai search offers --raw` JSON file; "
                                         "default: bundled real offers.")]
LiveQuery = Annotated[str | None, Field(default=None, max_length=500,
                                        description="Live Vast query, e.g. 'gpu_name=RTX_4090' (VAST_API_KEY).")]


PlanAnswer = loose_model(PlanResult, "PlanAnswer", "plan_options' answer: PlanResult, whole or summarised (see "
                         "server/summaries.py).")


class OffersAnswer(BaseModel):
    captured_at: str | None
    source: str
    offers: list[Offer]
    skipped: list[str]


def register(mcp: MCPServer) -> None:
    @mcp.tool(name="plan_options", annotations=OPEN_WORLD_READ)
    async def plan_options_tool(
        spec: SpecArg,
        ctx: Context,
        offers_file: OffersFile = None,
        live_query: LiveQuery = None,
        rank: Annotated[Literal["cost", "time"], Field(description="Order by base cost or base time.")] = "cost",
        max_usd: Annotated[float | None, Field(default=None, gt=0, description="Budget on base cost, USD.")] = None,
        max_hours: Annotated[float | None, Field(default=None, gt=0, description="Budget on base hours.")] = None,
        limit: Annotated[int, Field(ge=1, le=200, description="Rows to return.")] = 20,
        checklist_id: ChecklistArg = None,
        detail: DetailArg = "summary",
    ) -> Annotated[CallToolResult, PlanAnswer]:
        """Option table over real offers (file, live or bundled): ranked rows (time/cost opt/base/pess, tax,
        effort, risks), `rejected` with reasons, a pick."""
        with tool_errors():
            run = parse_spec(spec)
            if live_query:
                await ctx.report_progress(0, 2, "searching Vast offers")
            offers = await anyio.to_thread.run_sync(
                lambda: offers_for(run, offers_file=offers_file, live_query=live_query))
            if live_query:
                await ctx.report_progress(1, 2, f"planning over {len(offers.offers)} offers")
            plan = plan_options(run, offers, rank=rank, max_usd=max_usd, max_hours=max_hours, limit=limit)
            if checklist_id:
                from gpu_preflight.server.evidence_bridge import attach_plan

                attach_plan(checklist_id, run, plan)
        return result(plan_summary(plan, detail), plan_markdown(plan))

    @mcp.tool(annotations=OPEN_WORLD_READ)
    async def search_offers(
        offers_file: OffersFile = None,
        live_query: LiveQuery = None,
        storage_gb: Annotated[float | None, Field(default=None, gt=0, le=100_000,
                                                  description="Disk to price a live search for, GB.")] = None,
        limit: Annotated[int, Field(ge=1, le=500)] = 64,
    ) -> Annotated[CallToolResult, OffersAnswer]:
        """Vast offers normalized (GB/GPU, Mbit/s, $/h with storage), live or recorded; skipped ones."""
        with tool_errors():
            found = await anyio.to_thread.run_sync(
                lambda: offers_for(None, offers_file=offers_file, live_query=live_query, storage_gb=storage_gb,
                                   limit=limit))
        shown = found.offers[:limit]
        answer = OffersAnswer(
            captured_at=found.captured_at.isoformat() if found.captured_at else None, source=found.source,
            offers=[o.model_copy(update={"extra": {}}) for o in shown],
            skipped=[f"record {s.index} (id {s.offer_id}): {s.reason}" for s in found.skipped])
        md = table(["id", "GPU", "$/h", "VRAM GB", "down Mbit/s"],
                   [[o.offer_id, f"{o.num_gpus}x {o.gpu_name}", f"{o.dph_total_usd:.3f}",
                     f"{o.gpu_ram_gb_per_gpu:.0f}", o.inet_down_mbps or "?"] for o in shown])
        return result(answer, md)

"""``preflight plan`` (the option table) and ``preflight offers`` (normalized offers)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gpu_preflight.tools.common.limits import quantity


def _source_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--offers", metavar="FILE", help="recorded offers (`vastai search offers --raw` JSON); "
                     "default: the bundled snapshot")
    src.add_argument("--live", metavar="QUERY", help='live Vast search, e.g. "gpu_name=RTX_4090 num_gpus=1" '
                     "(needs VAST_API_KEY and the [vast] extra)")


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("plan", help="the option table: a spec over real offers")
    p.add_argument("spec", help="run spec file (.json or .toml)")
    _source_args(p)
    p.add_argument("--rank", choices=["cost", "time"], default="cost")
    p.add_argument("--max-usd", type=quantity(0, 1e9, "USD"), default=None, help="budget on the base-scenario cost")
    p.add_argument("--max-hours", type=quantity(0, 1e6, "hours"), default=None, help="budget on the base-scenario time")
    p.add_argument("--limit", type=quantity(1, 200, "rows", integer=True, lo_open=False),
                   default=20, help="rows to show (default 20)")
    p.add_argument("--checklist", default=None, metavar="ID", help="attach the table to this checklist")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print one JSON object")
    fmt.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.set_defaults(func=run_plan)

    o = sub.add_parser("offers", help="normalize offers (recorded or live) and list them")
    _source_args(o)
    o.add_argument("--storage-gb", type=quantity(0, 100_000, "GB"),
                   default=None, help="disk to price a live search for")
    o.add_argument("--json", action="store_true")
    o.set_defaults(func=run_offers)


def run_plan(args: argparse.Namespace) -> int:
    from gpu_preflight.tools.estimator.spec import load_spec_file
    from gpu_preflight.tools.offers.options import plan_options
    from gpu_preflight.tools.offers.planning import offers_for
    from gpu_preflight.tools.offers.render import plan_markdown, plan_text

    spec = load_spec_file(args.spec)
    offers = offers_for(spec, offers_file=args.offers, live_query=args.live, field="--offers")
    plan = plan_options(spec, offers, rank=args.rank, max_usd=args.max_usd, max_hours=args.max_hours,
                        limit=args.limit)
    if args.checklist:
        from gpu_preflight.server.evidence_bridge import attach_plan

        attach_plan(args.checklist, spec, plan)
    if args.json:
        sys.stdout.write(plan.model_dump_json() + "\n")
    elif args.markdown or not sys.stdout.isatty():
        sys.stdout.write(plan_markdown(plan) + "\n")
    else:
        sys.stdout.write(plan_text(plan) + "\n")
    return 0


def run_offers(args: argparse.Namespace) -> int:
    from gpu_preflight.tools.common.render import table
    from gpu_preflight.tools.offers.planning import offers_for

    offers = offers_for(None, offers_file=args.offers, live_query=args.live, storage_gb=args.storage_gb,
                        field="--offers")
    if args.json:
        sys.stdout.write(json.dumps({
            "captured_at": offers.captured_at.isoformat() if offers.captured_at else None, "source": offers.source,
            "offers": [o.model_dump(mode="json", exclude={"extra"}) for o in offers.offers],
            "skipped": [s.model_dump() for s in offers.skipped]}) + "\n")
        return 0
    sys.stdout.write(table(
        ["id", "GPU", "$/h", "VRAM GB", "CPU RAM GB", "disk GB", "down Mbit/s", "reliability"],
        [[o.offer_id, f"{o.num_gpus}x {o.gpu_name}", f"{o.dph_total_usd:.3f}", f"{o.gpu_ram_gb_per_gpu:.0f}",
          o.cpu_ram_gb or "?", o.disk_space_gb or "?", o.inet_down_mbps or "?", o.reliability or "?"]
         for o in offers.offers]) + "\n")
    for s in offers.skipped:
        sys.stderr.write(f"skipped record {s.index} (id {s.offer_id}): {s.reason}\n")
    return 0

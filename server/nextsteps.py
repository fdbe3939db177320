"""Each door's names for the next steps domain text mentions (see :mod:`gpu_preflight.tools.common.nextstep`).

``MCP``: tool names and resource URIs a model can call or read through this server. ``CLI``: the
``preflight`` subcommands a person or script can run. ``tests/test_mcp_agent_view.py`` checks that
every MCP name here is in ``tools/list`` or ``resources/list`` and every CLI command parses.

Every step has a call in both doors. Stopping a run was CLI-only until issue 17's flow (rent, launch,
heartbeat, run_check, kill) needed an agent to act on run_check's ``kill``: ``stop_run`` is annotated
destructive, so ``serve --read-only`` does not offer it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from gpu_preflight.tools.common.nextstep import STEPS, speaking

MCP: dict[str, str] = {
    "estimate_memory": "estimate_memory",
    "estimate_throughput": "estimate_throughput",
    "estimate_run": "estimate_run",
    "plan_options": "plan_options",
    "search_offers": "search_offers",
    "live_offers": "plan_options(live_query=...)",
    "offers_file": "plan_options(offers_file=...)",
    "checklist_start": "checklist_start",
    "checklist_record": "checklist_record",
    "checklist_status": "checklist_status",
    "checklist_report": "checklist_report",
    "checklist_update_spec": "checklist_update_spec",
    "gate_check": "gate_check",
    "launch_run": "launch_run",
    "dispatch": "dispatch",
    "heartbeat": "heartbeat",
    "list_runs": 'heartbeat_all(scope="runs")',
    "run_check": "run_check",
    "stop_run": "stop_run(run_id)",
    "calibrate": "calibrate",
    "ingest": "ingest_nvidia_smi",
    "gpus": "resource preflight://gpus",
    "models": "resource preflight://models",
    "probe_schema": "resource preflight://schema/probe",
    "gpu_with_host_ram": "pass gpu as an object with cpu_ram_gb",
    "override": "pass override_reason",
}

CLI: dict[str, str] = {
    "estimate_memory": "`preflight estimate`",
    "estimate_throughput": "`preflight estimate`",
    "estimate_run": "`preflight estimate`",
    "plan_options": "`preflight plan`",
    "search_offers": "`preflight offers`",
    "live_offers": "`preflight plan SPEC --live QUERY`",
    "offers_file": "`preflight plan SPEC --offers FILE`",
    "checklist_start": "`preflight checklist start`",
    "checklist_record": "`preflight checklist record`",
    "checklist_status": "`preflight checklist status`",
    "checklist_report": "`preflight checklist report`",
    "checklist_update_spec": "`preflight checklist update-spec`",
    "gate_check": "`preflight checklist gate`",
    "launch_run": "`preflight launch`",
    "dispatch": "`preflight dispatch`",
    "heartbeat": "`preflight heartbeat`",
    "list_runs": "`preflight heartbeat --runs`",
    "run_check": "`preflight check`",
    "stop_run": "`preflight stop RUN_ID` (Ctrl-C into its pane, proven by the job's exit record)",
    "calibrate": "`preflight calibrate`",
    "ingest": "`preflight ingest`",
    "gpus": "`preflight gpus`",
    "models": "`preflight models`",
    "probe_schema": "`preflight calibrate --help`",
    "gpu_with_host_ram": "pass `--cpu-ram-gb`",
    "override": "pass `--override REASON`",
}

assert set(MCP) == set(STEPS) == set(CLI), "every door names every step"


class SpeakMcp:
    """Server middleware: every request (tool call, resource read, prompt) answers in MCP names."""

    async def __call__(self, ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        with speaking(MCP):
            return await call_next(ctx)

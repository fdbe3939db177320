"""MCP tools of the dispatcher: confirmed delivery into tmux panes, gated launches, heartbeats.

Codex passes stdio servers no ``TMUX`` variable, so every tool takes the tmux server explicitly
(``socket_name`` like ``tmux -L``, or ``socket_path`` like ``tmux -S``).
"""

from __future__ import annotations

from typing import Annotated, Literal

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from gpu_preflight.server._errors import tool_errors
from gpu_preflight.server.annotations import READ_ONLY, SENDS_KEYS, STOPS_RUN
from gpu_preflight.server.schemas import result
from gpu_preflight.tools.common.render import table
from gpu_preflight.tools.dispatch import (
    DispatchResult,
    Heartbeat,
    HeartbeatReport,
    InterruptResult,
    LaunchResult,
    PaneInfo,
    WaitIdleResult,
    dispatch,
    heartbeat,
    heartbeat_all,
    interrupt_run,
    list_pane_infos,
    wait_idle,
)

Target = Annotated[str, Field(min_length=1, max_length=200, description="session:window.pane or %id.")]
# The names say it (tmux -L / -S, as the module and agents.md explain); a description on each of the six tools
# that take them would cost ~500 bytes of every session's tools/list.
SocketName = Annotated[str | None, Field(default=None, max_length=200)]
SocketPath = Annotated[str | None, Field(default=None, max_length=1000)]
HostName = Annotated[str | None, Field(default=None, max_length=64, description="hosts_add name.")]


class PaneList(BaseModel):
    panes: list[PaneInfo]


def _dispatch_md(d: DispatchResult) -> str:
    proof = "; ".join(d.evidence[-2:]) if d.evidence else "-"
    return f"**{d.status}** ({d.reason}); Enter x{d.enter_count}, {d.latency_ms:.0f} ms. Evidence: {proof}"


def launch_run(checklist_id: str, target: str, command: str, kind: Literal["probe", "full"], *,
               log_path: str | None = None, expected_tokens_per_s: float | None = None,
               override_reason: str | None = None, socket_name: str | None = None,
               socket_path: str | None = None, log_format: str | None = None,
               log_regex: str | None = None, logging_steps: int | None = None,
               host: str | None = None) -> LaunchResult:
    """Ask the checklist gate first (it raises with what is missing), then dispatch and record the run.

    A probe carries the run-calibrated step/time cap from the gate decision."""
    from gpu_preflight.checklist import gate
    from gpu_preflight.tools.dispatch import launch_command
    from gpu_preflight.tools.dispatch.runs import check_log_layout, check_log_path, run_logging_steps

    check_log_path(log_path, host=host)  # before the gate: a refused path leaves no gate decision behind
    check_log_layout(log_format, log_regex)
    run_logging_steps(logging_steps, command)
    decision = gate.check(checklist_id, kind, override_reason)  # raises, naming what is missing
    cap_steps = decision.probe_max_steps if kind == "probe" else None
    cap_minutes = decision.probe_max_minutes if kind == "probe" else None
    return launch_command(
        target, command, kind=kind, log_path=log_path, log_format=log_format, log_regex=log_regex,
        logging_steps=logging_steps, predicted_tokens_per_s=expected_tokens_per_s,
        cap_steps=cap_steps, cap_seconds=cap_minutes * 60 if cap_minutes else None,
        socket_name=socket_name, socket_path=socket_path, checklist_id=checklist_id,
        override_reason=override_reason, host=host,
    )


def register(mcp: MCPServer) -> None:
    @mcp.tool(name="dispatch", annotations=SENDS_KEYS)
    async def dispatch_tool(
        target: Target,
        text: Annotated[str, Field(min_length=1, max_length=100_000)],
        ctx: Context,
        mode: Literal["shell", "tui"] = "shell",
        profile: Literal["auto", "generic", "claude", "codex", "gemini"] = "auto",
        on_busy: Literal["refuse", "queue", "wait"] = "refuse",
        busy_timeout_s: Annotated[float, Field(ge=0, le=3600)] = 300.0,
        socket_name: SocketName = None,
        socket_path: SocketPath = None,
        host: HostName = None,
    ) -> Annotated[CallToolResult, DispatchResult]:
        """Type a shell command or agent prompt (tui) into a tmux pane, proven started; on_busy: if busy."""
        await ctx.report_progress(0, 1, f"dispatching to {target}")
        with tool_errors():
            d = await anyio.to_thread.run_sync(
                lambda: dispatch(target, text, mode, socket_name=socket_name, socket_path=socket_path,
                                 profile=profile, on_busy=on_busy, busy_timeout_s=busy_timeout_s, host=host))
        await ctx.report_progress(1, 1, d.status)
        return result(d, _dispatch_md(d))

    @mcp.tool(name="launch_run", annotations=SENDS_KEYS)
    async def launch_run_tool(
        checklist_id: Annotated[str, Field(min_length=1, max_length=64)],
        target: Target,
        command: Annotated[str, Field(min_length=1, max_length=100_000)],
        ctx: Context,
        kind: Annotated[Literal["probe", "full"], Field(description="probe: capped calibration run.")] = "probe",
        log_path: Annotated[str | None, Field(default=None, description="The run's training log.")] = None,
        expected_tokens_per_s: Annotated[float | None, Field(default=None, gt=0, le=1e9)] = None,
        override_reason: Annotated[str | None, Field(default=None, max_length=2000,
                                                     description="Launch past a closed gate (audited).")] = None,
        socket_name: SocketName = None,
        socket_path: SocketPath = None,
        logging_steps: Annotated[int | None, Field(default=None, ge=1, le=10**9,
                                                   description="HF Trainer's, if no progress bar.")] = None,
        host: HostName = None,
    ) -> Annotated[CallToolResult, LaunchResult]:
        """Gate check for `kind`, then a confirmed launch recorded as a run."""
        await ctx.report_progress(0, 1, f"gate check, then launch into {target}")
        with tool_errors():
            launched = await anyio.to_thread.run_sync(lambda: launch_run(
                checklist_id, target, command, kind, log_path=log_path, expected_tokens_per_s=expected_tokens_per_s,
                override_reason=override_reason, socket_name=socket_name, socket_path=socket_path,
                logging_steps=logging_steps, host=host))
        await ctx.report_progress(1, 1, launched.dispatch.status)
        run = f"run {launched.run.run_id}" if launched.run else "no run recorded"
        return result(launched, f"{run}: {_dispatch_md(launched.dispatch)}")

    @mcp.tool(name="heartbeat", annotations=READ_ONLY)
    async def heartbeat_tool(
        run_id: Annotated[str | None, Field(default=None, max_length=64)] = None,
        target: Annotated[str | None, Field(default=None, max_length=200)] = None,
        socket_name: SocketName = None,
        socket_path: SocketPath = None,
        host: HostName = None,
    ) -> Annotated[CallToolResult, Heartbeat]:
        """Run (run_id) or pane (target) state, with evidence."""
        with tool_errors():  # in a thread: over ssh a heartbeat may wait up to its 10 s fault timeout
            hb = await anyio.to_thread.run_sync(
                lambda: heartbeat(run_id, target, socket_name=socket_name, socket_path=socket_path, host=host))
        return result(hb, f"**{hb.state}**: {hb.reason}")

    @mcp.tool(name="stop_run", annotations=STOPS_RUN)
    async def stop_run_tool(
        run_id: Annotated[str, Field(min_length=1, max_length=64)],
        timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0,
    ) -> Annotated[CallToolResult, InterruptResult]:
        """Ctrl-C a launched run (on its host too); stopped only when its exit record proves it."""
        with tool_errors():
            r = await anyio.to_thread.run_sync(lambda: interrupt_run(run_id, timeout_s=timeout_s))
        return result(r, f"**{'stopped' if r.stopped else 'not stopped'}**: {r.reason}")

    @mcp.tool(name="wait_idle", annotations=READ_ONLY)
    async def wait_idle_tool(
        target: Annotated[str, Field(min_length=1, max_length=200)],  # the pane dispatched to
        ctx: Context,
        timeout_s: Annotated[float, Field(gt=0, le=3600)] = 600.0,
        socket_name: SocketName = None,
        socket_path: SocketPath = None,
        host: HostName = None,
    ) -> Annotated[CallToolResult, WaitIdleResult]:
        """After a tui dispatch: wait for the agent's turn to end (or a dialog, or its exit)."""
        await ctx.report_progress(0, 1, f"waiting for {target} to be idle")
        with tool_errors():
            w = await anyio.to_thread.run_sync(
                lambda: wait_idle(target, timeout_s, socket_name=socket_name, socket_path=socket_path, host=host))
        await ctx.report_progress(1, 1, w.state)
        return result(w, f"**{w.state}** after {w.waited_s:.1f} s: {w.reason}\n\n" + "\n".join(w.answer_tail))

    @mcp.tool(name="heartbeat_all", annotations=READ_ONLY)
    async def heartbeat_all_tool(
        scope: Literal["panes", "runs"] = "panes",
        socket_name: SocketName = None,
        socket_path: SocketPath = None,
        hosts: Annotated[list[Annotated[str, Field(max_length=64)]] | Literal["all"] | None,
                         Field(default=None, max_length=64, description="hosts_add names, or 'all'.")
                         ] = None,
    ) -> Annotated[CallToolResult, HeartbeatReport]:
        """Heartbeat of every pane of a tmux server, or every recorded run."""
        with tool_errors():
            report = await anyio.to_thread.run_sync(
                lambda: heartbeat_all(scope=scope, socket_name=socket_name, socket_path=socket_path, hosts=hosts))
        md = table(["host", "pane/run", "state", "reason"],
                   [[h.host or "", h.run_id or h.target or h.pane_id, h.state, h.reason]
                    for h in report.heartbeats[:50]])
        down = [f"{s.name}: {s.status} ({s.reason})" for s in report.hosts or [] if not s.reachable]
        return result(report, md + ("\n\nUnreachable: " + "; ".join(down) if down else ""))

    @mcp.resource("preflight://runs/{run_id}", mime_type="application/json")
    def run_status(run_id: str) -> str:
        """A recorded run and its heartbeat now (state, exit code, seconds since output, log growth)."""
        import json

        from mcp.server.mcpserver.exceptions import ResourceError

        from gpu_preflight.tools.common.errors import PreflightError
        from gpu_preflight.tools.dispatch import get_run

        try:
            run = get_run(run_id)
            hb = heartbeat(run_id, None)
        except PreflightError as exc:
            raise ResourceError(exc.one_line()) from exc
        return json.dumps({"run": run.model_dump(mode="json"), "heartbeat": hb.model_dump(mode="json")})

    @mcp.tool(name="list_panes", annotations=READ_ONLY)
    def list_panes_tool(socket_name: SocketName = None, socket_path: SocketPath = None, host: HostName = None
                        ) -> Annotated[CallToolResult, PaneList]:
        """Panes of a tmux server, with their state."""
        with tool_errors():
            panes = list_pane_infos(socket_name, socket_path, host)
        md = table(["target", "id", "command", "dead", "mode"],
                   [[p.target_name, p.pane_id, p.current_command, p.dead, p.mode or "-"] for p in panes])
        return result(PaneList(panes=panes), md)

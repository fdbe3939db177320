"""``preflight dispatch``, ``preflight launch`` and ``preflight heartbeat``."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from gpu_preflight.tools.common.limits import quantity

PROFILE_CHOICES = ("auto", "generic", "claude", "codex", "gemini")
"""Kept literal so ``preflight --help`` does not import the dispatcher (tests check it equals PROFILE_NAMES)."""


def _socket(p: argparse.ArgumentParser, *, host: bool = False) -> None:
    p.add_argument("-L", dest="socket_name", default=None, metavar="SOCKET_NAME", help="tmux socket name")
    p.add_argument("-S", dest="socket_path", default=None, metavar="SOCKET_PATH", help="tmux socket path")
    if host:
        p.add_argument("--host", default=None, metavar="NAME", help="a registered host (preflight hosts add): "
                       "the tmux server is on that box, reached over ssh")


def add_parser(sub: Any) -> None:
    d: argparse.ArgumentParser = sub.add_parser("dispatch", help="send a command or prompt into a tmux pane, "
                                                "confirmed")
    d.add_argument("target", help="session:window.pane or %%pane_id")
    d.add_argument("text", help="the command (shell) or prompt (tui)")
    d.add_argument("--mode", choices=["shell", "tui"], default="shell")
    d.add_argument("--profile", choices=list(PROFILE_CHOICES), default="auto",
                   help="tui: the agent app (auto: from the pane's process)")
    d.add_argument("--on-busy", choices=["refuse", "queue", "wait"], default="refuse",
                   help="tui: a busy agent is refused, gets the prompt in its own queue, or is waited for")
    d.add_argument("--busy-timeout-s", type=quantity(0, 86_400, "seconds", lo_open=False),
                   default=300.0, help="tui, --on-busy wait: how long to wait")
    _socket(d, host=True)
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=run_dispatch)

    launch = sub.add_parser("launch", help="gate check, then launch a run into a tmux pane")
    launch.add_argument("target")
    launch.add_argument("command")
    launch.add_argument("--checklist", required=True, metavar="ID")
    launch.add_argument("--kind", choices=["probe", "full"], default="probe")
    launch.add_argument("--log", default=None, help="training log the run writes")
    launch.add_argument("--log-format", default=None, metavar="F", help="the log's format (default: detected)")
    launch.add_argument("--log-regex", default=None, metavar="R",
                        help="a custom log layout: regex with named groups (step, loss, step_time_ms, ...)")
    launch.add_argument("--logging-steps", type=quantity(1, 10**9, "steps", integer=True, lo_open=False),
                        default=None, metavar="N",
                        help="the HF Trainer's logging_steps: times a log without progress bar live "
                             "(default: the command's --logging_steps N, if it has one)")
    launch.add_argument("--expected-tokens-per-s", type=quantity(0, 1e9, "tokens/s"), default=None)
    launch.add_argument("--override", default=None, metavar="REASON", help="launch despite a closed gate")
    _socket(launch, host=True)
    launch.add_argument("--json", action="store_true")
    launch.set_defaults(func=run_launch)

    h = sub.add_parser("heartbeat", help="is a run or pane running, idle, exited, hung?")
    h.add_argument("what", nargs="?", help="run id (r + 12 hex) or tmux target; omit with --all")
    h.add_argument("--all", action="store_true", help="every pane (or every run with --runs)")
    h.add_argument("--runs", action="store_true", help="every recorded run (--all implied)")
    h.add_argument("--hang-after-s", type=quantity(0, 86_400, "seconds"), default=None,
                   help="silence that counts as hung (default: 5 median steps of the run's log, >= 60 s; else 300 s)")
    _socket(h)
    h.add_argument("--host", action="append", default=None, metavar="NAME",
                   help="a registered host (preflight hosts add), reached over ssh; with --all: repeat it to "
                        "sweep several boxes in parallel")
    h.add_argument("--all-hosts", action="store_true", help="with --all: every registered host, in parallel")
    h.add_argument("--json", action="store_true")
    h.set_defaults(func=run_heartbeat)

    st = sub.add_parser("stop", help="Ctrl-C a launched run (on its host too); exit 0 only when its exit record "
                                     "proves it ended")
    st.add_argument("run_id", help="run id (r + 12 hex)")
    st.add_argument("--timeout-s", type=quantity(0, 600, "seconds"), default=10.0)
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=run_stop)

    w = sub.add_parser("wait-idle", help="wait until the agent in a pane finished its turn; print its last lines")
    w.add_argument("target", help="session:window.pane or %%pane_id")
    w.add_argument("--timeout-s", type=quantity(0, 86_400, "seconds", lo_open=False), default=600.0)
    _socket(w, host=True)
    w.add_argument("--json", action="store_true")
    w.set_defaults(func=run_wait_idle)


def run_dispatch(args: argparse.Namespace) -> int:
    from gpu_preflight.tools.dispatch import dispatch

    d = dispatch(args.target, args.text, args.mode, socket_name=args.socket_name, socket_path=args.socket_path,
                 profile=args.profile, on_busy=args.on_busy, busy_timeout_s=args.busy_timeout_s, host=args.host)
    if args.json:
        sys.stdout.write(d.model_dump_json() + "\n")
    else:
        sys.stdout.write(f"{d.status}: {d.reason} (Enter x{d.enter_count}, {d.latency_ms:.0f} ms)\n")
    # A prompt the app shows queued was delivered as asked: success when --on-busy queue asked for it.
    return 0 if d.status == "submitted" or (d.status == "queued" and args.on_busy == "queue") else 1


def run_stop(args: argparse.Namespace) -> int:
    from gpu_preflight.tools.dispatch import interrupt_run

    r = interrupt_run(args.run_id, timeout_s=args.timeout_s)
    if args.json:
        sys.stdout.write(r.model_dump_json() + "\n")
    else:
        sys.stdout.write(f"{'stopped' if r.stopped else 'not stopped'}: {r.reason} ({r.latency_ms:.0f} ms)\n")
    return 0 if r.stopped else 1


def run_wait_idle(args: argparse.Namespace) -> int:
    from gpu_preflight.tools.dispatch import wait_idle

    w = wait_idle(args.target, args.timeout_s, socket_name=args.socket_name, socket_path=args.socket_path,
                  host=args.host)
    if args.json:
        sys.stdout.write(w.model_dump_json() + "\n")
    else:
        sys.stdout.write(f"{w.state}: {w.reason} ({w.waited_s:.1f} s)\n" + "".join(f"  {x}\n" for x in w.answer_tail))
    return 0 if w.idle else 1


def run_launch(args: argparse.Namespace) -> int:
    from gpu_preflight.server.mcp.dispatch import launch_run

    launched = launch_run(args.checklist, args.target, args.command, args.kind, log_path=args.log,
                          expected_tokens_per_s=args.expected_tokens_per_s, override_reason=args.override,
                          socket_name=args.socket_name, socket_path=args.socket_path,
                          log_format=args.log_format, log_regex=args.log_regex, logging_steps=args.logging_steps,
                          host=args.host)
    if args.json:
        sys.stdout.write(launched.model_dump_json() + "\n")
    else:
        run = launched.run.run_id if launched.run else "-"
        sys.stdout.write(f"run {run}: {launched.dispatch.status}: {launched.dispatch.reason}\n")
    return 0 if launched.dispatch.status == "submitted" else 1


def no_tmux_server(socket_name: str | None, socket_path: str | None) -> str | None:
    """None when a tmux server answers on the socket; else one line naming the socket that has none."""
    from gpu_preflight.tools.dispatch.target import make_tmux
    from gpu_preflight.tools.dispatch.tmuxcmd import TmuxError

    try:
        make_tmux(socket_name, socket_path).run("list-sessions")
    except TmuxError as exc:
        where = f"-S {socket_path}" if socket_path else f"-L {socket_name or 'default'}"
        return (f"no tmux server on socket {where} ({exc.stderr}): no pane to check; start one "
                "(tmux new -s work) or name the server's socket with -L NAME / -S PATH")
    return None


def run_heartbeat(args: argparse.Namespace) -> int:
    from gpu_preflight.tools.common.errors import PreflightError
    from gpu_preflight.tools.dispatch import heartbeat, heartbeat_all

    hosts: list[str] | None = ["all"] if args.all_hosts else args.host
    if hosts is not None and args.all and not args.runs:  # --runs --host A: the runs recorded on A (below)
        return _sweep_hosts(args, hosts)
    if args.all_hosts and not args.runs:
        raise PreflightError("--all-hosts", True, "--all --all-hosts (every pane of every registered host)")
    if args.all or args.runs:  # --runs alone lists every recorded run, as --all --runs does
        report = heartbeat_all(scope="runs" if args.runs else "panes", hang_after_s=args.hang_after_s,
                               socket_name=args.socket_name, socket_path=args.socket_path,
                               hosts=("all" if hosts == ["all"] else hosts) if args.runs else None)
        # No pane at all: say whether a tmux server answers on that socket (it printed nothing before).
        missing = None if args.runs or report.pane_count else no_tmux_server(args.socket_name, args.socket_path)
        if args.json:
            data = report.model_dump(mode="json")
            if not args.runs:
                data["tmux_server_running"] = missing is None
            if missing:
                data["note"] = missing
            sys.stdout.write(json.dumps(data) + "\n")
        else:
            for hb in report.heartbeats:
                sys.stdout.write(f"{hb.run_id or hb.target or hb.pane_id}: {hb.state}: {hb.reason}\n")
            if missing or not report.heartbeats:
                sys.stdout.write((missing or f"no {'recorded runs' if args.runs else 'panes'}") + "\n")
        return 0
    if not args.what:
        raise PreflightError("RUN|TARGET", "(missing)", "a run id (r + 12 hex), a tmux target, --all (every pane) or "
                             "--runs (every recorded run)")
    if hosts is not None and len(hosts) > 1:
        raise PreflightError("--host", hosts, "one --host with a pane target (several: --all --host A --host B)")
    is_run = re.fullmatch(r"r[0-9a-f]{12}", args.what) is not None
    hb = heartbeat(args.what if is_run else None, None if is_run else args.what, hang_after_s=args.hang_after_s,
                   socket_name=args.socket_name, socket_path=args.socket_path, host=hosts[0] if hosts else None)
    sys.stdout.write((hb.model_dump_json() if args.json else f"{hb.state}: {hb.reason}") + "\n")
    return 0


def _sweep_hosts(args: argparse.Namespace, hosts: list[str]) -> int:
    """``heartbeat --all --host A --host B`` / ``--all --all-hosts``: every pane of every box, in parallel."""
    from gpu_preflight.tools.dispatch import heartbeat_all

    report = heartbeat_all(socket_name=args.socket_name, socket_path=args.socket_path,
                           hosts="all" if hosts == ["all"] else hosts, hang_after_s=args.hang_after_s)
    if args.json:
        sys.stdout.write(report.model_dump_json() + "\n")
        return 0
    for sweep in report.hosts or []:
        sys.stdout.write(f"{sweep.name}: {sweep.status}: {sweep.reason} ({sweep.panes} panes)\n")
    for hb in report.heartbeats:
        sys.stdout.write(f"{hb.host}/{hb.target or hb.pane_id}: {hb.state}: {hb.reason}\n")
    return 0

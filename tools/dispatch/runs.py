"""Runs: what was launched where, so a heartbeat can later say whether it still runs.

Why record runs: "is training still running?" was asked over and over in the sessions this
project learned from. A run row keeps the pane, the wrapper's job id and pid, the log path and
the throughput the estimate predicted, so ``heartbeat(run_id)`` can compare reality with the
plan. ``launch_command`` takes an optional ``gate`` callable that is called first and refuses by
raising; the lead's checklist gate plugs in there.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from gpu_preflight.tools.common.db import transaction
from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.common.nextstep import call
from gpu_preflight.tools.dispatch.dispatcher import dispatch
from gpu_preflight.tools.dispatch.models import DispatchResult
from gpu_preflight.tools.dispatch.sanitize import sanitize_text
from gpu_preflight.tools.dispatch.schema import open_db
from gpu_preflight.tools.dispatch.target import is_pane_spec, make_tmux, resolve_pane_id, validate_any_target
from gpu_preflight.tools.dispatch.tmuxcmd import HostUnreachable

RunKind = Literal["probe", "full"]
RUN_KINDS: tuple[RunKind, ...] = ("probe", "full")


class RunRecord(BaseModel):
    """One launched run."""

    run_id: str
    created_at: str
    target: str
    pane_id: str | None = None
    socket_name: str | None = None
    socket_path: str | None = None
    host: str | None = Field(default=None, description="the registered host whose tmux runs it (None: this machine)")
    command: str
    kind: RunKind
    job_id: str | None = Field(default=None, description="the wrapper's job id (start/exit records)")
    pid: int | None = Field(default=None, description="the wrapper's pid from its start record")
    started_at_epoch_s: float | None = None
    log_path: str | None = None
    log_format: str | None = Field(default=None, description="the log's format when given at launch (else detected)")
    log_regex: str | None = Field(default=None, description="a custom log layout: regex with named groups")
    logging_steps: int | None = Field(default=None, description="an HF Trainer log's logging_steps (places its dicts)")
    logging_steps_source: Literal["stated", "command"] | None = Field(
        default=None, description="stated at launch, or read from the command line (a convenience, not a guarantee)")
    predicted_tokens_per_s: float | None = None
    cap_steps: int | None = Field(default=None, description="probe runs: step cap of the run-calibrated policy")
    cap_seconds: float | None = Field(default=None, description="probe runs: time cap of the policy")
    checklist_id: str | None = None
    override_reason: str | None = None
    dispatch_status: str | None = None
    audit_id: int | None = None


class LaunchResult(BaseModel):
    """The dispatch of a launch, and the run it recorded (None when nothing started)."""

    dispatch: DispatchResult
    run: RunRecord | None = None


def _new_run_id() -> str:
    return "r" + secrets.token_hex(6)


def record_run(
    target: str,
    command: str,
    *,
    kind: RunKind,
    pane_id: str | None = None,
    socket_name: str | None = None,
    socket_path: str | None = None,
    job_id: str | None = None,
    pid: int | None = None,
    started_at_epoch_s: float | None = None,
    log_path: str | None = None,
    predicted_tokens_per_s: float | None = None,
    cap_steps: int | None = None,
    cap_seconds: float | None = None,
    checklist_id: str | None = None,
    override_reason: str | None = None,
    dispatch_status: str | None = None,
    log_format: str | None = None,
    log_regex: str | None = None,
    logging_steps: int | None = None,
    audit_id: int | None = None,
    host: str | None = None,
) -> RunRecord:
    """Store a run and return it (with its new ``run_id``); ``logging_steps``: :func:`run_logging_steps`."""
    if kind not in RUN_KINDS:
        raise PreflightError("kind", kind, "probe or full")
    if predicted_tokens_per_s is not None and not predicted_tokens_per_s > 0:
        raise PreflightError("predicted_tokens_per_s", predicted_tokens_per_s, "a positive number or None")
    check_log_layout(log_format, log_regex)
    every, every_source = run_logging_steps(logging_steps, command)
    record = RunRecord(
        run_id=_new_run_id(), created_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        target=validate_any_target(target), pane_id=pane_id, socket_name=socket_name, socket_path=socket_path,
        command=command, kind=kind, job_id=job_id, pid=pid, started_at_epoch_s=started_at_epoch_s,
        log_path=log_path, predicted_tokens_per_s=predicted_tokens_per_s, cap_steps=cap_steps,
        cap_seconds=cap_seconds, checklist_id=checklist_id, override_reason=override_reason,
        dispatch_status=dispatch_status, audit_id=audit_id, log_format=log_format, log_regex=log_regex,
        logging_steps=every, logging_steps_source=every_source, host=host,
    )
    data = record.model_dump()
    columns = ", ".join(data)
    conn = open_db()
    try:
        with transaction(conn):
            conn.execute(f"INSERT INTO dispatch_runs ({columns}) VALUES ({', '.join('?' * len(data))})",
                         tuple(data.values()))
    finally:
        conn.close()
    return record


def get_run(run_id: str) -> RunRecord:
    """The run ``run_id``; raises :class:`PreflightError` when there is none."""
    conn = open_db()
    try:
        row = conn.execute("SELECT * FROM dispatch_runs WHERE run_id = ?", (run_id,)).fetchone()
    finally:
        conn.close()
    if row is None:
        raise PreflightError("run_id", run_id, f"the id of a recorded run (see {call('list_runs')})")
    return RunRecord(**dict(row))


def list_runs(limit: int = 100) -> list[RunRecord]:
    """The newest ``limit`` runs, newest first."""
    conn = open_db()
    try:
        rows = conn.execute("SELECT * FROM dispatch_runs ORDER BY created_at DESC LIMIT ?", (int(limit),)).fetchall()
    finally:
        conn.close()
    return [RunRecord(**dict(row)) for row in rows]


def check_log_path(log_path: str | None, field: str = "log_path", *, host: str | None = None) -> None:
    """Refuse a run's log path that could never be a log: a NUL, outside ``--allow-path``, not a regular file.

    Why at launch: the heartbeat and ``run_check`` read this path for the whole run; a FIFO there blocks
    the reader, a device streams forever, and a path outside the allowed folders would let the log
    readers look at any file. A log that does not exist yet is fine (the run creates it). ``os.stat`` is
    used, not ``open``: a device or FIFO is refused without being opened.
    """
    import os
    import stat

    from gpu_preflight.tools.common.files import check_allowed

    if log_path is None:
        return
    if "\x00" in log_path or not log_path.strip():
        raise PreflightError(field, log_path, "a file path without NUL bytes")
    if host is not None:
        return  # a path on the box: nothing here to look up (and it is not read over ssh yet)
    check_allowed(log_path, field=field)
    try:
        mode = os.stat(log_path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise PreflightError(field, log_path, "a regular file (or none yet) the run writes its log to",
                             exc.strerror or "cannot look it up") from None
    if not stat.S_ISREG(mode):
        what = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
        raise PreflightError(field, log_path, "a regular file (or none yet) the run writes its log to", f"it is {what}")


def check_log_layout(log_format: str | None, log_regex: str | None) -> None:
    """Refuse a log format that is not a training-log format, or a regex the log parser would not take.

    Why at launch: the heartbeat reads the log with it for the whole run and must never fail on it; a bad
    regex found an hour later is an hour of a probe whose step cap was never counted.
    """
    if log_format is None and log_regex is None:
        return
    from gpu_preflight.tools.telemetry.models import LOG_FORMATS
    from gpu_preflight.tools.telemetry.trainlog import make_log_parser

    if log_regex is not None and log_format not in (None, "regex"):
        raise PreflightError("log_format", log_format, "'regex' or nothing when log_regex is given")
    fmt = "regex" if log_regex is not None else log_format
    if fmt not in LOG_FORMATS:
        raise PreflightError("log_format", log_format, ", ".join(LOG_FORMATS))
    try:
        make_log_parser(str(fmt), regex=log_regex)
    except PreflightError as exc:
        raise PreflightError("log_regex", exc.got, exc.allowed, exc.hint) from None


def run_logging_steps(stated: int | None, command: str) -> tuple[int | None, Literal["stated", "command"] | None]:
    """The run's ``logging_steps`` and where it came from: as stated, else read from the command line.

    Why: an HF Trainer log without a progress bar gives its dicts no step number, so a live run has no
    step to time until it ends; ``logging_steps`` places them. Reading it off ``--logging_steps N`` is a
    convenience, not a guarantee (:func:`~gpu_preflight.tools.telemetry.trainlog_hf.logging_steps_in_command`).
    """
    if stated is not None:
        if isinstance(stated, bool) or not isinstance(stated, int) or not 1 <= stated <= 10**9:
            raise PreflightError("logging_steps", stated, "a whole number of steps >= 1 (the Trainer's logging_steps)")
        return stated, "stated"
    try:
        from gpu_preflight.tools.telemetry.trainlog_hf import logging_steps_in_command
    except ModuleNotFoundError:  # the telemetry component is not installed: nothing reads the log here
        return None, None
    found = logging_steps_in_command(command)
    return (found, "command") if found is not None else (None, None)


def launch_command(
    target: str,
    command: str,
    *,
    kind: RunKind,
    log_path: str | None = None,
    log_format: str | None = None,
    log_regex: str | None = None,
    logging_steps: int | None = None,
    predicted_tokens_per_s: float | None = None,
    cap_steps: int | None = None,
    cap_seconds: float | None = None,
    socket_name: str | None = None,
    socket_path: str | None = None,
    gate: Callable[[], None] | None = None,
    checklist_id: str | None = None,
    override_reason: str | None = None,
    host: str | None = None,
    **dispatch_options: Any,
) -> LaunchResult:
    """Call ``gate()`` (it refuses by raising), dispatch ``command`` as a shell job, record the run.

    A run is recorded when the job was confirmed started (``submitted``) and also when the
    dispatch is ``unconfirmed`` (the keys went out; the job may still start, and the heartbeat
    will find its start record by job id). Refused or lost dispatches record nothing.

    ``target`` may be any form tmux takes (``probe:cap``, ``session:window``, ``%3``): a form that does
    not name one pane by itself is resolved once to its ``%id`` (the window's active pane now), and the
    run records both.

    ``host``: the pane is on that registered box; the keys go through :mod:`.remote_send` and the run keeps
    the host. Its ``log_path`` is a path on the box: checked for form only (it is not read over ssh yet).
    """
    if kind not in RUN_KINDS:
        raise PreflightError("kind", kind, "probe or full")
    target = validate_any_target(target)
    # The command's own checks run before the gate, so a refused command leaves no gate decision behind
    # and the error names ``command`` (dispatch() would call it ``text``).
    if not sanitize_text(command, dispatch_options.get("controls", "reject"), field="command").strip():
        raise PreflightError("command", command, "a non-empty shell command")
    check_log_path(log_path, host=host)
    check_log_layout(log_format, log_regex)
    run_logging_steps(logging_steps, command)  # refused before the gate and the keys, not after
    tmux = make_tmux(socket_name, socket_path, host=host)  # an unregistered host: refused before the gate
    if gate is not None:
        gate()
    pane = target
    if not is_pane_spec(target):
        try:
            found = resolve_pane_id(tmux, target)
        except HostUnreachable as exc:
            return LaunchResult(dispatch=DispatchResult(status="refused", target=target, mode="shell",
                                                        reason=f"{exc.status}: {exc.reason} (nothing was typed)"))
        if found is None:
            return LaunchResult(dispatch=DispatchResult(
                status="refused", target=target, mode="shell",
                reason=f"no pane for {target!r} on this tmux server (no such session or window, or wrong socket)"))
        pane = found
    result = dispatch(pane, command, "shell", socket_name=socket_name, socket_path=socket_path, host=host,
                      **dispatch_options)
    result.target = target
    if result.status not in {"submitted", "unconfirmed"}:
        return LaunchResult(dispatch=result)
    run = record_run(
        target, command, kind=kind, pane_id=result.pane_id, socket_name=socket_name, socket_path=socket_path,
        job_id=result.job_id, pid=result.pid, started_at_epoch_s=result.started_at_epoch_s, log_path=log_path,
        predicted_tokens_per_s=predicted_tokens_per_s, cap_steps=cap_steps, cap_seconds=cap_seconds,
        checklist_id=checklist_id, override_reason=override_reason, dispatch_status=result.status,
        audit_id=result.audit_id, log_format=log_format, log_regex=log_regex, logging_steps=logging_steps,
        host=host,
    )
    return LaunchResult(dispatch=result, run=run)

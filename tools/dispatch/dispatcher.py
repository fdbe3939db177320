"""``dispatch()``: the one entry point that validates, pins the pane, locks it, sends and audits.

Why one entry point: every rule (literal text, control characters out, one dispatch per pane,
an audit row per attempt) must hold for every caller: the MCP tool, the CLI and ``launch_command``.
Bad input raises :class:`PreflightError` before anything is typed; a pane that cannot safely take
the text gives a ``refused`` result (audited), never an exception. With ``host`` the pane is on a
registered remote box (shell: :mod:`.remote_send`; tui: the same protocol, each tmux step over ssh, the app's
processes and screen read on the box by :mod:`.agent_remote`); a dead link is a status, never an exception.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.dispatch import procfs
from gpu_preflight.tools.dispatch.audit import last_agent_prompt, text_sha256, write_audit
from gpu_preflight.tools.dispatch.lock import PaneBusy, pane_lock
from gpu_preflight.tools.dispatch.models import DISPATCH_MODES, DispatchMode, DispatchResult
from gpu_preflight.tools.dispatch.preflight_pane import BUSY_SETTLE_S
from gpu_preflight.tools.dispatch.profiles import PROFILE_NAMES, get_profile
from gpu_preflight.tools.dispatch.remote_send import dispatch_shell_remote
from gpu_preflight.tools.dispatch.sanitize import ControlPolicy, sanitize_text
from gpu_preflight.tools.dispatch.screen import TuiProfile
from gpu_preflight.tools.dispatch.shell_send import dispatch_shell
from gpu_preflight.tools.dispatch.target import PANE_ID_RE, make_tmux, resolve_pane_id, validate_target
from gpu_preflight.tools.dispatch.tmuxcmd import HostUnreachable, Tmux, TmuxError
from gpu_preflight.tools.dispatch.tui import ON_BUSY, TYPE_MAX_CHARS, Delivery, OnBusy, TuiTiming, dispatch_tui

MAX_TEXT_BYTES = 1_000_000


def _check_choice(field: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise PreflightError(field, value, "one of " + ", ".join(allowed))


def _pane_pids(tmux: Tmux, pane_id: str) -> list[int]:
    """The pane's process and its descendants (where an agent TUI started from a shell runs)."""
    try:
        pid = int(tmux.display(pane_id, "#{pane_pid}").strip())
    except (TmuxError, ValueError):
        return []
    return [pid, *procfs.descendants(pid, procfs.all_stats())]


REMOTE_TIMING = TuiTiming(echo_timeout_s=6.0, confirm_window_s=1.5)
"""Over ssh each look is a round trip (~170 ms warm, ~0.5 s on a loaded link): the windows hold several looks."""


def _tui_timing(tmux: Tmux, max_enter_retries: int) -> TuiTiming:
    base = REMOTE_TIMING if tmux.host is not None else TuiTiming()
    return replace(base, max_enter_retries=max_enter_retries)


def _tui_profile(tmux: Tmux, pane_id: str, profile: TuiProfile | str | None) -> TuiProfile:
    """The named profile, or (auto) the app the pane's processes run: on a box, read from the box's ``/proc``."""
    if isinstance(profile, TuiProfile) or (profile is not None and profile != "auto"):
        return get_profile(profile)
    if tmux.host is None:
        return get_profile(profile, _pane_pids(tmux, pane_id))
    from gpu_preflight.tools.dispatch.agent_remote import remote_profile

    try:
        return remote_profile(tmux, pane_id)
    except HostUnreachable:
        return get_profile("generic")  # the preflight's own look reports the fault, before anything is typed


def _screen_at_last_submit(server_key: str, pane_id: str) -> tuple[list[str], float] | None:
    """The screen's last lines at the proof of our previous submit here, and how long ago that was."""
    last = last_agent_prompt(server_key, pane_id)
    if last is None:
        return None
    age_s = (datetime.now(UTC) - datetime.fromisoformat(last[1])).total_seconds()
    return (last[2], age_s) if 0 <= age_s < BUSY_SETTLE_S else None


def dispatch(
    target: str,
    text: str,
    mode: DispatchMode = "shell",
    *,
    socket_name: str | None = None,
    socket_path: str | None = None,
    controls: ControlPolicy = "reject",
    on_busy: OnBusy = "refuse",
    busy_timeout_s: float = 300.0,
    profile: TuiProfile | str | None = None,
    delivery: Delivery = "auto",
    cancel_mode: bool = False,
    prompt_regex: str | None = None,
    lock_timeout_s: float = 30.0,
    start_timeout_s: float = 3.0,
    max_enter_retries: int = 3,
    tmux_timeout_s: float | None = None,
    timing: TuiTiming | None = None,
    audit: bool = True,
    host: str | None = None,
) -> DispatchResult:
    """Send ``text`` to the pane ``target`` and prove it was submitted.

    ``mode="shell"``: ``text`` is a shell command, run as a wrapped job (confirmed by its start
    record). ``mode="tui"``: ``text`` is a prompt for an agent TUI (confirmed when it leaves the
    input line). ``socket_name``/``socket_path`` pick the tmux server like ``-L``/``-S``.
    ``profile`` (tui): ``auto`` (default) picks claude/codex/gemini from the pane's processes, else generic.
    ``on_busy`` (tui): ``refuse``, ``wait`` (up to ``busy_timeout_s``), or ``queue`` (the app's own queue).
    ``host``: a registered host (``preflight hosts add``) whose tmux server has the pane.
    """
    started_s = time.monotonic()
    target = validate_target(target)
    _check_choice("mode", mode, DISPATCH_MODES)
    _check_choice("on_busy", on_busy, ON_BUSY)
    if not isinstance(profile, TuiProfile):
        _check_choice("profile", "auto" if profile is None else profile, PROFILE_NAMES)
    if not 0 <= busy_timeout_s <= 86_400:
        raise PreflightError("busy_timeout_s", busy_timeout_s, "0 to 86400 seconds")
    _check_choice("delivery", delivery, ("auto", "paste", "type"))
    if not 0 <= max_enter_retries <= 3:
        raise PreflightError("max_enter_retries", max_enter_retries, "0 to 3")
    if lock_timeout_s < 0 or start_timeout_s <= 0:
        raise PreflightError("timeouts", (lock_timeout_s, start_timeout_s), "lock >= 0 s, start > 0 s")
    if mode == "tui" and isinstance(text, str):
        # A prompt's CRLF or CR is a line break in its text (pasted bracketed, never a submit); only a shell
        # dispatch, which is one command, refuses CR (sanitize_text).
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    clean = sanitize_text(text, controls)
    if not clean.strip():
        raise PreflightError("text", text, "non-empty text")
    if len(clean.encode("utf-8")) > MAX_TEXT_BYTES:
        raise PreflightError("text", f"{len(clean.encode())} bytes", f"at most {MAX_TEXT_BYTES} bytes")
    body = clean.rstrip("\n")
    if mode == "tui" and delivery == "type" and ("\n" in body or body.endswith(";") or len(body) > TYPE_MAX_CHARS):
        raise PreflightError("delivery", delivery, "'auto' or 'paste' for multi-line text, text ending in ';' or "
                             f"over {TYPE_MAX_CHARS} characters (send-keys would mangle it)")
    tmux = make_tmux(socket_name, socket_path, tmux_timeout_s, host=host)
    try:  # a %id needs no resolving round trip on a remote box: the preflight's look finds it or not
        pane_id = target if host is not None and PANE_ID_RE.match(target) else resolve_pane_id(tmux, target)
        unreachable = None
    except HostUnreachable as exc:
        pane_id, unreachable = None, f"{exc.status}: {exc.reason} (nothing was typed)"
    if pane_id is None:
        result = DispatchResult(status="refused", reason=unreachable or "pane not found (killed, or wrong "
                                "server/socket)", target=target, mode=mode)
    else:
        try:
            with pane_lock(tmux.key, pane_id, lock_timeout_s) as waited_s:
                if mode == "shell" and tmux.host is not None:
                    result = dispatch_shell_remote(tmux, pane_id, clean, target=target, started_s=started_s,
                                                   start_timeout_s=start_timeout_s,
                                                   max_enter_retries=max_enter_retries, cancel_mode=cancel_mode,
                                                   prompt_regex=prompt_regex)
                elif mode == "shell":
                    result = dispatch_shell(tmux, pane_id, clean, target=target, started_s=started_s,
                                            start_timeout_s=start_timeout_s, max_enter_retries=max_enter_retries,
                                            cancel_mode=cancel_mode, prompt_regex=prompt_regex)
                else:
                    tui_timing = timing or _tui_timing(tmux, max_enter_retries)
                    tui_profile = _tui_profile(tmux, pane_id, profile)
                    result = dispatch_tui(tmux, pane_id, clean, target=target, started_s=started_s,
                                          profile=tui_profile, delivery=delivery, on_busy=on_busy,
                                          busy_timeout_s=busy_timeout_s, cancel_mode=cancel_mode, timing=tui_timing,
                                          unchanged_since=_screen_at_last_submit(tmux.key, pane_id))
                result.timings_ms["lock_wait"] = round(waited_s * 1000.0, 2)
        except PaneBusy as exc:
            result = DispatchResult(status="refused", reason=str(exc), target=target, pane_id=pane_id, mode=mode)
    result.text_sha256 = text_sha256(clean)
    if not result.latency_ms:
        result.latency_ms = round((time.monotonic() - started_s) * 1000.0, 2)
    if audit:
        result.audit_id = write_audit(result, text=clean, server_key=tmux.key)
    return result

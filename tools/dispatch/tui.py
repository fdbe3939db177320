"""Dispatch a prompt into an agent TUI: paste, wait for the echo, Enter, confirm, retry.

Why this order (measured, see the research notes): Ink (Claude Code, Gemini CLI) treats text and
``\\r`` arriving in one ``read()`` as typed text, and a busy event loop merges separate tmux writes
into one read; Codex turns an Enter within ~120 ms of a burst of characters into a newline. So
the Enter goes out only after the app has *drawn* our text in its input line and that line has
been quiet for a moment (plus 150 ms when the text may have arrived as an unframed burst), in its
own tmux call. Submission is confirmed only when OUR text has left the input line (never because
"the screen changed": our own typing changes it), and Enter is re-pressed only while the input
line still holds exactly our text, at most ``max_enter_retries`` times.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from gpu_preflight.tools.dispatch.agentview import AgentView, Composer, queued_note_for, read_agent_view
from gpu_preflight.tools.dispatch.models import DispatchResult, DispatchStatus, tail_lines
from gpu_preflight.tools.dispatch.preflight_pane import preflight_tui
from gpu_preflight.tools.dispatch.screen import Needle, TuiProfile, compact, count_markers
from gpu_preflight.tools.dispatch.tmuxcmd import HostUnreachable, Tmux, TmuxError

Delivery = Literal["auto", "paste", "type"]
OnBusy = Literal["refuse", "queue", "wait"]
ON_BUSY: tuple[OnBusy, ...] = ("refuse", "queue", "wait")
QUEUED_NOTE_WAIT_S = 1.0
"""How long after a busy-time submit we look for the app's own queued note before calling it taken."""
TYPE_MAX_CHARS = 1000
"""Above this (or with a newline or a trailing ';') text goes through the paste buffer."""


@dataclass(frozen=True)
class TuiTiming:
    """The protocol's time budget; defaults from the measured medians (47-300 ms per submit)."""

    ready_timeout_s: float = 5.0
    echo_timeout_s: float = 2.0
    confirm_window_s: float = 0.4
    quiet_s: float = 0.03
    typed_margin_s: float = 0.15
    poll_s: float = 0.01
    max_enter_retries: int = 3
    max_deliveries: int = 2


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)


class _Session:
    """State of one TUI dispatch (kept in one place so each step stays small)."""

    def __init__(self, tmux: Tmux, pane_id: str, text: str, profile: TuiProfile, timing: TuiTiming) -> None:
        self.tmux, self.pane_id, self.text, self.profile, self.timing = tmux, pane_id, text, profile, timing
        self.needle = Needle.of(text)
        self.lines: list[str] = []
        self.enters = 0
        self.busy_seen = False
        self.composer: Composer | None = None
        self.view: AgentView | None = None

    def look(self) -> Composer | None:
        cursor_y: int | None = None
        if self.tmux.host is not None:  # one ssh round trip for both (each costs ~170 ms)
            from gpu_preflight.tools.dispatch.agent_remote import screen_and_cursor

            ansi, cursor_y = screen_and_cursor(self.tmux, self.pane_id)
            self.view = read_agent_view(ansi, self.profile, cursor_y if self.profile.ends_at_blank else None)
        else:
            if self.profile.ends_at_blank:  # a draft with an empty line: the cursor says where the composer ends
                cursor = self.tmux.display(self.pane_id, "#{cursor_y}").strip()
                cursor_y = int(cursor) if cursor.isdigit() else None
            self.view = read_agent_view(self.tmux.capture(self.pane_id, escapes=True), self.profile, cursor_y)
        self.lines = self.view.lines
        if self.view.busy_line is not None:
            self.busy_seen = True
        self.composer = self.view.composer
        return self.composer

    def queued_note(self) -> str | None:
        return queued_note_for(self.lines, self.composer, self.profile, self.needle.head)

    def markers(self, composer: Composer | None) -> int:
        return count_markers(composer.text, self.profile.paste_marker_regex) if composer else 0

    def deliver(self, delivery: Delivery) -> bool:
        """Send the text; True when it went as a bracketed-capable paste."""
        use_paste = delivery == "paste" or (
            delivery == "auto" and ("\n" in self.text or len(self.text) > TYPE_MAX_CHARS or self.text.endswith(";"))
        )
        if use_paste:
            name = "pf-" + secrets.token_hex(6)
            self.tmux.load_buffer(name, self.text.encode("utf-8"))
            self.tmux.paste_buffer(name, self.pane_id)
        else:
            self.tmux.send_literal(self.pane_id, self.text)
        return use_paste

    def wait_echo(self, baseline_markers: int, delivered_s: float, margin_s: float) -> Composer | None:
        """Our text is visible in the composer and the composer has been quiet; None on timeout."""
        deadline = delivered_s + self.timing.echo_timeout_s
        previous: str | None = None
        previous_s = 0.0
        while time.monotonic() < deadline:
            composer = self.look()
            now = time.monotonic()
            echoed = composer is not None and (
                self.needle.visible_in(composer.text)
                or self.needle.tail_visible_in(composer.text)  # long text whose head scrolled out of view
                or self.markers(composer) > baseline_markers
            )
            if echoed and composer is not None:
                if composer.text == previous and now - previous_s >= self.timing.quiet_s:
                    if now - delivered_s >= margin_s:
                        return composer
                elif composer.text != previous:
                    previous, previous_s = composer.text, now
            else:
                previous = None
            time.sleep(self.timing.poll_s)
        return None

    def ours(self, composer: Composer) -> bool:
        """The composer holds our text (or its paste placeholder) and nothing else: safe to press Enter."""
        if self.markers(composer) > 0:
            return compact(re.sub(self.profile.paste_marker_regex, "", composer.text)) in {"", self.needle.full}
        body = compact(composer.text)
        if body == self.needle.full:
            return True
        return bool(self.needle.tail) and body.startswith(self.needle.head) and body.endswith(self.needle.tail)

    def left_input_line(self, composer: Composer | None, baseline_markers: int) -> bool:
        if composer is None:
            return False
        gone = not self.needle.any_part_in(composer.text) and self.markers(composer) <= baseline_markers
        return gone and (self.busy_seen or not self.profile.require_busy_marker)


def dispatch_tui(
    tmux: Tmux,
    pane_id: str,
    text: str,
    *,
    target: str,
    started_s: float,
    profile: TuiProfile | None = None,
    delivery: Delivery = "auto",
    on_busy: OnBusy = "refuse",
    busy_timeout_s: float = 0.0,
    cancel_mode: bool = False,
    timing: TuiTiming | None = None,
    unchanged_since: tuple[list[str], float] | None = None,
) -> DispatchResult:
    """Submit ``text`` (already sanitised) to the agent TUI in ``pane_id``, with proof.

    A busy agent: ``refuse`` types nothing; ``wait`` waits up to ``busy_timeout_s`` for it to be idle,
    then submits; ``queue`` submits into the app's own queue and says ``queued`` only when the app shows
    our prompt queued (an app that sends mid-turn, Codex, is reported as such)."""
    profile = profile or TuiProfile()
    timing = timing or TuiTiming()
    text = text.rstrip("\n")  # a trailing newline inside a paste is text, never a submit
    timings: dict[str, float] = {}
    base = DispatchResult(status="refused", reason="", target=target, pane_id=pane_id, mode="tui",
                          timings_ms=timings, profile=profile.name)
    try:
        pf = preflight_tui(tmux, pane_id, text=text, profile=profile, on_busy=on_busy, busy_timeout_s=busy_timeout_s,
                           ready_timeout_s=timing.ready_timeout_s, cancel_mode=cancel_mode, poll_s=timing.poll_s,
                           unchanged_since=unchanged_since)
    except HostUnreachable as exc:  # before anything was typed
        return base.model_copy(update={"reason": f"{exc.status}: {exc.reason} (nothing was typed)",
                                       "latency_ms": _ms(time.monotonic() - started_s)})
    timings["preflight"] = _ms(time.monotonic() - started_s)
    base.current_command = pf.pane.current_command if pf.pane else None
    if pf.refusal is not None:
        return base.model_copy(update={"reason": pf.refusal, "evidence": tail_lines(pf.lines),
                                       "latency_ms": _ms(time.monotonic() - started_s)})
    run = _Session(tmux, pane_id, text, profile, timing)
    baseline = run.markers(pf.composer)
    try:
        status, reason, confirmed_s, first_enter_s = _deliver_and_submit(run, baseline, delivery, timings, started_s)
        if status == "submitted" and pf.busy:
            status, reason = _busy_outcome(run, reason)
    except TmuxError as exc:
        status, reason, confirmed_s, first_enter_s = "lost", f"tmux failed: {exc.stderr}", None, None
    except HostUnreachable as exc:  # the text or Enter may have gone out: never called submitted without proof
        status, reason, confirmed_s, first_enter_s = ("unconfirmed", f"{exc.status}: {exc.reason} (the prompt may "
                                                      "have been typed; no proof of submission came)", None, None)
    evidence = tail_lines(run.lines, 8)
    return base.model_copy(update={
        "status": status, "reason": reason, "enter_count": run.enters, "evidence": evidence, "timings_ms": timings,
        "latency_ms": _ms(time.monotonic() - started_s),
        "confirm_latency_ms": _ms(confirmed_s - first_enter_s) if confirmed_s and first_enter_s else None,
    })


def _busy_outcome(run: _Session, reason: str) -> tuple[DispatchStatus, str]:
    """What a submit into a busy agent became: queued (the app shows it), sent mid-turn, or taken."""
    if run.profile.sends_mid_turn:
        return "submitted", (f"{reason}; the agent was busy and {run.profile.name} sends a prompt into the running "
                             "turn (no queue on Enter)")
    deadline = time.monotonic() + QUEUED_NOTE_WAIT_S
    while True:
        note = run.queued_note()
        if note is not None:
            return "queued", f"{reason}; the app shows it queued ({note!r})"
        if time.monotonic() >= deadline:
            return "submitted", f"{reason}; the agent was busy but shows no queued note: its turn ended, it took ours"
        time.sleep(run.timing.poll_s * 5)
        run.look()


def _deliver_and_submit(run: _Session, baseline: int, delivery: Delivery, timings: dict[str, float],
                        started_s: float) -> tuple[DispatchStatus, str, float | None, float | None]:
    """Steps 3-7 of the protocol; returns (status, reason, confirmed_at, first_enter_at)."""
    timing = run.timing
    composer: Composer | None = None
    for attempt in range(timing.max_deliveries):
        delivered_s = time.monotonic()
        pasted = run.deliver(delivery)
        framed = pasted and run.profile.bracketed_paste is True
        composer = run.wait_echo(baseline, delivered_s, 0.0 if framed else timing.typed_margin_s)
        if composer is not None:
            break
        now_composer = run.look()
        if now_composer is None or not now_composer.empty:
            return "lost", "our text never appeared in the input line, which now holds something else", None, None
        if attempt + 1 == timing.max_deliveries:
            return "lost", f"our text never appeared in the input line (sent {timing.max_deliveries} times)", None, None
    timings["echo"] = _ms(time.monotonic() - started_s)
    assert composer is not None
    first_enter_s = time.monotonic()
    while True:
        run.tmux.send_key(run.pane_id, "Enter")
        run.enters += 1
        window_end = time.monotonic() + timing.confirm_window_s * (1 + 0.5 * (run.enters - 1))
        while time.monotonic() < window_end:
            time.sleep(timing.poll_s)
            composer = run.look()
            if run.left_input_line(composer, baseline):
                timings["confirm"] = _ms(time.monotonic() - started_s)
                return "submitted", "our text left the input line after Enter", time.monotonic(), first_enter_s
        if composer is None:
            return "unconfirmed", "the input line disappeared and no proof of submission came", None, first_enter_s
        if not run.ours(composer):
            return ("unconfirmed", "the input line holds text we cannot attribute to this dispatch; not pressing "
                    "Enter on it", None, first_enter_s)
        if run.enters > timing.max_enter_retries:
            return ("unconfirmed", f"our text is still in the input line after {run.enters} Enters", None,
                    first_enter_s)

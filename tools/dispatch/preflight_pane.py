"""Look before typing: refuse (with the reason) rather than type into the wrong place.

Why: every measured way a dispatch goes silently wrong starts with a pane that cannot take the
keys (copy mode swallows them, ``select-pane -d`` drops them, synchronize-panes copies them to
every pane), a program that is not the one we think (a busy job reading our "command" as its
input), or an input line that already holds someone else's text (our Enter would submit their
draft). Each check below names one of those.
"""

from __future__ import annotations

import os
import termios
import time
from dataclasses import dataclass, field

from gpu_preflight.tools.dispatch.agentview import AgentView, Composer, read_agent_view
from gpu_preflight.tools.dispatch.models import tail_lines
from gpu_preflight.tools.dispatch.paneinfo import PaneInfo, fetch_pane
from gpu_preflight.tools.dispatch.screen import TuiProfile, shell_input_line, shell_prompt_is_empty
from gpu_preflight.tools.dispatch.tmuxcmd import Tmux, TmuxError

MAX_DRAFT_RELOOKS = 10
DRAFT_CONFIRM_S = 0.12
"""Between the two looks that must agree before a draft is called someone else's text."""
BUSY_SETTLE_S = 1.0
"""Longest wait for a busy marker right after our own submit (measured: Gemini CLI 0.2-1 s)."""
CANONICAL_LINE_MAX_BYTES = 4095
"""A cooked-mode tty keeps at most 4095 bytes of one line and silently drops the rest."""


@dataclass
class Preflight:
    """Outcome of a preflight: ``refusal`` is None when typing is safe."""

    pane: PaneInfo | None
    refusal: str | None = None
    lines: list[str] = field(default_factory=list)
    composer: Composer | None = None
    busy: bool = False
    view: AgentView | None = None


def _common(tmux: Tmux, pane: PaneInfo | None, cancel_mode: bool) -> tuple[PaneInfo | None, str | None]:
    if pane is None:
        return None, "pane not found (killed, or wrong server/socket)"
    if pane.dead:
        return pane, "pane is dead: its program exited (remain-on-exit keeps it on screen)"
    if pane.in_mode:
        if not cancel_mode:
            return pane, f"pane is in {pane.mode or 'a mode'}: keys would go to the mode, not the program"
        tmux.run("send-keys", "-t", pane.pane_id, "-X", "cancel")
        pane = fetch_pane(tmux, pane.pane_id)
        if pane is None or pane.in_mode:
            return pane, "pane is still in a mode after cancelling it"
    if pane.input_off:
        return pane, "input is disabled on this pane (select-pane -d)"
    if pane.synchronized:
        return pane, "synchronize-panes is on: keys would be typed into every pane of the window"
    return pane, None


def preflight_shell(tmux: Tmux, pane_id: str, *, cancel_mode: bool = False,
                    prompt_regex: str | None = None) -> Preflight:
    """A shell owns the terminal and sits at an EMPTY prompt."""
    pane, refusal = _common(tmux, fetch_pane(tmux, pane_id), cancel_mode)
    if pane is None or refusal:
        return Preflight(pane=pane, refusal=refusal)
    if not pane.shell_in_foreground:
        return Preflight(pane=pane, refusal=not_at_prompt(pane))
    try:
        lines = tmux.capture(pane.pane_id)
    except TmuxError:
        return Preflight(pane=pane, refusal="pane vanished during preflight")
    return Preflight(pane=pane, lines=lines, refusal=draft_refusal(pane, lines, prompt_regex))


def not_at_prompt(pane: PaneInfo) -> str:
    """The refusal for a shell pane whose shell does not own the terminal."""
    return (f"the shell is not at its prompt: {pane.current_command or '?'} runs in the foreground "
            f"(foreground pgid {pane.foreground_pgid}, shell pid {pane.pane_pid})")


def draft_refusal(pane: PaneInfo, lines: list[str], prompt_regex: str | None) -> str | None:
    """None when the shell's input line (at the cursor) is an empty prompt; else the refusal."""
    line, before, after = shell_input_line(lines, pane.cursor_x, pane.cursor_y)
    if shell_prompt_is_empty(before, after, prompt_regex):
        return None
    return f"the input line is not an empty prompt (someone's draft or an unfinished command): {line!r}"


def canonical_mode(tty_path: str) -> bool | None:
    """Whether the pane's terminal is in cooked (canonical) mode; None if we cannot tell."""
    try:
        fd = os.open(tty_path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        return bool(termios.tcgetattr(fd)[3] & termios.ICANON)
    except termios.error:
        return None
    finally:
        os.close(fd)


def _cooked(tmux: Tmux, tty: str) -> bool | None:
    """:func:`canonical_mode` of the pane's tty, read on the box that has it (a remote tty path names nothing here)."""
    if tmux.host is None:
        return canonical_mode(tty)
    from gpu_preflight.tools.dispatch.agent_remote import remote_cooked

    return remote_cooked(tmux, tty)


def _draft_holds(tmux: Tmux, pane: PaneInfo, profile: TuiProfile, text: str) -> bool:
    """The composer still holds ``text`` a moment later (not one frame of a redraw)."""
    time.sleep(DRAFT_CONFIRM_S)
    try:
        again = read_agent_view(tmux.capture(pane.pane_id, escapes=True), profile, pane.cursor_y)
    except TmuxError:
        return True
    return again.composer is not None and again.composer.text == text


def preflight_tui(tmux: Tmux, pane_id: str, *, text: str, profile: TuiProfile, on_busy: str = "refuse",
                  ready_timeout_s: float = 5.0, busy_timeout_s: float = 0.0, cancel_mode: bool = False,
                  poll_s: float = 0.02, unchanged_since: tuple[list[str], float] | None = None) -> Preflight:
    """An agent TUI owns the terminal, shows an empty composer, no dialog, and is idle (or we queue/wait).

    Waits up to ``ready_timeout_s`` for the composer to appear: input sent before an app has
    finished starting is discarded, so an app still booting is waited for, not typed at. With
    ``on_busy="wait"`` a busy agent is waited for up to ``busy_timeout_s``. ``unchanged_since``: the
    screen's last lines at the proof of our previous submit here and that proof's age. While the screen
    still shows exactly those, the app may not have reacted yet, so an idle-looking screen is watched until
    :data:`BUSY_SETTLE_S` after that proof for the busy marker it has not drawn yet (Gemini CLI shows its
    spinner only after a routing request). A screen that moved on, or an older proof, costs nothing.

    Someone's draft is refused only when two looks :data:`DRAFT_CONFIRM_S` apart agree: a single frame
    caught mid-redraw (Gemini at its first token) can show the history's last prompt as the input line.
    """
    pane, refusal = _common(tmux, fetch_pane(tmux, pane_id), cancel_mode)
    if pane is None or refusal:
        return Preflight(pane=pane, refusal=refusal)
    longest = max((len(line.encode()) for line in text.split("\n")), default=0)
    if longest > CANONICAL_LINE_MAX_BYTES and _cooked(tmux, pane.tty):
        return Preflight(
            pane=pane,
            refusal=f"the program reads a cooked-mode tty, which truncates a line at {CANONICAL_LINE_MAX_BYTES} "
            f"bytes; the longest line is {longest} bytes",
        )
    started = time.monotonic()
    deadline = started + ready_timeout_s
    relooks = 0
    while True:
        try:
            view = read_agent_view(tmux.capture(pane.pane_id, escapes=True), profile, pane.cursor_y)
        except TmuxError:
            return Preflight(pane=pane, refusal="pane vanished during preflight")
        lines, composer = view.lines, view.composer
        if view.dialog is not None:
            return Preflight(pane=pane, lines=lines, view=view, refusal=f"a dialog is open: {view.dialog!r}")
        if composer is not None and not composer.empty and relooks < MAX_DRAFT_RELOOKS and not _draft_holds(
                tmux, pane, profile, composer.text):
            relooks += 1  # bounded: text that keeps changing (someone typing) is refused after a few looks
            continue
        if composer is not None and not composer.empty:
            return Preflight(
                pane=pane, lines=lines, composer=composer, view=view,
                refusal=f"the input line already holds text we did not type: {composer.text[:80]!r}",
            )
        waiting = view.busy_line is not None and on_busy == "wait" and time.monotonic() < started + busy_timeout_s
        if composer is not None and not pane.shell_in_foreground and not waiting and not view.starting:
            break
        if time.monotonic() >= deadline and not waiting:
            if pane.shell_in_foreground:
                return Preflight(pane=pane, lines=lines,
                                 refusal=f"pane runs an idle shell ({pane.current_command}); use mode='shell'")
            what = "the app is still starting" if view.starting else "no input line found"
            return Preflight(
                pane=pane, lines=lines,
                refusal=f"{what} after {ready_timeout_s:g} s (app still starting, or profile "
                f"{profile.name!r} does not fit {pane.current_command!r})",
            )
        time.sleep(poll_s)
        pane = fetch_pane(tmux, pane_id) or pane
    settle_s = 0.0
    if unchanged_since is not None and tail_lines(view.lines, len(unchanged_since[0])) == unchanged_since[0]:
        settle_s = max(0.0, BUSY_SETTLE_S - unchanged_since[1])
    settle_until = time.monotonic() + settle_s
    while view.busy_line is None and time.monotonic() < settle_until:
        time.sleep(poll_s)
        try:
            later = read_agent_view(tmux.capture(pane.pane_id, escapes=True), profile, pane.cursor_y)
        except TmuxError:
            return Preflight(pane=pane, refusal="pane vanished during preflight")
        if later.busy_line is not None or later.dialog is not None or not (later.composer and later.composer.empty):
            return preflight_tui(tmux, pane_id, text=text, profile=profile, on_busy=on_busy,
                                 ready_timeout_s=ready_timeout_s, busy_timeout_s=busy_timeout_s,
                                 cancel_mode=cancel_mode, poll_s=poll_s)
    busy_line = view.busy_line
    if busy_line is not None and on_busy == "refuse":
        return Preflight(pane=pane, lines=lines, composer=composer, view=view,
                         refusal=f"the agent is busy ({busy_line!r}); pass on_busy='wait' or 'queue'")
    if busy_line is not None and on_busy == "wait":
        return Preflight(pane=pane, lines=lines, composer=composer, view=view,
                         refusal=f"the agent was still busy after {busy_timeout_s:g} s ({busy_line!r})")
    return Preflight(pane=pane, lines=lines, composer=composer, busy=busy_line is not None, view=view)

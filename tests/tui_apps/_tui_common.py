"""Shared skeleton of the fixture TUIs: raw mode, a Claude-like screen, a ground-truth log.

Why fixtures and not the real agents: Claude Code, Codex and Gemini are not installed here, and a
test must be able to say exactly what the app received. Each app appends JSON lines to ``--log``
(``ready``, ``submit`` with the full text, ``ctrl-c``) so a test scores delivery against what the
app really got, never against the screen.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import select
import signal
import sys
import termios
import time
import tty

PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"
ESC_SEQ = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1bO.|\x1b.?")
BUSY_LINE = "\u280b Working\u2026 (esc to interrupt)"
IDLE_LINE = "? for shortcuts"


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--log", required=True, help="JSON-lines ground truth of what was submitted")
    parser.add_argument("--stall-ms", default="0-0", help="event-loop stall before each read, 'lo-hi' ms")
    parser.add_argument("--start-delay-ms", type=int, default=0, help="boot time; input typed meanwhile is flushed")
    parser.add_argument("--busy-ms", type=int, default=0, help="show a busy marker this long after a submit")
    parser.add_argument("--no-bracketed-paste", action="store_true", help="do not enable ?2004h")
    parser.add_argument("--ignore-enter", action="store_true", help="Enter never submits (a stuck input line)")
    parser.add_argument("--placeholder-chars", type=int, default=800, help="pastes above this show a placeholder")
    return parser


QUEUED_NOTE = "  \u23bf  Queued \u00b7 ctrl+x ctrl+s to send now"
"""Claude Code's note under a prompt it queued (shared/fixtures/agent-tuis/claude-queued.txt)."""


class App:
    """Input line + history + busy marker; subclasses decide how raw input becomes keys."""

    glyph = ">"
    placeholder = 'Try "fix lint errors"'

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        lo, _, hi = args.stall_ms.partition("-")
        self.stall = (int(lo) / 1000.0, int(hi or lo) / 1000.0)
        self.text = ""
        self.pastes: list[tuple[int, int, str]] = []  # (start, end, placeholder) spans of big pastes
        self.paste_count = 0
        self.history: list[str] = []
        self.busy_until = 0.0
        self.queued = 0
        self.queued_items: set[int] = set()  # history entries shown with a queued note, as Claude Code does
        self.log_file = open(args.log, "a", buffering=1)  # noqa: SIM115 - lives as long as the app

    def log(self, event: str, **fields: object) -> None:
        self.log_file.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")

    # -- input model -------------------------------------------------------------------------
    def insert(self, text: str) -> None:
        self.text += text

    def insert_paste(self, text: str) -> None:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        start = len(self.text)
        self.text += text
        if len(text) > self.args.placeholder_chars or text.count("\n") >= 3:
            self.paste_count += 1
            label = f"[Pasted text #{self.paste_count} +{text.count(chr(10)) + 1} lines]"
            self.pastes.append((start, len(self.text), label))

    def submit(self) -> None:
        if self.args.ignore_enter:
            return
        text = self.text.strip("\n")
        if not text:
            return
        busy = time.monotonic() < self.busy_until
        self.log("submit", text=text, queued=busy)
        self.history.append(text)
        self.text, self.pastes = "", []
        if busy:
            self.queued += 1
            self.queued_items.add(len(self.history) - 1)
        else:
            self.busy_until = time.monotonic() + self.args.busy_ms / 1000.0

    def backspace(self) -> None:
        self.text, self.pastes = self.text[:-1], [p for p in self.pastes if p[1] <= len(self.text) - 1]

    def ctrl_c(self) -> None:
        self.log("ctrl-c")
        raise SystemExit(130)

    def feed(self, chunk: str, now: float) -> None:
        raise NotImplementedError

    # -- screen ------------------------------------------------------------------------------
    def composer_display(self) -> str:
        shown, cursor = "", 0
        for start, end, label in self.pastes:
            shown += self.text[cursor:start] + label
            cursor = end
        return shown + self.text[cursor:]

    def render(self) -> None:
        cols, rows = os.get_terminal_size(1)
        width = max(20, cols - 4)
        out = []
        busy = time.monotonic() < self.busy_until
        for index in range(max(0, len(self.history) - 4), len(self.history)):
            item = self.history[index]
            first = item.split("\n")[0][:width]
            out.append(f"{self.glyph} {first}")
            queued = busy and index in self.queued_items
            out.append(QUEUED_NOTE if queued else f"\u25cf ok ({len(item)} chars)")
        body = []
        for line in self.composer_display().split("\n"):
            body += [line[i : i + width] for i in range(0, max(len(line), 1), width)] or [""]
        body = body[-(rows - len(out) - 4) :] if len(body) > rows - len(out) - 4 else body
        out.append("\u2500" * (cols - 1))
        if not self.text:
            body = [f"\x1b[2m{self.placeholder}\x1b[22m"]  # dim ghost text, like the real agents
        out += [(f"{self.glyph} " if i == 0 else "  ") + line for i, line in enumerate(body)]
        out.append("\u2500" * (cols - 1))
        status = BUSY_LINE if busy else IDLE_LINE
        if self.queued and busy:
            status += f"  {self.queued} queued message"
        out.append(status)
        sys.stdout.write("\x1b[H\x1b[2J" + "\r\n".join(out[-(rows):]))
        sys.stdout.flush()

    # -- main loop ---------------------------------------------------------------------------
    def run(self) -> int:
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            tty.setraw(fd)
            sys.stdout.write("Loading\u2026")
            sys.stdout.flush()
            if self.args.start_delay_ms:
                time.sleep(self.args.start_delay_ms / 1000.0)
                termios.tcflush(fd, termios.TCIFLUSH)  # typeahead sent while booting is discarded
            if not self.args.no_bracketed_paste:
                sys.stdout.write("\x1b[?2004h")
            self.render()
            self.log("ready")
            was_busy = False
            while True:
                lo, hi = self.stall
                if hi > 0:
                    time.sleep(random.uniform(lo, hi))  # event loop busy: bytes pile up unread
                ready, _, _ = select.select([fd], [], [], 0.05)
                changed = False
                if ready:
                    chunk = os.read(fd, 1 << 20)
                    if not chunk:
                        return 0
                    self.feed(chunk.decode("utf-8", "replace"), time.monotonic())
                    changed = True
                busy = time.monotonic() < self.busy_until
                if busy != was_busy:
                    was_busy, changed = busy, True
                    if not busy:
                        self.queued = 0
                if changed:
                    self.render()
        finally:
            sys.stdout.write("\x1b[?2004l")
            sys.stdout.flush()
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def split_pastes(chunk: str) -> list[tuple[bool, str]]:
    """[(is_paste, text)] in order; a paste runs from the start marker to the FIRST end marker."""
    parts: list[tuple[bool, str]] = []
    rest = chunk
    while rest:
        start = rest.find(PASTE_START)
        if start < 0:
            parts.append((False, rest))
            break
        if start:
            parts.append((False, rest[:start]))
        end = rest.find(PASTE_END, start)
        if end < 0:
            parts.append((True, rest[start + len(PASTE_START) :]))
            break
        parts.append((True, rest[start + len(PASTE_START) : end]))
        rest = rest[end + len(PASTE_END) :]
    return parts


def run_main(app: type[App], description: str) -> int:
    """Each stand-in's entry point: parse the shared flags, run ``app``, exit with its status."""
    args = base_parser(description).parse_args()
    try:
        return app(args).run()
    except SystemExit as exc:
        return int(exc.code or 0)

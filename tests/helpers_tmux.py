"""Test helpers: a private tmux server per test module, and waits that poll instead of sleeping.

Why private servers: tests must never touch a developer's tmux. Each server gets its own ``-L``
socket name, an empty config (``-f /dev/null``), and is killed at the end (only that server).
Why ``retry_until``: fixed sleeps are either flaky or slow; polling a condition is neither.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

APPS = Path(__file__).resolve().parent / "tui_apps"
T = TypeVar("T")


def retry_until(check: Callable[[], T], timeout_s: float = 5.0, interval_s: float = 0.02, what: str = "") -> T:
    """Call ``check`` until it returns something truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or check!r} (last: {value!r})")
        time.sleep(interval_s)


class TmuxTestServer:
    """A tmux server on a unique socket name, with helpers to open windows running programs."""

    def __init__(self, width: int = 100, height: int = 30) -> None:
        self.socket_name = f"pftest-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.width, self.height = width, height
        self.tmux("-f", "/dev/null", "new-session", "-d", "-s", "base", "-x", str(width), "-y", str(height),
                  "sleep 100000")
        self.tmux("set-option", "-g", "default-size", f"{width}x{height}")
        self.tmux("set-option", "-g", "history-limit", "2000")
        self.socket_path = self.tmux("display-message", "-p", "#{socket_path}").strip()

    def tmux(self, *args: str, stdin: bytes | None = None) -> str:
        done = subprocess.run(["tmux", "-L", self.socket_name, *args], input=stdin, capture_output=True,
                              timeout=10, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"tmux {args[:3]} failed: {done.stderr.decode()}")
        return done.stdout.decode()

    def kill(self) -> None:
        """Kill this server only, and remove its socket file (tmux 3.3a leaves it behind)."""
        subprocess.run(["tmux", "-L", self.socket_name, "kill-server"], capture_output=True, timeout=10, check=False)
        Path(self.socket_path).unlink(missing_ok=True)

    def window(self, command: str, *, remain_on_exit: bool = False, env: dict[str, str] | None = None) -> str:
        """A new window running ``command`` (through ``sh -c``); returns its ``%pane_id``."""
        args = ["new-window", "-d", "-P", "-F", "#{pane_id}"]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        if not remain_on_exit:
            return self.tmux(*args, command).strip()
        # The program must not exit before remain-on-exit is set: hold it on a wait-for channel.
        channel = f"go-{uuid.uuid4().hex[:8]}"
        pane_id = self.tmux(*args, f"tmux wait-for {channel}; {command}").strip()
        self.tmux("set-option", "-p", "-t", pane_id, "remain-on-exit", "on")
        self.tmux("wait-for", "-S", channel)
        return pane_id

    def shell(self) -> str:
        """A bash with a plain ``$ `` prompt, no rc files, no history file; waits for the prompt."""
        pane_id = self.window("exec env PS1='$ ' HISTFILE=/dev/null PROMPT_COMMAND= bash --norc --noprofile")
        retry_until(lambda: self.capture(pane_id)[-1:] == ["$"], what="bash prompt")
        return pane_id

    def app(self, name: str, log: Path, *flags: str) -> str:
        """A fixture program from ``tests/tui_apps`` writing its ground truth to ``log``."""
        argv = [sys.executable, str(APPS / name), "--log", str(log), *flags]
        return self.window("exec " + shlex.join(argv))

    def capture(self, pane_id: str) -> list[str]:
        lines = [line.rstrip() for line in self.tmux("capture-pane", "-p", "-t", pane_id).split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        return lines

    def screen(self, pane_id: str) -> str:
        return "\n".join(self.capture(pane_id))

    def display(self, pane_id: str, fmt: str) -> str:
        return self.tmux("display-message", "-p", "-t", pane_id, fmt).rstrip("\n")


def log_events(log: Path, event: str | None = None) -> list[dict[str, object]]:
    """The fixture app's JSON-lines log (optionally only one event kind)."""
    if not log.exists():
        return []
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [row for row in rows if event is None or row.get("event") == event]


def submitted(log: Path) -> list[str]:
    return [str(row["text"]) for row in log_events(log, "submit")]


def wait_ready(log: Path, timeout_s: float = 5.0) -> None:
    retry_until(lambda: log_events(log, "ready"), timeout_s, what=f"{log.name} ready")


def settle(srv: TmuxTestServer, pane_id: str, quiet_s: float = 0.15, timeout_s: float = 3.0) -> list[str]:
    """Wait until the pane's screen stops changing for ``quiet_s``; return it (to score naive sends)."""
    last = srv.capture(pane_id)
    stable_since = time.monotonic()
    deadline = stable_since + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.03)
        now = srv.capture(pane_id)
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= quiet_s:
            break
    return last


# -- the naive senders the dispatcher is measured against ---------------------------------------


def naive_one_call(srv: TmuxTestServer, pane_id: str, text: str) -> None:
    """What several peer MCP servers do: ``send-keys -t pane 'text' Enter`` in ONE tmux call."""
    srv.tmux("send-keys", "-t", pane_id, text, "Enter")


def naive_libtmux(srv: TmuxTestServer, pane_id: str, text: str, *, literal: bool = False) -> None:
    """libtmux's ``Pane.send_keys(text, enter=True)``: two tmux calls ~2 ms apart, no ``--``."""
    import libtmux
    from libtmux.pane import Pane

    Pane.from_pane_id(server=libtmux.Server(socket_name=srv.socket_name), pane_id=pane_id).send_keys(
        text, enter=True, literal=literal
    )


def naive_paste(srv: TmuxTestServer, pane_id: str, text: str) -> None:
    """A bracketed paste of raw text (no sanitising), no separate Enter."""
    srv.tmux("load-buffer", "-b", "naive", "-", stdin=text.encode())
    srv.tmux("paste-buffer", "-p", "-r", "-d", "-b", "naive", "-t", pane_id)

"""Every tmux call the dispatcher makes, each with a timeout.

Why not libtmux's command runner: libtmux calls (``Server.cmd``, ``Server.wait_for``) have no
timeout, and a wedged tmux server (or a ``wait-for`` on a channel nobody signals) would hang the
MCP server forever. So commands go through ``subprocess`` with a deadline and a kill; callers who
want libtmux's object model for the same server get it from :meth:`Tmux.libtmux_server`.

Arguments are passed as argv, never through a shell. tmux still parses argv itself (an argument
ending in ``;`` separates commands, a leading ``-`` reads as a flag), which is why text payloads
travel through :meth:`Tmux.load_buffer` (stdin) and never as arguments.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gpu_preflight.tools.common.errors import PreflightError, has_control_chars

if TYPE_CHECKING:  # libtmux costs ~40 ms to import and is needed only by libtmux_server()
    import libtmux

DEFAULT_TIMEOUT_S = 5.0
"""Generous for one tmux round trip (~2 ms when healthy); long enough to survive a loaded host."""


class TmuxError(RuntimeError):
    """tmux answered with a non-zero status (``stderr`` says why, e.g. ``can't find pane``)."""

    def __init__(self, argv: list[str], returncode: int, stderr: str) -> None:
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr.strip()
        super().__init__(f"tmux {' '.join(argv[1:4])}... exited {returncode}: {self.stderr}")


class TmuxTimeout(TmuxError):
    """tmux did not answer within the deadline; the client process was killed (a TmuxError, so
    every caller that handles a failed call also handles a wedged server)."""


@dataclass(frozen=True)
class Tmux:
    """One tmux server, addressed the way tmux itself does: ``-L socket_name`` or ``-S socket_path``.

    With neither, the default server of this user (or ``$TMUX``'s when run inside tmux) is used.
    """

    socket_name: str | None = None
    socket_path: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    tmux_bin: str = field(default_factory=lambda: shutil.which("tmux") or "tmux")

    def __post_init__(self) -> None:
        if self.socket_name is not None and self.socket_path is not None:
            raise PreflightError(
                "socket_name", self.socket_name, "either socket_name (-L) or socket_path (-S), not both"
            )
        if self.socket_name is not None and (not self.socket_name or "/" in self.socket_name
                                             or has_control_chars(self.socket_name)):
            raise PreflightError("socket_name", self.socket_name,
                                 "a non-empty name without '/' or control characters (tmux -L)")
        if self.socket_path is not None and (not self.socket_path or "\x00" in self.socket_path):
            raise PreflightError("socket_path", self.socket_path, "a path to a tmux socket, no NUL (tmux -S)")
        if self.timeout_s <= 0:
            raise PreflightError("timeout_s", self.timeout_s, "a positive number of seconds")

    @property
    def key(self) -> str:
        """A stable name for this server, used for lock files and run records."""
        if self.socket_path:
            return "S:" + os.path.abspath(self.socket_path)
        return "L:" + (self.socket_name or "default")

    def argv(self, *args: str) -> list[str]:
        head = [self.tmux_bin]
        if self.socket_name is not None:
            head += ["-L", self.socket_name]
        elif self.socket_path is not None:
            head += ["-S", self.socket_path]
        return [*head, *args]

    def run(self, *args: str, stdin: bytes | None = None, timeout_s: float | None = None) -> str:
        """Run one tmux command (or a ``;``-chained batch); return stdout, raise on failure."""
        argv = self.argv(*args)
        try:
            done = subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                timeout=timeout_s if timeout_s is not None else self.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise TmuxTimeout(argv, 124, f"no answer within {exc.timeout} s") from exc
        except FileNotFoundError as exc:
            raise TmuxError(argv, 127, f"tmux binary not found: {self.tmux_bin}") from exc
        if done.returncode != 0:
            raise TmuxError(argv, done.returncode, done.stderr.decode("utf-8", "replace"))
        return done.stdout.decode("utf-8", "replace")

    def display(self, pane_id: str, fmt: str) -> str:
        """``display-message -p`` of one format string for one pane (no trailing newline)."""
        return self.run("display-message", "-p", "-t", pane_id, fmt).rstrip("\n")

    def capture(self, pane_id: str, *, start_line: int | None = None, escapes: bool = False) -> list[str]:
        """The pane's visible screen (plus history from ``start_line`` when negative), right-trimmed;
        with ``escapes`` the SGR attributes are kept (``-e``) so dim ghost text can be told apart."""
        args = ["capture-pane", "-p", "-t", pane_id, *(["-e"] if escapes else [])]
        if start_line is not None:
            args += ["-S", str(start_line)]
        text = self.run(*args)
        return [line.rstrip() for line in text.split("\n")[:-1]] if text else []

    def send_literal(self, pane_id: str, text: str) -> None:
        """Type ``text`` verbatim: ``-l`` (no key-name lookup) and ``--`` (no flag parsing).

        Callers must keep ``text`` short and free of a trailing ``;`` (tmux eats it); payloads go
        through :meth:`load_buffer` + :meth:`paste_buffer` instead.
        """
        if text.endswith(";"):
            raise PreflightError("text", text, "no trailing ';' through send-keys (use the paste buffer)")
        self.run("send-keys", "-t", pane_id, "-l", "--", text)

    def send_key(self, pane_id: str, key: str) -> None:
        """Press one named key (``Enter``, ``C-c``...) in its own call: never inferred from text."""
        self.run("send-keys", "-t", pane_id, key)

    def load_buffer(self, name: str, data: bytes) -> None:
        """``load-buffer -b name -`` from stdin: no argv parsing, no 16 KB command limit."""
        self.run("load-buffer", "-b", name, "-", stdin=data)

    def paste_buffer(self, name: str, pane_id: str) -> None:
        """``paste-buffer -p -r -d``: bracketed when the app asked for it, LF kept, buffer deleted."""
        self.run("paste-buffer", "-p", "-r", "-d", "-b", name, "-t", pane_id)

    def wait_for_popen(self, channel: str) -> subprocess.Popen[bytes]:
        """Start ``tmux wait-for channel`` in the background; the caller waits with a deadline and kills.

        A ``wait-for -S`` that happened before the waiter started is latched once, so starting the
        waiter late is safe.
        """
        return subprocess.Popen(
            self.argv("wait-for", channel), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def libtmux_server(self) -> libtmux.Server:
        """The same server as a libtmux object (no timeouts there: keep it off hot paths)."""
        import libtmux

        return libtmux.Server(socket_name=self.socket_name, socket_path=self.socket_path)


def stop_waiter(proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for a ``wait-for`` child; kill it if still blocked. True if it returned 0."""
    try:
        return proc.wait(timeout=max(timeout_s, 0.0)) == 0
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False

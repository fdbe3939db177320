"""Every tmux call the dispatcher makes, each with a timeout.

Why not libtmux's command runner: libtmux calls (``Server.cmd``, ``Server.wait_for``) have no
timeout, and a wedged tmux server (or a ``wait-for`` on a channel nobody signals) would hang the
MCP server forever. So commands go through ``subprocess`` with a deadline and a kill; callers who
want libtmux's object model for the same server get it from :meth:`Tmux.libtmux_server`.

Arguments are passed as argv, never through a shell. tmux still parses argv itself (an argument
ending in ``;`` separates commands, a leading ``-`` reads as a flag), which is why text payloads
travel through :meth:`Tmux.load_buffer` (stdin) and never as arguments.

With a ``host`` (a registered :class:`~gpu_preflight.tools.hosts.registry.Host`), the same calls run on
that box through :func:`gpu_preflight.tools.hosts.ssh.call`: the argv is quoted element by element, a
payload still travels on stdin (``load-buffer -``), the same deadline applies. A fault of the connection
(unreachable, dropped, refused, no tmux on the box) raises :class:`HostUnreachable`, deliberately not a
:class:`TmuxError`: callers read a TmuxError as "the pane or server is gone", which a dead link is not.
A warm ssh round trip costs ~170 ms against ~2 ms for a local tmux call, so remote callers batch one
step's commands into one script (:meth:`Tmux.sh`, :mod:`.remote`).
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

    from gpu_preflight.tools.hosts.registry import Host

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


class HostUnreachable(RuntimeError):
    """The box behind a remote :class:`Tmux` could not be asked: ``status`` is a
    :data:`~gpu_preflight.tools.hosts.faults.HostStatus` (``host_unreachable``, ``connection_dropped``,
    ``auth_refused``, ``tmux_missing``...), ``reason`` ssh's one line. Nothing is known about the pane."""

    def __init__(self, host: str, status: str, reason: str) -> None:
        self.host, self.status, self.reason = host, status, reason
        super().__init__(f"{status}: {reason}")


@dataclass(frozen=True)
class Tmux:
    """One tmux server, addressed the way tmux itself does: ``-L socket_name`` or ``-S socket_path``.

    With neither, the default server of this user (or ``$TMUX``'s when run inside tmux) is used.
    """

    socket_name: str | None = None
    socket_path: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    tmux_bin: str = field(default_factory=lambda: shutil.which("tmux") or "tmux")
    host: Host | None = field(default=None, hash=False)

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
        """A stable name for this server, used for lock files and run records (``H:host/...`` when remote)."""
        if self.host is not None:
            return f"H:{self.host.name}/" + (f"S:{self.socket_path}" if self.socket_path
                                             else "L:" + (self.socket_name or "default"))
        if self.socket_path:
            return "S:" + os.path.abspath(self.socket_path)
        return "L:" + (self.socket_name or "default")

    def argv(self, *args: str) -> list[str]:
        # -u on a box: an ssh session often has no UTF-8 locale, and tmux then prints '_' for \x1f (our
        # field separator) and for every non-ASCII character of a screen.
        head = [self.tmux_bin] if self.host is None else ["tmux", "-u"]
        if self.socket_name is not None:
            head += ["-L", self.socket_name]
        elif self.socket_path is not None:
            head += ["-S", self.socket_path]
        return [*head, *args]

    def run(self, *args: str, stdin: bytes | None = None, timeout_s: float | None = None) -> str:
        """Run one tmux command (or a ``;``-chained batch); return stdout, raise on failure."""
        argv = self.argv(*args)
        if self.host is not None:
            return self._remote(argv, stdin, timeout_s)
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

    def _remote(self, argv: list[str], stdin: bytes | None, timeout_s: float | None) -> str:
        """``argv`` on the host through ssh; its faults raise :class:`HostUnreachable`, tmux's own TmuxError."""
        from gpu_preflight.tools.hosts.faults import classify
        from gpu_preflight.tools.hosts.ssh import call

        assert self.host is not None
        done = call(self.host, argv, timeout_s if timeout_s is not None else self.timeout_s, stdin_text=stdin)
        fault = classify(done, self.host.name)
        if fault is not None:
            raise HostUnreachable(self.host.name, fault.status, fault.reason)
        if done.rc == 127 and "tmux" in done.stderr and "not found" in done.stderr:
            raise HostUnreachable(self.host.name, "tmux_missing", f"tmux is not installed on {self.host.name}")
        if done.rc != 0:
            raise TmuxError(argv, done.rc, done.stderr)
        return done.stdout

    def sh(self, script: str, *args: str, stdin: bytes | None = None, timeout_s: float | None = None) -> str:
        """Run a fixed ``sh`` script with ``args`` as ``$1``... on the host, in ONE ssh round trip.

        The script is ours (a constant); every value reaches it as a quoted argument or on stdin, never
        spliced into its text. Its first two arguments select this server: ``t`` in the script is tmux
        with ``-L``/``-S`` already given (see :data:`SH_PRELUDE`).
        """
        if self.host is None:
            raise PreflightError("host", None, "a remote Tmux (sh scripts batch ssh round trips)")
        mode, sock = ("S", self.socket_path) if self.socket_path else ("L", self.socket_name or "")
        return self._remote(["sh", "-c", SH_PRELUDE + script, "sh", mode, sock, *args], stdin, timeout_s)

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
        waiter late is safe. Not over ssh: killing the client would leave ``wait-for`` blocked on the box.
        """
        if self.host is not None:
            raise TmuxError(self.argv("wait-for", channel), 2, "wait-for is not run over ssh (remote waits poll)")
        return subprocess.Popen(
            self.argv("wait-for", channel), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def libtmux_server(self) -> libtmux.Server:
        """The same server as a libtmux object (no timeouts there: keep it off hot paths)."""
        import libtmux

        if self.host is not None:
            raise PreflightError("host", self.host.name, "a local tmux server (libtmux does not reach over ssh)")

        return libtmux.Server(socket_name=self.socket_name, socket_path=self.socket_path)


SH_PRELUDE = """m=$1 s=$2; shift 2
t() { case $m in S) tmux -u -S "$s" "$@";; *) if [ -n "$s" ]; then tmux -u -L "$s" "$@"; else tmux -u "$@"; fi;; esac; }
command -v tmux >/dev/null 2>&1 || { echo 'sh: tmux: not found' >&2; exit 127; }
"""
"""Starts every :meth:`Tmux.sh` script: ``t`` is this server's tmux (``-u``: see :meth:`Tmux.argv`); no tmux
on the box exits 127."""


def stop_waiter(proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for a ``wait-for`` child; kill it if still blocked. True if it returned 0."""
    try:
        return proc.wait(timeout=max(timeout_s, 0.0)) == 0
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False

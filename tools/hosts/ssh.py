"""The one way gpu-preflight runs a command on a remote host: the system OpenSSH client, with a deadline.

Why the system ``ssh`` and not a library: the user's ``~/.ssh/config``, keys, agent and ``ProxyJump``
then work exactly as in their terminal, and Vast's proxy hosts need nothing special.

Every call gets the same options:

* ``BatchMode=yes``: never a password or host-key prompt hanging a tool call; ssh fails and says why.
* ``ConnectTimeout`` (at most the call's timeout) and ``ServerAliveInterval``/``CountMax``: an unreachable
  or silent box is reported by ssh itself within the timeout; the local deadline kills ssh as a last resort.
* One multiplexed master per host (``ControlMaster=auto``, ``ControlPersist=60``, socket
  ``<state dir>/ssh/%C``): the first call pays the connection set-up (key exchange and authentication),
  later calls within a minute ride the open connection. Measured against the local test sshd on a loaded
  2-core box: ``true`` cold 467 ms, warm median 176 ms (a new session channel and login shell each time;
  a local ``tmux -V`` is 1.7 ms), so callers batch remote work into few round trips.
* One persistent remote shell per host on top of the master (:mod:`.session`): commands are written into an
  open ``sh`` instead of opening a channel and a login shell each; a warm ``true`` then costs 0.5-2 ms here.
  ``PREFLIGHT_SSH_SESSION=0`` goes back to one ssh per command.
* The user's ``-o KEY=VALUE`` come first: for each keyword ssh keeps the first value it sees, so a
  registered ``ConnectTimeout`` or ``StrictHostKeyChecking=accept-new`` wins over ours; the keywords we must
  own (BatchMode, Control*) cannot be registered (:mod:`.registry`).

The remote command is an argv, each element quoted with :func:`shlex.quote` and joined into the one line
ssh hands to the remote login shell: nothing is interpolated into that line unquoted, so ``$(...)``, ``;``
or ``|`` in an argument arrive as text.

A unix socket path has a 108-byte limit (and ssh adds a 17-character suffix while it creates one); when
the state directory is too deep for ``%C`` (40 characters) to fit, the sockets go to a private
``/tmp/pf-ssh-<uid>-<hash of the state dir>`` (mode 0700, refused if another user owns it).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.common.state import state_dir

from .registry import Host

DEFAULT_TIMEOUT_S = 10.0
"""The issue's default: every fault must be reported within it."""
CONTROL_PERSIST_S = 60
SERVER_ALIVE_INTERVAL_S = 5
SERVER_ALIVE_COUNT_MAX = 2
SOCKET_PATH_MAX = 104  # sun_path is 108 bytes on Linux, 104 on macOS; keep to the smaller
_SOCKET_NAME_LEN = 40 + 17  # %C (a SHA1 in hex) + ssh's ".XXXXXXXXXXXXXXXX" while it binds


@dataclass(frozen=True)
class RemoteCall:
    """What one ssh call gave: ssh's (or the remote command's) exit status and output, and how long it took."""

    rc: int
    stdout: str
    stderr: str
    elapsed_ms: float
    timed_out: bool = False


def control_dir() -> Path:
    """Where the master sockets live: ``<state dir>/ssh``, or a private short one when that is too long."""
    preferred = state_dir() / "ssh"
    if len(str(preferred)) + 1 + _SOCKET_NAME_LEN <= SOCKET_PATH_MAX:
        preferred.mkdir(mode=0o700, exist_ok=True)
        return preferred
    digest = hashlib.sha1(str(preferred).encode()).hexdigest()[:12]
    short = Path(tempfile.gettempdir()) / f"pf-ssh-{os.getuid()}-{digest}"
    short.mkdir(mode=0o700, exist_ok=True)
    info = short.lstat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077 or not short.is_dir() or short.is_symlink():
        raise PreflightError("state", str(short), "a private directory of this user for ssh sockets",
                             "remove it or set PREFLIGHT_STATE_DIR to a shorter path")
    return short


def ssh_options(host: Host, timeout_s: float) -> list[str]:
    """The ssh options of every call to ``host`` (the destination and command not included)."""
    opts: list[str] = []
    for key, value in host.options.items():
        opts += ["-o", f"{key}={value}"]
    if host.port is not None:
        opts += ["-p", str(host.port)]
    if host.identity is not None:
        opts += ["-i", host.identity]
    connect_s = max(1, min(int(DEFAULT_TIMEOUT_S), int(timeout_s)))
    opts += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect_s}",
             "-o", f"ServerAliveInterval={SERVER_ALIVE_INTERVAL_S}",
             "-o", f"ServerAliveCountMax={SERVER_ALIVE_COUNT_MAX}",
             "-o", "ControlMaster=auto", "-o", f"ControlPath={control_dir()}/%C",
             "-o", f"ControlPersist={CONTROL_PERSIST_S}"]
    return opts


def ssh_argv(host: Host, argv: list[str], timeout_s: float = DEFAULT_TIMEOUT_S) -> list[str]:
    """The full ``ssh`` command line: options, ``--``, destination, then the one quoted remote line.

    >>> h = Host(name="box", destination="root@example.org", port=2222)
    >>> ssh_argv(h, ["echo", "$(id)", "a b"])[-3:]
    ['--', 'root@example.org', "echo '$(id)' 'a b'"]
    """
    if not argv:
        raise PreflightError("argv", argv, "a non-empty command")
    ssh = shutil.which("ssh") or "ssh"
    return [ssh, *ssh_options(host, timeout_s), "--", host.destination, shlex.join(argv)]


def call(host: Host, argv: list[str], timeout_s: float = DEFAULT_TIMEOUT_S, *,
         stdin_text: str | bytes | None = None) -> RemoteCall:
    """Run ``argv`` on ``host``; the deadline is enforced here (ssh and what it started are killed).

    ``stdin_text`` feeds the remote command's stdin (e.g. a payload for ``tmux load-buffer -``); without
    it stdin is empty, so nothing remote can wait on our terminal. Bytes go as they are (a payload is
    never re-encoded on the way).

    The command is written into this process's open shell on ``host`` (:mod:`.session`: ~170 ms -> a few
    ms warm), with the same result and faults as one ``ssh`` per command (``PREFLIGHT_SSH_SESSION=0``).
    """
    if not timeout_s > 0:
        raise PreflightError("timeout_s", timeout_s, "a number of seconds > 0")
    full = ssh_argv(host, argv, timeout_s)
    data = stdin_text.encode() if isinstance(stdin_text, str) else stdin_text
    from . import session  # imports this module: loaded on first use

    if session.enabled():
        done = session.call(host, argv, timeout_s, data)
        if done is not None:
            return done
    return _one_shot(host, full, timeout_s, data)


def _one_shot(host: Host, full: list[str], timeout_s: float, data: bytes | None) -> RemoteCall:
    """One ``ssh`` process for one command (the fallback, and ``PREFLIGHT_SSH_SESSION=0``)."""
    started = time.monotonic()
    proc = subprocess.Popen(full, stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(data, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        out, err = _leftovers(proc)
        elapsed_ms = (time.monotonic() - started) * 1000
        note = f"preflight: no answer from {host.name} within {timeout_s:g} s (ssh killed)"
        return RemoteCall(rc=proc.returncode, stdout=out.decode(errors="replace"),
                          stderr=(err.decode(errors="replace") + note).strip(), elapsed_ms=elapsed_ms,
                          timed_out=True)
    elapsed_ms = (time.monotonic() - started) * 1000
    return RemoteCall(rc=proc.returncode, stdout=out.decode(errors="replace"), stderr=err.decode(errors="replace"),
                      elapsed_ms=elapsed_ms)


def run_remote(host: Host, argv: list[str], timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[int, str, str]:
    """``(rc, stdout, stderr)`` of ``argv`` run on ``host`` (rc 255: ssh itself failed; see :mod:`.faults`)."""
    done = call(host, argv, timeout_s)
    return done.rc, done.stdout, done.stderr


def close_master(host: Host) -> bool:
    """Ask ``host``'s master connection, if one is open, to exit (``ssh -O exit``); True when one did.

    This process's open sessions to ``host`` (:mod:`.session`) are closed first.
    """
    from .session import close_host

    close_host(host)
    ssh = shutil.which("ssh") or "ssh"
    try:
        done = subprocess.run([ssh, *ssh_options(host, DEFAULT_TIMEOUT_S), "-O", "exit", "--", host.destination],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=DEFAULT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def _leftovers(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """What a killed ssh had written, without waiting for the pipes to close.

    Why not ``communicate()``: a mux client hands its stdout/stderr to the master connection, which keeps
    them open until the remote command ends (measured: a killed ``sleep 30`` held them the full 30 s).
    """
    try:
        return proc.communicate(timeout=0.5)
    except subprocess.TimeoutExpired:
        for pipe in (proc.stdout, proc.stderr, proc.stdin):
            if pipe is not None:
                pipe.close()
        proc.wait(timeout=5)
        return b"", b""


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)

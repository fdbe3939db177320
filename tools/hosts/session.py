"""A persistent remote shell per host: :func:`.ssh.call` writes each command into an open ``sh`` on the box.

Why: every ``ssh`` call, even through a warm ControlMaster, opens a new session channel and starts the
user's login shell, which reads its rc files and then runs the command (here root's ``~/.bashrc`` runs
``pyenv init``, most of the cost; a rented box's rc files vary as much). Keeping one ``ssh ... sh`` open per
host (same options and master as a one-off call, so opening it is one mux call and one login) and writing
framed commands into it leaves only the box's own work and the link. Measured against the test sshd on this
loaded 2-core box (tests/test_hosts_session.py, bench/remote.py): a warm ``true`` round trip 0.5-2 ms vs
156-431 ms with one ssh per command (median of 5); a confirmed shell dispatch 64.5 ms remote vs 49.8 ms
local (1.30x; the goal is <= 3x) vs 401 ms (8.05x) with one ssh per command; the first dispatch to a host
costs warm + 327 ms, one cold ``ssh true`` being 356 ms.

A call is written as one frame (argv quoted with :func:`shlex.join`, nothing spliced unquoted)::

    printf '%s\\n' <tag>s; printf '%s\\n' <tag>s >&2; ( ARGV ) </dev/null
    printf '\\n%s %d\\n' <tag>e "$?"; printf '\\n%s\\n' <tag>e >&2     (on the same line)

* the command runs in a subshell, so ``exit``, ``cd`` or ``exec`` in it cannot end or change the session;
* its stdin is never the session's: ``/dev/null``, or the payload as a here-document with a random quoted
  delimiter checked not to occur in it (a payload not ending in a newline goes through ``head -c N``, so it
  arrives byte for byte); a payload holding a NUL byte, which a shell cannot carry, takes a one-off ssh call;
* stdout and stderr are each read up to a per-call random marker (``<tag>e``), the exit status rides on the
  stdout marker; a command's output cannot forge a marker it never saw.

Faults give what a one-off ssh call gives, so :func:`.faults.classify` says the same: a session that ends
during a command (sshd stopped, link dropped) yields ``rc 255`` and a ``closed by remote host`` line
(``connection_dropped``), also when the command was killed a moment before the session's shell (a box going
down: checked with one ``true`` frame after any command killed by a signal); one found dead before anything
was written is replaced by a fresh one, whose failure to connect is ssh's (``host_unreachable``,
``auth_refused``, ...); one that ended before the frame started asks a fresh ``ssh ... true`` for the fault.
A call past its deadline kills its session (never left half-way through a frame) and returns ``timed_out``
as before. Why no retry once a frame went out: the command may have run (a ``send-keys`` typed twice is
worse than an honest fault).

Sessions are per process (a forked child opens its own) and pooled per host: a call takes an idle one or
opens another, so threads on one host never share a pipe; at most :data:`MAX_IDLE_PER_HOST` stay open, and
one idle for :data:`IDLE_CLOSE_S` is closed (as the master itself would after ``ControlPersist``).
``PREFLIGHT_SSH_SESSION=0`` turns all this off (one ssh call per command, for comparison).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import selectors
import shlex
import shutil
import subprocess
import threading
import time

from .registry import Host
from .ssh import RemoteCall, _kill_group, _one_shot, control_dir, ssh_argv, ssh_options

SESSION_ENV = "PREFLIGHT_SSH_SESSION"
MAX_IDLE_PER_HOST = 2
IDLE_CLOSE_S = 60.0
"""Same as the master's ``ControlPersist``: an idle session would otherwise keep the connection open."""
EOF_GRACE_S = 0.5
_CHUNK = 65536


def enabled() -> bool:
    """Whether :func:`.ssh.call` goes through a session (``PREFLIGHT_SSH_SESSION=0``/``off``/``no``: not)."""
    return os.environ.get(SESSION_ENV, "1").strip().lower() not in {"0", "off", "no", "false"}


def frame(argv: list[str], data: bytes | None, tag: str) -> bytes:
    """The bytes written into the session's ``sh`` for one call (see the module docstring).

    >>> for part in frame(["echo", "$HOME", "a b"], None, "T").decode().strip().split("; "): print(part)
    printf '%s\\n' Ts
    printf '%s\\n' Ts >&2
    ( echo '$HOME' 'a b' ) </dev/null
    printf '\\n%s %d\\n' Te "$?"
    printf '\\n%s\\n' Te >&2
    >>> frame(["cat"], b"no newline", "T").split(b"\\n")[-3]
    b'no newline'
    """
    head = f"printf '%s\\n' {tag}s; printf '%s\\n' {tag}s >&2; "
    tail = f"; printf '\\n%s %d\\n' {tag}e \"$?\"; printf '\\n%s\\n' {tag}e >&2\n"
    cmd = f"( {shlex.join(argv)} )"  # the here-document operator comes after it: its body starts on the next line
    if not data:
        return (head + cmd + " </dev/null" + tail).encode()
    delim = "PFIN" + secrets.token_hex(8)
    while delim.encode() in data:
        delim = "PFIN" + secrets.token_hex(8)
    if data.endswith(b"\n"):
        return (head + cmd + f" <<'{delim}'" + tail).encode() + data + f"{delim}\n".encode()
    return (head + f"{{ head -c {len(data)} | {cmd}; }} <<'{delim}'" + tail).encode() + data + f"\n{delim}\n".encode()


class Session:
    """One ``ssh ... sh`` kept open; :meth:`run` is one framed call. Not thread-safe: the pool hands it out."""

    def __init__(self, host: Host, timeout_s: float) -> None:
        ssh = shutil.which("ssh") or "ssh"
        self.host = host
        self.owner_pid = os.getpid()
        self.proc = subprocess.Popen([ssh, *ssh_options(host, timeout_s), "--", host.destination, "sh"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None and self.proc.stderr is not None
        self.fd_in, self.fd_out, self.fd_err = (self.proc.stdin.fileno(), self.proc.stdout.fileno(),
                                                self.proc.stderr.fileno())
        os.set_blocking(self.fd_in, False)
        self.last_used = time.monotonic()
        self.generation = 0
        self.calls = 0
        self.lost_unstarted = False
        """The session ended before this call's frame started on the box (no start marker came back)."""

    def usable(self) -> bool:
        """Still open, as far as can be told without a round trip (stray bytes left by a past call are dropped)."""
        if self.proc.poll() is not None:
            return False
        with selectors.DefaultSelector() as sel:
            sel.register(self.fd_out, selectors.EVENT_READ)
            sel.register(self.fd_err, selectors.EVENT_READ)
            for key, _ in sel.select(0):
                if not os.read(key.fd, _CHUNK):
                    return False
        return True

    def kill(self) -> None:
        if self.proc.poll() is None:
            _kill_group(self.proc.pid)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=2)

    def run(self, argv: list[str], data: bytes | None, timeout_s: float, started: float) -> RemoteCall | None:
        """One call; None when the session was found closed before a byte of it went out (safe to retry)."""
        tag = "pf" + secrets.token_hex(8)
        self.calls += 1
        out, err, state = self._exchange(frame(argv, data, tag), tag, started + timeout_s)
        elapsed_ms = (time.monotonic() - started) * 1000
        self.last_used = time.monotonic()
        if state == "unsent":
            return None
        start_out, start_err = f"{tag}s\n".encode(), f"{tag}s\n".encode()
        body = out.split(start_out, 1)[1] if start_out in out else b""
        pre, _, errs = err.partition(start_err) if start_err in err else (err, b"", b"")
        if state == "done":
            text, _, rest = body.partition(f"\n{tag}e ".encode())
            stderr = (pre + errs.partition(f"\n{tag}e\n".encode())[0]).decode(errors="replace")
            rc = int(rest.split(b"\n", 1)[0])
            if rc > 128 and not self._survives(min(started + timeout_s, time.monotonic() + 1.0)):
                return RemoteCall(rc=255, stdout=text.decode(errors="replace"), stderr=stderr + self._dropped(),
                                  elapsed_ms=(time.monotonic() - started) * 1000)
            return RemoteCall(rc=rc, stdout=text.decode(errors="replace"), stderr=stderr, elapsed_ms=elapsed_ms)
        if state == "timeout":
            self.kill()
            note = f"preflight: no answer from {self.host.name} within {timeout_s:g} s (ssh killed)"
            return RemoteCall(rc=self.proc.returncode if self.proc.returncode is not None else -9,
                              stdout=body.decode(errors="replace"),
                              stderr=((pre + errs).decode(errors="replace") + note).strip(), elapsed_ms=elapsed_ms,
                              timed_out=True)
        self.lost_unstarted = start_out not in out and start_err not in err
        try:  # "eof": the session ended before the marker, as a one-off ssh dropped mid-command does
            self.proc.wait(timeout=EOF_GRACE_S)
        except subprocess.TimeoutExpired:
            self.kill()
        note = "" if self.lost_unstarted else self._dropped()  # unstarted: ssh's own words (refused, ...)
        return RemoteCall(rc=255, stdout=body.decode(errors="replace"),
                          stderr=(pre + errs).decode(errors="replace") + note, elapsed_ms=elapsed_ms)

    def _dropped(self) -> str:
        """The line a call cut off by the end of its session ends its stderr with (``connection_dropped``):
        what a command printed, or the session's shell said of it (``Killed``), must not read as ssh's fault."""
        return f"\npreflight: the ssh session to {self.host.name} ended during the command (closed by remote host)"

    def _survives(self, deadline: float) -> bool:
        """After a command killed by a signal: is the session itself still there (one ``true`` frame)?

        Why: when a box goes down its processes die in some order; a command killed a moment before the
        session's own shell would otherwise read as the command's exit status (137), not a dropped link.
        """
        tag = "pf" + secrets.token_hex(8)
        state = self._exchange(frame(["true"], None, tag), tag, deadline)[2]
        if state != "done":
            self.kill()
        return state in {"done", "timeout"}  # a hung shell is killed; only an ended one says the link went

    def _exchange(self, payload: bytes, tag: str, deadline: float) -> tuple[bytes, bytes, str]:
        """Write ``payload`` while reading stdout/stderr until both end markers: ``done``, ``eof``, ``timeout``
        or ``unsent`` (the pipe was closed before any byte was written)."""
        out, err = bytearray(), bytearray()
        end_out, end_err = f"\n{tag}e ".encode(), f"\n{tag}e\n".encode()
        sent, open_fds, exited_at = 0, {self.fd_out, self.fd_err}, None
        with selectors.DefaultSelector() as sel:
            sel.register(self.fd_in, selectors.EVENT_WRITE)
            for fd in open_fds:
                sel.register(fd, selectors.EVENT_READ)
            while True:
                marker_at = out.find(end_out)
                if marker_at >= 0 and out.find(b"\n", marker_at + len(end_out)) >= 0 and end_err in err:
                    return bytes(out), bytes(err), "done"
                left = deadline - time.monotonic()
                if left <= 0:
                    return bytes(out), bytes(err), "timeout"
                if not open_fds or (exited_at is not None and time.monotonic() - exited_at > EOF_GRACE_S):
                    return bytes(out), bytes(err), "eof"
                for key, _ in sel.select(min(left, 0.2)):
                    if key.fd == self.fd_in:
                        try:
                            sent += os.write(self.fd_in, payload[sent:sent + _CHUNK])
                        except BlockingIOError:
                            continue
                        except (BrokenPipeError, ConnectionResetError):
                            if sent == 0:
                                return bytes(out), bytes(err), "unsent"
                            sel.unregister(self.fd_in)
                            continue
                        if sent >= len(payload):
                            sel.unregister(self.fd_in)
                        continue
                    chunk = os.read(key.fd, _CHUNK)
                    if not chunk:
                        sel.unregister(key.fd)
                        open_fds.discard(key.fd)
                    (out if key.fd == self.fd_out else err).extend(chunk)
                if exited_at is None and self.proc.poll() is not None:
                    exited_at = time.monotonic()


_LOCK = threading.Lock()
_IDLE: dict[str, list[Session]] = {}
_GENERATION: dict[str, int] = {}
_REAPER: list[threading.Thread] = []


def _key(host: Host) -> str:
    return f"{control_dir()}|{host.model_dump_json()}"


def _take(key: str) -> Session | None:
    """An idle, live session of this process for ``key`` (dead and stale ones are closed on the way)."""
    with _LOCK:
        pool = _IDLE.get(key, [])
        while pool:
            found = pool.pop()
            if found.owner_pid == os.getpid() and found.usable():
                return found
            if found.owner_pid == os.getpid():
                found.kill()
    return None


def _give(key: str, session: Session) -> None:
    with _LOCK:
        pool = _IDLE.setdefault(key, [])
        if session.generation != _GENERATION.get(key, 0) or len(pool) >= MAX_IDLE_PER_HOST:
            session.kill()
            return
        pool.append(session)
        if not _REAPER or not _REAPER[0].is_alive():
            _REAPER[:] = [threading.Thread(target=_reap_loop, name="pf-ssh-reaper", daemon=True)]
            _REAPER[0].start()


def _reap_loop() -> None:
    """Close sessions idle past :data:`IDLE_CLOSE_S`; ends once none is left."""
    while True:
        time.sleep(min(5.0, IDLE_CLOSE_S))
        with _LOCK:
            now = time.monotonic()
            for key, pool in list(_IDLE.items()):
                for old in [s for s in pool if now - s.last_used > IDLE_CLOSE_S or s.owner_pid != os.getpid()]:
                    pool.remove(old)
                    if old.owner_pid == os.getpid():
                        old.kill()
                if not pool:
                    del _IDLE[key]
            if not _IDLE:
                return


def call(host: Host, argv: list[str], timeout_s: float, data: bytes | None) -> RemoteCall | None:
    """:func:`.ssh.call` through a session; None when it cannot carry this call (a NUL byte in the payload)."""
    if data is not None and b"\0" in data:
        return None
    key = _key(host)
    started = time.monotonic()
    for _ in range(2):  # a pooled session found closed before anything was sent: once more on a fresh one
        session = _take(key)
        if session is None:
            session = Session(host, timeout_s)
            with _LOCK:
                session.generation = _GENERATION.get(key, 0)
        done = session.run(argv, data, timeout_s, started)  # one deadline from the call's start
        if done is not None and not done.timed_out and session.usable():
            _give(key, session)
        else:
            session.kill()
        if done is not None and done.rc == 255 and session.calls > 1 and session.lost_unstarted:
            return _why_lost(host, done, timeout_s, started)
        if done is not None:
            return done
    return None


def _why_lost(host: Host, lost: RemoteCall, timeout_s: float, started: float) -> RemoteCall:
    """A reused session that ended before the call's frame started: ask ssh what a fresh connection says now.

    Why: a session found dead only once the frame is written (sshd stopped a moment ago) would otherwise read
    as ``connection_dropped`` where one ssh per command says ``host_unreachable``. The command is never re-run
    (it may have started unseen); only the fault is taken from a fresh ``ssh ... true`` when that fails too.
    """
    left_s = max(1.0, timeout_s - (time.monotonic() - started))
    probe = _one_shot(host, ssh_argv(host, ["true"], left_s), left_s, None)
    if probe.rc != 255 and not probe.timed_out:
        return lost
    return RemoteCall(rc=255, stdout=lost.stdout, stderr=probe.stderr, timed_out=probe.timed_out,
                      elapsed_ms=(time.monotonic() - started) * 1000)


def close_host(host: Host) -> int:
    """Close this process's sessions to ``host`` (busy ones as they finish); how many idle ones were closed."""
    key = _key(host)
    with _LOCK:
        _GENERATION[key] = _GENERATION.get(key, 0) + 1
        pool = _IDLE.pop(key, [])
    mine = [s for s in pool if s.owner_pid == os.getpid()]
    for session in mine:
        session.kill()
    return len(mine)


@atexit.register
def close_all() -> None:
    """Close every session of this process (at exit; the remote shells end with their channels)."""
    with _LOCK:
        pools = list(_IDLE.values())
        _IDLE.clear()
    for pool in pools:
        for session in pool:
            if session.owner_pid == os.getpid():
                session.kill()

"""Read a file on a remote host: its size, last write time, identity and a slice of its bytes, in ONE ssh call.

Why one call: a warm ssh call costs ~176 ms on the loaded test machine (:mod:`.ssh`), so a ``stat`` and a
``tail`` as two calls would double the price of every remote ``check`` and heartbeat. One ``sh -c`` script
does both and frames the answer: a header line, then the bytes.

Why the size comes first and bounds the read: a log grows while it is read. The script takes ``stat`` once,
then reads at most up to that size (``tail -c +START | head -c COUNT``), so the bytes, the size and the
write time belong together: a reader that got every byte up to ``size_bytes`` ending on a line end knows
its last line was written at ``mtime_epoch_s`` (the write-time clock of the telemetry ``writetimes``).

The path travels as its own argv element of the remote command (``sh -c SCRIPT pf-read PATH START COUNT``,
each quoted by :func:`.ssh.ssh_argv`), never pasted into the script: ``$(...)`` or ``;`` in a path are text.
Only a regular file is read (a FIFO would block the call until its deadline). GNU ``stat``'s ``%.9Y`` gives
the write time to the nanosecond; a ``stat`` without it (busybox) falls back to whole seconds.

The runner hands back text (invalid UTF-8 already replaced by U+FFFD, as every log reader here decodes
anyway), so ``read_bytes`` (the box's count), not ``len(data)``, is where the next read starts.

Errors: ssh's own failure is a :class:`RemoteFileUnreachable` (a :class:`PreflightError` on ``host`` that
carries the fault ``status``: ``host_unreachable``, ``auth_refused``, ...); a missing or unreadable file is a
:class:`PreflightError` naming the caller's field and the path on the host. No error quotes the file.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpu_preflight.tools.common.errors import PreflightError

from .faults import classify, last_line
from .registry import Host
from .ssh import DEFAULT_TIMEOUT_S, call

MAX_READ_BYTES = 32 * 1024 * 1024
"""One call's most: a day-long log's last 32 MiB hold its recent windows; more is not worth the transfer."""
_MARK = "PF-RFILE"
_SCRIPT = (
    'f=$1; start=$2; n=$3; '
    f'if [ ! -e "$f" ]; then echo "{_MARK} missing"; exit 0; fi; '
    f'if [ ! -f "$f" ]; then echo "{_MARK} notregular"; exit 0; fi; '
    f'if [ ! -r "$f" ]; then echo "{_MARK} unreadable"; exit 0; fi; '
    "s=$(stat -L -c '%s %.9Y %d %i' -- \"$f\" 2>/dev/null || stat -L -c '%s %Y %d %i' -- \"$f\") || exit 3; "
    'set -- $s; size=$1; '
    'if [ "$start" -lt 0 ]; then start=$((size + start)); [ "$start" -lt 0 ] && start=0; fi; '
    '[ "$start" -gt "$size" ] && start=$size; '
    'count=$((size - start)); [ "$count" -gt "$n" ] && count=$n; '
    f'echo "{_MARK} ok $s $start $count"; '
    '[ "$count" -gt 0 ] && tail -c +$((start + 1)) -- "$f" | head -c "$count"; exit 0'
)


class RemoteFileUnreachable(PreflightError):
    """ssh could not ask the host; ``status`` is the :data:`.faults.HostStatus`, ``reason`` ssh's one line."""

    def __init__(self, host: str, status: str, reason: str) -> None:
        super().__init__("host", host, "a host that answers over ssh", f"{status}: {reason}")
        self.host, self.status, self.reason = host, status, reason


@dataclass(frozen=True)
class RemoteFile:
    """A slice of a file on ``host``: ``data`` holds bytes ``start_bytes`` .. ``start_bytes + read_bytes``."""

    host: str
    path: str
    size_bytes: int
    mtime_epoch_s: float
    dev: int
    ino: int
    start_bytes: int
    read_bytes: int
    data: bytes

    @property
    def to_end(self) -> bool:
        """Every byte up to the size taken with the stat was read."""
        return self.start_bytes + self.read_bytes >= self.size_bytes


def parse_answer(stdout: bytes, host: str, path: str, field: str) -> RemoteFile | None:
    """The framed answer of the script (see the module doc); None for a missing file.

    >>> parse_answer(b"PF-RFILE ok 12 1796651927.465927265 65024 612 6 6\\nstep 2\\n", "box", "/l", "path").data
    b'step 2\\n'
    >>> parse_answer(b"PF-RFILE missing\\n", "box", "/l", "path") is None
    True
    """
    head, _, data = stdout.partition(b"\n")
    words = head.decode(errors="replace").split()
    if words[:2] == [_MARK, "missing"]:
        return None
    where = f"{path} on {host}"
    if words[:2] == [_MARK, "notregular"]:
        raise PreflightError(field, where, "a regular file holding a text log", "it is not a regular file")
    if words[:2] == [_MARK, "unreadable"]:
        raise PreflightError(field, where, "a regular file holding a text log", "permission denied")
    try:
        size, mtime, dev, ino, start, count = (float(w) if i == 1 else int(w) for i, w in enumerate(words[2:8]))
    except ValueError:
        size = -1
    if words[:2] != [_MARK, "ok"] or len(words) != 8 or size < 0:
        raise PreflightError("host", host, "a POSIX sh with stat, tail and head on the box",
                             f"reading {path} gave no answer we understand")
    return RemoteFile(host=host, path=path, size_bytes=int(size), mtime_epoch_s=float(mtime), dev=int(dev),
                      ino=int(ino), start_bytes=int(start), read_bytes=int(count), data=data)


def read_remote(host: Host, path: str, *, offset_bytes: int | None = None, last_bytes: int | None = None,
                max_bytes: int = MAX_READ_BYTES, field: str = "path", must_exist: bool = True,
                timeout_s: float = DEFAULT_TIMEOUT_S) -> RemoteFile | None:
    """Stat ``path`` on ``host`` and read from ``offset_bytes`` (default 0) or its last ``last_bytes``.

    At most ``max_bytes`` come back. A file that does not exist is None when ``must_exist`` is False (a run
    that has not started logging), else refused naming ``field`` and the path on the host.
    """
    if not path or "\x00" in path or "\n" in path:
        raise PreflightError(field, path, "a file path on the host, without NUL or newline")
    if offset_bytes is not None and last_bytes is not None:
        raise PreflightError("offset_bytes", offset_bytes, "an offset or last_bytes, not both")
    if (offset_bytes is not None and offset_bytes < 0) or (last_bytes is not None and last_bytes <= 0) \
            or max_bytes <= 0:
        raise PreflightError("offset_bytes", offset_bytes if last_bytes is None else last_bytes,
                             "offset_bytes >= 0, last_bytes > 0, max_bytes > 0")
    start = -last_bytes if last_bytes is not None else (offset_bytes or 0)
    count = min(max_bytes, last_bytes) if last_bytes is not None else max_bytes
    done = call(host, ["sh", "-c", _SCRIPT, "pf-read", path, str(start), str(count)], timeout_s=timeout_s)
    fault = classify(done, host.name)
    if fault is not None:
        raise RemoteFileUnreachable(host.name, fault.status, fault.reason)
    if done.rc != 0:
        raise PreflightError("host", host.name, "a POSIX sh with stat, tail and head on the box",
                             f"reading {path} failed (status {done.rc}): {last_line(done.stderr)}")
    found = parse_answer(done.stdout.encode(), host.name, path, field)
    if found is None and must_exist:
        raise PreflightError(field, f"{path} on {host.name}", f"a file that exists on {host.name}",
                             "it does not exist there")
    return found

"""Read a file a caller named, safely: regular files only, a size cap per kind, never blocking.

Why: a path argument used to be opened with ``read_text()``. ``/dev/zero`` as ``hf_config`` grew the
server to 2.6 GB; a FIFO blocked a worker thread forever (about 40 such calls wedged the server); a
directory or a bad path came back as a traceback or an OS message; and errors quoted the first 40
characters of whatever was read (``got 'root:$6$...'``). Here:

* the file is opened with ``O_NONBLOCK | O_NOCTTY`` (a FIFO without a writer opens at once instead
  of waiting) and checked with ``fstat`` on the open descriptor (no race with a swapped path), so
  devices, FIFOs, sockets and directories are refused before a byte is read;
* at most ``cap + 1`` bytes are read, so an oversized or growing file costs the cap, not its size;
* bad UTF-8 is an error naming the byte offset, never the bytes;
* every error names the argument, the path as given and what was expected, never the content.

Telemetry logs (``ingest``, ``--log``, ``--nvsmi``, ``--probe``) should read through
:func:`read_text_file` too, with ``kind="log"``.

Folder allow-list (``preflight serve --allow-path DIR``): when ``$PREFLIGHT_ALLOW_PATHS`` holds folders
(``os.pathsep``-separated; serve sets it), a file outside all of them and outside the state directory
is refused naming the argument, before it is opened (a device is never touched) and again on the
opened descriptor's real path (``/proc/self/fd``), so a symlink or ``..`` cannot lead out and a path
swapped between the two checks is caught. Why here: every caller-named file goes through this one
reader, so one check covers the spec, ``hf_config``, offers and evidence files; a reader elsewhere
calls :func:`check_allowed`.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Literal

from gpu_preflight.tools.common.errors import PreflightError

FileKind = Literal["config", "spec", "evidence", "offers", "log"]

MAX_BYTES: dict[FileKind, int] = {
    "config": 1_000_000,   # a Hugging Face config.json is a few KB
    "spec": 1_000_000,
    "evidence": 1_000_000,
    "offers": 64_000_000,  # a `vastai search offers --raw` dump of every offer is ~10-20 MB
    "log": 512_000_000,    # nvidia-smi / training logs of a long run
}
_WHAT: dict[FileKind, str] = {
    "config": "a Hugging Face config.json", "spec": "a JSON or TOML run spec",
    "evidence": "a JSON object", "offers": "a JSON offers file", "log": "a text log",
}
_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket"}
_CHUNK = 1 << 20
ALLOW_PATHS_ENV = "PREFLIGHT_ALLOW_PATHS"


def allowed_roots() -> list[str] | None:
    """The folders files may be read from (real paths, the state directory included), or ``None``: any.

    Read from the environment on every call, so ``serve`` sets it once and worker threads, and the
    tests, see the same value without a module global to reset.
    """
    raw = os.environ.get(ALLOW_PATHS_ENV, "")
    roots = [os.path.realpath(p) for p in raw.split(os.pathsep) if p.strip()]
    if not roots:
        return None
    from gpu_preflight.tools.common.state import state_dir

    roots.append(os.path.realpath(state_dir(create=False)))
    return roots


def _inside(real: str, roots: list[str]) -> bool:
    return any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def check_allowed(path: str | os.PathLike[str], *, field: str) -> None:
    """Refuse ``path`` (naming ``field``) when an allow-list is set and its real path is outside it."""
    roots = allowed_roots()
    name = os.fspath(path)
    if roots is not None and not _inside(os.path.realpath(name), roots):
        raise PreflightError(field, name, f"a file under an allowed folder: {', '.join(roots)}",
                             "the server was started with --allow-path; other folders are refused")


def _check_fd_allowed(fd: int, name: str, field: str) -> None:
    roots = allowed_roots()
    if roots is None:
        return
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # no procfs: the check before opening stands
        return
    if not _inside(real, roots):
        raise PreflightError(field, name, f"a file under an allowed folder: {', '.join(roots)}",
                             "the path changed while it was opened; other folders are refused")


def _refuse(field: str, path: str, kind: FileKind, why: str) -> PreflightError:
    return PreflightError(field, path, f"a regular file holding {_WHAT[kind]}", why)


def read_bytes_file(path: str | os.PathLike[str], *, field: str, kind: FileKind,
                    max_bytes: int | None = None) -> bytes:
    """The bytes of the regular file ``path`` (at most the kind's cap), or a PreflightError naming ``field``."""
    name = os.fspath(path)
    cap = MAX_BYTES[kind] if max_bytes is None else max_bytes
    if not isinstance(name, str) or not name.strip():
        raise PreflightError(field, name, f"a path to a regular file holding {_WHAT[kind]}")
    if "\x00" in name:
        raise _refuse(field, name, kind, "the path holds a NUL byte")
    check_allowed(name, field=field)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        why = {errno.ENOENT: "it does not exist", errno.ENOTDIR: "a part of the path is not a directory",
               errno.EACCES: "permission denied", errno.ELOOP: "too many levels of symbolic links",
               errno.ENAMETOOLONG: "the path is too long", errno.EISDIR: "it is a directory"}
        raise _refuse(field, name, kind, why.get(exc.errno or 0, exc.strerror or "cannot open it")) from None
    try:
        _check_fd_allowed(fd, name, field)
        info = os.fstat(fd)
        fmt = stat.S_IFMT(info.st_mode)
        if fmt != stat.S_IFREG:
            raise _refuse(field, name, kind, f"it is {_KINDS.get(fmt, 'not a regular file')}")
        if info.st_size > cap:
            raise _refuse(field, name, kind, f"{info.st_size} bytes is over the {cap}-byte limit for {kind} files")
        chunks: list[bytes] = []
        total = 0
        while total <= cap:
            chunk = os.read(fd, min(_CHUNK, cap + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > cap:  # it grew while we read, or st_size lied (procfs-like files)
            raise _refuse(field, name, kind, f"over the {cap}-byte limit for {kind} files")
        return b"".join(chunks)
    except OSError as exc:
        raise _refuse(field, name, kind, exc.strerror or "cannot read it") from None
    finally:
        os.close(fd)


def read_text_file(path: str | os.PathLike[str], *, field: str, kind: FileKind, max_bytes: int | None = None) -> str:
    """:func:`read_bytes_file` decoded as UTF-8 (a BOM is dropped); bad UTF-8 names the offset, not the bytes.

    >>> read_text_file("/dev/null", field="spec", kind="spec")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    gpu_preflight.tools.common.errors.PreflightError: spec: got '/dev/null'; ... (it is a character device)
    """
    data = read_bytes_file(path, field=field, kind=kind, max_bytes=max_bytes)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _refuse(field, os.fspath(path), kind, f"not UTF-8 text (invalid byte at offset {exc.start})") from None

"""A run's log on a registered host, parsed exactly as a local one (issue 17): one ssh call per check.

Why not copy the log here and read the copy: the copy's write time would be ours, not the box's, and the
write-time clock (:mod:`.writetimes`) is what times a log that prints no step times. The bytes come through
:func:`gpu_preflight.tools.hosts.remotefile.read_remote` (size, write time, device and inode taken with the
bytes, in one call) and are fed to the same :class:`~.tail.LineFeed` a local :class:`~.tail.LogTail` uses.

A log longer than :data:`~gpu_preflight.tools.hosts.remotefile.MAX_READ_BYTES` is read from its last 32 MiB:
its first, cut line is dropped, a note says so, and an HF log's ``logging_steps`` (which counts its dicts
from the file's start) is not applied. Looks of a remote log are kept under :func:`look_key`, so the same
path on two boxes (or here) never shares a write-time record.
"""

from __future__ import annotations

from typing import Any

from gpu_preflight.tools.hosts.registry import get_host
from gpu_preflight.tools.hosts.remotefile import MAX_READ_BYTES, read_remote

from .tail import LineFeed, Look, SourceSummary, read_source_look


def look_key(path: str, host: str | None) -> str:
    """The key a log's looks are kept under: the path here, ``ssh://HOST:PATH`` on a host.

    >>> look_key("/runs/a.log", "box1")
    'ssh://box1:/runs/a.log'
    """
    return path if host is None else f"ssh://{host}:{path}"


def read_remote_source_look(host_name: str, path: str, *, fmt: str | None = None, regex: str | None = None,
                            field: str = "log_path", must_exist: bool = False, logging_steps: int | None = None,
                            max_bytes: int = MAX_READ_BYTES, notes: list[str] | None = None
                            ) -> tuple[list[Any], SourceSummary, Look | None]:
    """:func:`.tail.read_source_look` for ``path`` on host ``host_name`` (see the module doc).

    Raises :class:`~gpu_preflight.tools.hosts.remotefile.RemoteFileUnreachable` when the host does not answer.
    """
    host = get_host(host_name, field="host")
    found = read_remote(host, path, last_bytes=max_bytes, field=field, must_exist=must_exist)
    if found is None:
        return [], SourceSummary(path=path, format=fmt, samples=0, skipped_lines=0, duplicate_lines=0,
                                 host=host_name), None
    data = found.data
    whole = found.start_bytes == 0
    feed = LineFeed(fmt=fmt, regex=regex, logging_steps=logging_steps if whole else None)
    feed.offset_bytes = found.start_bytes
    if not whole:
        cut = data.find(b"\n")
        data = data[cut + 1:] if cut >= 0 else b""
        if notes is not None:
            notes.append(f"{path} on {host_name} holds {found.size_bytes:,} bytes: read its last {found.read_bytes:,}")
    update = feed.push(data, size_bytes=found.read_bytes)
    samples: list[Any] = list(update.samples)
    look = None
    if found.to_end and feed.at_line_end:
        look = Look(dev=found.dev, ino=found.ino, size_bytes=found.size_bytes, written_epoch_s=found.mtime_epoch_s)
        update = feed.flush()  # closes a multi-line record the file finished, as a local read does
        samples.extend(update.samples)
    summary = SourceSummary(path=path, format=update.format, samples=len(samples), skipped_lines=update.skipped_lines,
                            duplicate_lines=update.duplicate_lines, size_bytes=feed.offset_bytes, host=host_name)
    return samples, summary, look


def read_log_look(path: str, host: str | None, *, fmt: str | None = None, regex: str | None = None,
                  field: str = "log_path", must_exist: bool = False, logging_steps: int | None = None,
                  notes: list[str] | None = None) -> tuple[list[Any], SourceSummary, Look | None]:
    """A log here (``host`` None: :func:`.tail.read_source_look`) or on a registered host, the same way."""
    if host is None:
        return read_source_look(path, fmt=fmt, regex=regex, field=field, must_exist=must_exist,
                                logging_steps=logging_steps)
    return read_remote_source_look(host, path, fmt=fmt, regex=regex, field=field, must_exist=must_exist,
                                   logging_steps=logging_steps, notes=notes)

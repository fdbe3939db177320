"""Follow a growing log (training output or ``nvidia-smi -l``) without re-reading it.

Why not re-ingest the file each time: a long run's log reaches gigabytes, and the validation loop
polls every few seconds. :class:`LogTail` keeps the file open, remembers its byte offset and the
unfinished last line, and hands only complete new lines to a parser that keeps its own state
across polls (a Composer record or a dmon header straddling a poll boundary still parses).
``\\r`` ends a line too, so a tqdm bar redrawn in place yields its states as they come.

Rotation (the path now names a new file) drains the old file first, then starts the new one
from byte 0; truncation (same file, now shorter than the offset, as ``> log`` does) restarts at 0.
A truncation followed, before the next poll, by more bytes than were read before looks like
growth and cannot be told apart; poll more often than a run restarts.

Why this opens files itself rather than through :func:`~gpu_preflight.tools.common.files.read_text_file`:
that reader reads a file whole under a size cap, and a run's log is legitimately gigabytes. The same
rules hold here: the path must be under an ``--allow-path`` folder (checked before opening and on the
opened descriptor), it is opened non-blocking and ``fstat``-checked, so a FIFO, device or directory is
refused naming the argument (``field``) instead of blocking or streaming forever, and errors name the
path, never bytes of the file. A path that does not exist yet is a log a run has not started writing;
callers that were *given* the path (not a run record) pass ``must_exist=True`` to :func:`open_log`'s
users, so a typo is an error and never "no records yet".

Write times: a poll that read up to the file's end, on a line end, with nothing written since, knows
when its last line was written (the file's ``st_mtime``, nanosecond resolution on ext4, xfs and
tmpfs): :attr:`TailUpdate.arrived_epoch_s`. That is the timing a log without per-step times carries
(:mod:`.writetimes`). Only the last line of a poll is timed: lines read together may have arrived
together (a buffered flush) or one by one, and the file does not say which.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as stat_mod
from pathlib import Path
from typing import Any, BinaryIO, cast

from pydantic import BaseModel, ConfigDict, Field

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.common.files import check_allowed

from .ingest import DETECT_MAX_SEGMENTS, AnyParser, detect_format, make_parser
from .models import GpuSample, IngestFormat, LogSample, ProcessSample

DEFAULT_MAX_READ_BYTES = 16 * 1024 * 1024
_ALLOWED = "a regular file holding a text log"
_NOT_REGULAR = {stat_mod.S_IFDIR: "a directory", stat_mod.S_IFCHR: "a character device",
                stat_mod.S_IFBLK: "a block device", stat_mod.S_IFIFO: "a FIFO (named pipe)",
                stat_mod.S_IFSOCK: "a socket"}


def open_log(path: str | os.PathLike[str], *, field: str, must_exist: bool = False) -> BinaryIO | None:
    """The log at ``path`` opened for reading, ``None`` when it does not exist yet (unless ``must_exist``).

    Refuses (naming ``field``) a path outside the ``--allow-path`` folders, a NUL in the path, and
    anything but a regular file; never blocks (``O_NONBLOCK``: a FIFO without a writer opens at once).
    """
    name = os.fspath(path)
    if "\x00" in name:
        raise PreflightError(field, name, "a file path without NUL bytes")
    check_allowed(name, field=field)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ENOENT and not must_exist:
            return None  # not there yet: a run that has not started logging
        why = {errno.ENOENT: "it does not exist", errno.EACCES: "permission denied", errno.EISDIR: "it is a directory",
               errno.ENOTDIR: "a part of the path is not a directory", errno.ENAMETOOLONG: "the path is too long"}
        raise PreflightError(field, name, _ALLOWED, why.get(exc.errno or 0, exc.strerror or "cannot open it")) from None
    try:
        with contextlib.suppress(OSError):  # no procfs: the check before opening stands
            check_allowed(os.readlink(f"/proc/self/fd/{fd}"), field=field)  # a path swapped after the check
        fmt = stat_mod.S_IFMT(os.fstat(fd).st_mode)
        if fmt != stat_mod.S_IFREG:
            raise PreflightError(field, name, _ALLOWED, f"it is {_NOT_REGULAR.get(fmt, 'not a regular file')}")
        os.set_blocking(fd, True)
        return cast(BinaryIO, os.fdopen(fd, "rb"))
    except BaseException:
        os.close(fd)
        raise


class TailUpdate(BaseModel):
    """What one :meth:`LogTail.poll` found: new samples and the tail's running counters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: IngestFormat | None
    samples: list[GpuSample] | list[LogSample] | list[ProcessSample]
    offset_bytes: int = Field(ge=0)
    skipped_lines: int = Field(ge=0)
    duplicate_lines: int = Field(ge=0)
    rotated: bool = False
    truncated: bool = False
    arrived_epoch_s: float | None = Field(default=None, description="When this poll's last line was written "
                                          "(file mtime), when known: see the module doc.")


class Look(BaseModel):
    """One look at a log that ended on a line end at the file's end: its identity, size and last write time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dev: int
    ino: int
    size_bytes: int = Field(ge=0)
    written_epoch_s: float


class LineFeed:
    """Bytes in, samples out: line splitting (``\\r`` too), format detection and one parser's state.

    Shared by :class:`LogTail` (bytes read from a local file) and the remote reader
    (:mod:`.remotelog`: bytes that came over ssh), so a log parses the same wherever it lies.
    """

    def __init__(self, *, fmt: str | None = None, regex: str | None = None, columns: list[str] | None = None,
                 logging_steps: int | None = None) -> None:
        self._regex = regex
        self._columns = columns
        self._every = logging_steps  # an HF log's logging_steps, for its dicts without a bar (make_log_parser)
        self._fmt: str | None = "regex" if regex is not None else fmt
        self._parser: AnyParser | None = None
        if self._fmt is not None:
            self._parser = make_parser(self._fmt, regex=regex, columns=columns, logging_steps=logging_steps)
        self._pending: list[str] = []
        self._pending_dropped = 0
        self._partial = b""
        self.offset_bytes = 0

    @property
    def at_line_end(self) -> bool:
        """Everything read so far ended with a line break (so the last record is complete).

        Why not read the file's last byte: that re-read the whole log on every check.
        """
        return self.offset_bytes > 0 and not self._partial

    def push(self, data: bytes, *, size_bytes: int | None = None) -> TailUpdate:
        """Parse the complete lines of ``data`` (``size_bytes``: what it stood for, when not ``len(data)``)."""
        self.offset_bytes += len(data) if size_bytes is None else size_bytes
        return self._update(self._feed(self._split(data)))

    @property
    def format(self) -> str | None:
        """The format given or detected so far (``None`` until enough lines arrived)."""
        return self._fmt

    def _split(self, data: bytes) -> list[str]:
        buffer = (self._partial + data).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *complete, self._partial = buffer.split(b"\n")
        return [line.decode("utf-8", errors="replace") for line in complete if line.strip()]

    def _feed(self, segments: list[str]) -> list[Any]:
        if self._parser is None:
            self._pending.extend(segments)
            if len(self._pending) > DETECT_MAX_SEGMENTS:
                self._pending_dropped += len(self._pending) - DETECT_MAX_SEGMENTS
                self._pending = self._pending[-DETECT_MAX_SEGMENTS:]
            detected = detect_format("\n".join(self._pending))
            if detected is None:
                return []
            self._fmt = detected
            self._parser = make_parser(detected, regex=self._regex, columns=self._columns, logging_steps=self._every)
            self._parser.skipped_lines += self._pending_dropped
            segments, self._pending = self._pending, []
        out: list[Any] = []  # all GpuSample or all LogSample: one parser per tail
        for segment in segments:
            out.extend(self._parser.feed(segment))
        return out

    def flush(self) -> TailUpdate:
        """Treat the unfinished last line as complete and close open records (the run ended)."""
        segments = [self._partial.decode("utf-8", errors="replace")] if self._partial.strip() else []
        self._partial = b""
        samples = self._feed(segments)
        if self._parser is not None:
            samples.extend(self._parser.finish())
        return self._update(samples)

    def _update(
        self, samples: list[GpuSample] | list[LogSample] | list[ProcessSample], *, rotated: bool = False,
        truncated: bool = False, arrived_epoch_s: float | None = None,
    ) -> TailUpdate:
        skipped = self._parser.skipped_lines if self._parser is not None else 0
        duplicates = self._parser.duplicate_lines if self._parser is not None else 0
        return TailUpdate(
            format=cast(IngestFormat | None, self._fmt),
            samples=samples,
            offset_bytes=self.offset_bytes,
            skipped_lines=skipped,
            duplicate_lines=duplicates,
            rotated=rotated,
            truncated=truncated,
            arrived_epoch_s=arrived_epoch_s,
        )


class LogTail(LineFeed):
    """Incremental reader of one path; use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fmt: str | None = None,
        regex: str | None = None,
        columns: list[str] | None = None,
        logging_steps: int | None = None,
        from_end: bool = False,
        max_read_bytes: int = DEFAULT_MAX_READ_BYTES,
        field: str = "path",
        must_exist: bool = False,
    ) -> None:
        if max_read_bytes <= 0:
            raise PreflightError("max_read_bytes", max_read_bytes, "a positive byte count")
        if "\x00" in os.fspath(path):  # open() would raise ValueError, not the OSError of a missing file
            raise PreflightError(field, os.fspath(path), "a file path without NUL bytes")
        super().__init__(fmt=fmt, regex=regex, columns=columns, logging_steps=logging_steps)
        self.path = Path(path)
        self.field = field
        self._max_read = max_read_bytes
        self._file: BinaryIO | None = None
        self._inode: tuple[int, int] | None = None
        self._open(from_end=from_end, must_exist=must_exist)

    def _open(self, *, from_end: bool, must_exist: bool = False) -> None:
        handle = open_log(self.path, field=self.field, must_exist=must_exist)
        if handle is None:
            self._file = None  # not there yet: a run that has not started logging
            return
        stat = os.fstat(handle.fileno())
        self._file = handle
        self._inode = (stat.st_dev, stat.st_ino)
        self.offset_bytes = stat.st_size if from_end else 0
        handle.seek(self.offset_bytes)
        self._partial = b""

    def __enter__(self) -> LogTail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file; the tail can not be polled afterwards."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def look(self) -> Look | None:
        """The file's last write time, when everything written so far was read and ended on a line end.

        ``None`` while a line is unfinished or the file grew since the last read: then the write time
        belongs to bytes not parsed yet, and pinning it on the last parsed line would be wrong.
        """
        if self._file is None or self._inode is None or not self.at_line_end:
            return None
        stat = os.fstat(self._file.fileno())
        if stat.st_size != self.offset_bytes:
            return None
        return Look(dev=self._inode[0], ino=self._inode[1], size_bytes=self.offset_bytes,
                    written_epoch_s=stat.st_mtime_ns / 1e9)

    def _read_available(self) -> bytes:
        assert self._file is not None
        chunks: list[bytes] = []
        budget = self._max_read
        while budget > 0:
            chunk = self._file.read(min(budget, 1024 * 1024))
            if not chunk:
                break
            chunks.append(chunk)
            budget -= len(chunk)
        data = b"".join(chunks)
        self.offset_bytes += len(data)
        return data

    def poll(self) -> TailUpdate:
        """Read what was appended since the last poll and parse its complete lines."""
        rotated = truncated = False
        segments: list[str] = []
        if self._file is None:
            self._open(from_end=False)
        if self._file is not None:
            segments = self._split(self._read_available())
            try:
                stat = os.stat(self.path)
            except OSError:
                stat = None  # moved away and not yet recreated: keep the old handle
            if stat is not None and (stat.st_dev, stat.st_ino) != self._inode:
                rotated = True
                if self._partial.strip():
                    segments.append(self._partial.decode("utf-8", errors="replace"))
                self.close()
                self._open(from_end=False)
                if self._file is not None:
                    segments.extend(self._split(self._read_available()))
            elif stat is not None and stat.st_size < self.offset_bytes:
                truncated = True
                assert self._file is not None
                self._file.seek(0)
                self.offset_bytes = 0
                self._partial = b""
                segments.extend(self._split(self._read_available()))
        samples = self._feed(segments)
        look = self.look() if segments else None
        return self._update(samples, rotated=rotated, truncated=truncated,
                            arrived_epoch_s=look.written_epoch_s if look is not None else None)

class SourceSummary(BaseModel):
    path: str
    format: str | None
    samples: int
    skipped_lines: int
    duplicate_lines: int
    size_bytes: int | None = Field(default=None, description="Bytes read (a log: up to its last line end).")
    host: str | None = Field(default=None, description="The registered host the file is on (None: here).")


def read_source(path: str, *, fmt: str | None = None, regex: str | None = None, field: str = "path",
                must_exist: bool = False, logging_steps: int | None = None) -> tuple[list[Any], SourceSummary]:
    """Every sample in ``path`` through :class:`LogTail`; a missing file is zero samples unless ``must_exist``.

    The unfinished last line of a growing file is left for the next call (it may be half-written).
    ``field`` names the argument in a refusal (a FIFO, a device, a folder outside ``--allow-path``).
    """
    samples, summary, _ = read_source_look(path, fmt=fmt, regex=regex, field=field, must_exist=must_exist,
                                           logging_steps=logging_steps)
    return samples, summary


def read_source_look(path: str, *, fmt: str | None = None, regex: str | None = None, field: str = "path",
                     must_exist: bool = False, logging_steps: int | None = None
                     ) -> tuple[list[Any], SourceSummary, Look | None]:
    """:func:`read_source`, and the :class:`Look` it ended on (None: mid-line, still growing, or no file)."""
    samples: list[Any] = []
    with LogTail(path, fmt=fmt, regex=regex, field=field, must_exist=must_exist, logging_steps=logging_steps) as tail:
        while True:
            before = tail.offset_bytes
            update = tail.poll()
            samples.extend(update.samples)
            if tail.offset_bytes == before:
                break
        look = tail.look()
        if tail.at_line_end:
            update = tail.flush()  # closes a multi-line record (Composer) the file finished
            samples.extend(update.samples)
        summary = SourceSummary(path=path, format=update.format, samples=len(samples),
                                skipped_lines=update.skipped_lines, duplicate_lines=update.duplicate_lines,
                                size_bytes=tail.offset_bytes)
    return samples, summary, look

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
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO, cast

from pydantic import BaseModel, ConfigDict, Field

from gpu_preflight.tools.common.errors import PreflightError

from .ingest import DETECT_MAX_SEGMENTS, AnyParser, detect_format, make_parser
from .models import GpuSample, IngestFormat, LogSample

DEFAULT_MAX_READ_BYTES = 16 * 1024 * 1024


class TailUpdate(BaseModel):
    """What one :meth:`LogTail.poll` found: new samples and the tail's running counters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: IngestFormat | None
    samples: list[GpuSample] | list[LogSample]
    offset_bytes: int = Field(ge=0)
    skipped_lines: int = Field(ge=0)
    duplicate_lines: int = Field(ge=0)
    rotated: bool = False
    truncated: bool = False


class LogTail:
    """Incremental reader of one path; use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fmt: str | None = None,
        regex: str | None = None,
        columns: list[str] | None = None,
        from_end: bool = False,
        max_read_bytes: int = DEFAULT_MAX_READ_BYTES,
    ) -> None:
        if max_read_bytes <= 0:
            raise PreflightError("max_read_bytes", max_read_bytes, "a positive byte count")
        if "\x00" in os.fspath(path):  # open() would raise ValueError, not the OSError of a missing file
            raise PreflightError("path", os.fspath(path), "a file path without NUL bytes")
        self.path = Path(path)
        self._regex = regex
        self._columns = columns
        self._fmt: str | None = "regex" if regex is not None else fmt
        self._parser: AnyParser | None = None
        if self._fmt is not None:
            self._parser = make_parser(self._fmt, regex=regex, columns=columns)
        self._pending: list[str] = []
        self._pending_dropped = 0
        self._partial = b""
        self._max_read = max_read_bytes
        self._file: BinaryIO | None = None
        self._inode: tuple[int, int] | None = None
        self.offset_bytes = 0
        self._open(from_end=from_end)

    def _open(self, *, from_end: bool) -> None:
        try:
            handle = cast(BinaryIO, self.path.open("rb"))
        except OSError:
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

    @property
    def format(self) -> str | None:
        """The format given or detected so far (``None`` until enough lines arrived)."""
        return self._fmt

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
            self._parser = make_parser(detected, regex=self._regex, columns=self._columns)
            self._parser.skipped_lines += self._pending_dropped
            segments, self._pending = self._pending, []
        out: list[Any] = []  # all GpuSample or all LogSample: one parser per tail
        for segment in segments:
            out.extend(self._parser.feed(segment))
        return out

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
        return self._update(self._feed(segments), rotated=rotated, truncated=truncated)

    def flush(self) -> TailUpdate:
        """Treat the unfinished last line as complete and close open records (the run ended)."""
        segments = [self._partial.decode("utf-8", errors="replace")] if self._partial.strip() else []
        self._partial = b""
        samples = self._feed(segments)
        if self._parser is not None:
            samples.extend(self._parser.finish())
        return self._update(samples)

    def _update(
        self, samples: list[GpuSample] | list[LogSample], *, rotated: bool = False, truncated: bool = False
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
        )

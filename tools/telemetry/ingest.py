"""One entry point for a recorded file: detect what it is, parse it, say what was not data.

Why detection rather than asking: an agent handed a log off a rented box often does not know
(or misremembers) which tool wrote it, and the layouts are distinct enough that counting
signature lines settles it. ``fmt`` overrides detection; ``regex`` means a user-defined layout.

>>> r = ingest("iter 10: loss 3.2202, time 893.76ms, mfu 16.68%\\nsaving checkpoint")
>>> r.format, r.samples[0].step, r.skipped_lines
('nanogpt', 10, 1)
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import cast

from gpu_preflight.tools.common.errors import PreflightError, is_existing_file
from gpu_preflight.tools.common.files import read_bytes_file

from .lines import StreamParser, split_segments, strip_ansi
from .models import (
    GPU_FORMATS,
    LOG_FORMATS,
    GpuSample,
    IngestFormat,
    IngestResult,
    LogSample,
    ProcessSample,
)
from .nvsmi import (
    DmonParser,
    QueryCsvParser,
    looks_like_query_header,
    looks_like_query_row,
    normalise_query_column,
)
from .nvsmi_pmon import PMON_HEADER, PMON_UNITS, PmonParser
from .nvsmi_table import VERSION_LINE, TableParser
from .regex_proposal import unread_lines_hint
from .trainlog import make_log_parser
from .trainlog_formats import SIGNATURES

ALL_FORMATS: tuple[IngestFormat, ...] = (*GPU_FORMATS, *LOG_FORMATS)
DETECT_MAX_SEGMENTS = 5000
_MAX_PATH_CHARS = 4096
_SMI_ROW = re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?\s*,")
_DMON_HEADER = re.compile(r"^#?\s*(?:Date\s+)?(?:Time\s+)?gpu\s+(?:pwr|sm|gtemp|temp|mem|fb|mclk|pclk)\b", re.I)
# Three lines per default table (version, the Pwr:Usage/Cap header, the process box's title), not
# one per GPU: a job log that prints nvidia-smi once at its top stays a training log.
_TABLE_LINE = re.compile(r"^\|\s*(?:Fan\s+Temp\s+Perf\s+Pwr:Usage/Cap\b|Processes:)")
_DMON_UNITS = re.compile(r"^#\s*(?:YYYYMMDD\s+HH:MM:SS\s+)?Idx\b")
_QUERY_HINT_FIELDS = ("utilization.", "memory.", "power.", "temperature.", "clocks.", "index", "timestamp")

AnyParser = StreamParser[GpuSample] | StreamParser[LogSample] | StreamParser[ProcessSample]
COLUMNS_HINT = "pass columns=... (the --query-gpu fields in order)"


def _score_line(segment: str, scores: dict[IngestFormat, int]) -> None:
    text = segment.strip()
    cells = [c.strip() for c in text.split(",")]
    if len(cells) > 1 and looks_like_query_header(cells):
        if any(normalise_query_column(c).startswith(_QUERY_HINT_FIELDS) for c in cells):
            scores["nvidia_smi_query"] += 1
        return
    if _SMI_ROW.match(text) or looks_like_query_row(cells):
        scores["nvidia_smi_query"] += 1
        return
    if PMON_HEADER.match(text) or PMON_UNITS.match(text):  # before dmon: its "# Idx" line matches both
        scores["nvidia_smi_pmon"] += 1
        return
    if _DMON_HEADER.match(text) or _DMON_UNITS.match(text):
        scores["nvidia_smi_dmon"] += 1
        return
    if VERSION_LINE.match(text) or _TABLE_LINE.match(text):
        scores["nvidia_smi_table"] += 1
        return
    for fmt, signature in SIGNATURES.items():
        if signature.search(text):
            scores[fmt] += 1


def detect_format(text: str) -> IngestFormat | None:
    """The format with the most signature lines in the first segments; ``None`` when none match.

    Ties go to the earlier entry of :data:`ALL_FORMATS` (nvidia-smi formats first).
    """
    scores: dict[IngestFormat, int] = dict.fromkeys(ALL_FORMATS, 0)
    for count, segment in enumerate(split_segments(text)):
        if count >= DETECT_MAX_SEGMENTS:
            break
        _score_line(strip_ansi(segment), scores)
    best = max(ALL_FORMATS, key=lambda f: scores[f])
    return best if scores[best] > 0 else None


def make_parser(fmt: str, *, regex: str | None = None, columns: Sequence[str] | None = None,
                logging_steps: int | None = None) -> AnyParser:
    """A fresh streaming parser for ``fmt`` (``columns`` names a ``noheader`` CSV's fields; ``logging_steps``
    places an HF Trainer log's dicts, :func:`~.trainlog.make_log_parser`)."""
    if fmt == "nvidia_smi_query":
        return QueryCsvParser(columns)
    if fmt == "nvidia_smi_dmon":
        return DmonParser()
    if fmt == "nvidia_smi_table":
        return TableParser()
    if fmt == "nvidia_smi_pmon":
        return PmonParser()
    if fmt in LOG_FORMATS:
        return make_log_parser(fmt, regex=regex, logging_steps=logging_steps)
    raise PreflightError("fmt", fmt, ", ".join(ALL_FORMATS))


def read_text(text_or_path: str | os.PathLike[str], *, field: str = "path") -> str:
    """The text itself, or a file's contents when given a path (a ``Path`` or a one-line string naming a file).

    A file goes through :func:`~gpu_preflight.tools.common.files.read_bytes_file` (regular files only,
    ``--allow-path`` confinement, the log size cap; errors name ``field``, never the content). Bytes that
    are not UTF-8 become U+FFFD: a log with a torn multi-byte character is still a log.
    """
    if isinstance(text_or_path, os.PathLike):
        return read_bytes_file(text_or_path, field=field, kind="log").decode("utf-8", errors="replace")
    text = text_or_path
    if "\n" not in text and len(text) < _MAX_PATH_CHARS and text.strip() and is_existing_file(text):
        return read_bytes_file(text, field=field, kind="log").decode("utf-8", errors="replace")
    return text


def ingest(
    text_or_path: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    regex: str | None = None,
    columns: Sequence[str] | str | None = None,
    field: str = "path",
    logging_steps: int | None = None,
) -> IngestResult:
    """Parse a recorded nvidia-smi capture or training log into samples, detecting the format.

    ``fmt`` forces a format (one of :data:`ALL_FORMATS`); ``regex`` (named groups from
    :data:`~gpu_preflight.tools.telemetry.trainlog.REGEX_GROUPS`) implies ``fmt="regex"``;
    ``columns`` gives the field order of a ``--format=csv,noheader`` capture (a list, or one string
    ``"index,utilization.gpu,..."``) and implies ``fmt="nvidia_smi_query"``; ``field`` names a path
    argument in errors; ``logging_steps`` (the run's) places an HF Trainer log's dicts without a bar. An
    undetected format names the file, never its first line (it may be a secret); it shows at most three
    lines that look like metrics (never one that looks like a secret) and proposes a regex built from
    them (:mod:`.regex_proposal`).
    """
    from_file = isinstance(text_or_path, os.PathLike)
    text = read_text(text_or_path, field=field)
    from_file = from_file or text is not text_or_path
    if regex is not None and fmt not in (None, "regex"):
        raise PreflightError("fmt", fmt, "'regex' or nothing when a regex is given")
    if isinstance(columns, str):
        columns = [c.strip() for c in columns.split(",")]
    if columns is not None and (fmt not in (None, "nvidia_smi_query") or regex is not None):
        raise PreflightError("columns", ",".join(columns), "only with fmt nvidia_smi_query (a --query-gpu CSV)")
    chosen: str | None = "regex" if regex is not None else fmt
    if chosen is None and columns is not None:
        chosen = "nvidia_smi_query"  # the columns say what it is: the --query-gpu fields of a noheader CSV
    if chosen is None:
        chosen = detect_format(text)
    if chosen is None and from_file:
        raise PreflightError("fmt", None, ", ".join(ALL_FORMATS),
                             f"format not detected in {os.fspath(text_or_path)!r}: pass fmt or a regex"
                             + unread_lines_hint(text))
    if chosen is None:
        looks_like_path = "\n" not in text and len(text) < 300
        hint = "no such file" if looks_like_path else "pass fmt=... or a regex with named groups"
        hint += "" if looks_like_path else unread_lines_hint(text)
        raise PreflightError("fmt", text[:60] if looks_like_path else "(undetected)", ", ".join(ALL_FORMATS), hint)
    if logging_steps is not None and logging_steps < 1:
        raise PreflightError("logging_steps", logging_steps, "a whole number of steps >= 1, or None")
    parser = make_parser(chosen, regex=regex, columns=columns, logging_steps=logging_steps)
    samples = parser.feed_text(text)
    if isinstance(parser, QueryCsvParser) and not samples and parser.rows_without_columns:
        raise PreflightError("columns", None, "the --query-gpu fields of a --format=csv,noheader capture, in order",
                             COLUMNS_HINT)
    return IngestResult(
        format=cast(IngestFormat, chosen),
        samples=samples,
        skipped_lines=parser.skipped_lines,
        duplicate_lines=parser.duplicate_lines,
        processes=parser.processes if isinstance(parser, TableParser) else [],
    )

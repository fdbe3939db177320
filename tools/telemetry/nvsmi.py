"""Parsers for recorded ``nvidia-smi`` output: ``--query-gpu ... --format=csv`` and ``dmon``.

(The default table is read by :mod:`.nvsmi_table`, ``pmon`` by :mod:`.nvsmi_pmon`.)

A recorded log is the only telemetry there is for a box the server does not run on, and the
playbook's two capture commands are::

    nvidia-smi --query-gpu=timestamp,utilization.gpu,utilization.memory,memory.used,memory.total,power.draw \\
               --format=csv -l 10
    nvidia-smi dmon -s u -d 10

Both formats drift: CSV columns come in any order, with or without units (``nounits`` still
keeps ``[%]`` in the header), and aliases expand (``clocks.gr`` prints as
``clocks.current.graphics [MHz]``); ``dmon`` columns change across drivers (``temp`` became
``gtemp mtemp``, 530+ added ``jpg ofa``), so both parsers read the header instead of assuming a
layout. ``[N/A]``, ``[Not Supported]`` and ``-`` become ``None``, never 0.

>>> text = '''index, utilization.gpu [%], memory.used [MiB], memory.total [MiB], power.draw [W]
... 1, 97 %, 70000 MiB, 81920 MiB, [N/A]'''
>>> [(s.gpu_index, s.gpu_util_pct, s.mem_used_mib, s.power_w) for s in QueryCsvParser().feed_text(text)]
[(1, 97.0, 70000.0, None)]
>>> text = '''# gpu    sm   mem   enc   dec
... # Idx     %     %     %     %
...     0    67    40     -     0'''
>>> [(s.gpu_index, s.gpu_util_pct, s.mem_util_pct) for s in DmonParser().feed_text(text)]
[(0, 67.0, 40.0)]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from gpu_preflight.tools.common.errors import PreflightError

from .lines import StreamParser, parse_number
from .models import GpuSample
from .throttle import decode_throttle_mask

# The playbook's query, assumed for ``--format=csv,noheader`` captures when no columns are given.
PLAYBOOK_QUERY_COLUMNS: tuple[str, ...] = (
    "timestamp",
    "utilization.gpu",
    "utilization.memory",
    "memory.used",
    "memory.total",
    "power.draw",
)

# Query field (unit suffix removed, lower case) -> (GpuSample field, priority; lower wins).
# The graphics clock stands in for the SM clock when only it was queried: on NVIDIA GPUs both
# run in one clock domain and nvidia-smi -q prints the same MHz for "Graphics" and "SM".
_QUERY_FIELDS: dict[str, tuple[str, int]] = {
    "index": ("gpu_index", 0),
    "timestamp": ("timestamp", 0),
    "name": ("name", 0),
    "gpu_name": ("name", 0),
    "utilization.gpu": ("gpu_util_pct", 0),
    "utilization.memory": ("mem_util_pct", 0),
    "memory.used": ("mem_used_mib", 0),
    "memory.total": ("mem_total_mib", 0),
    "power.draw": ("power_w", 0),
    "power.draw.average": ("power_w", 1),
    "power.draw.instant": ("power_w", 2),
    "power.limit": ("power_limit_w", 0),
    "enforced.power.limit": ("power_limit_w", 1),
    "temperature.gpu": ("temp_c", 0),
    "temperature.memory": ("mem_temp_c", 0),
    "clocks.sm": ("sm_clock_mhz", 0),
    "clocks.current.sm": ("sm_clock_mhz", 0),
    "clocks.gr": ("sm_clock_mhz", 1),
    "clocks.current.graphics": ("sm_clock_mhz", 1),
    "clocks.mem": ("mem_clock_mhz", 0),
    "clocks.current.memory": ("mem_clock_mhz", 0),
    "fan.speed": ("fan_pct", 0),
    "pstate": ("perf_state", 0),
    "clocks_event_reasons.active": ("throttle_reasons", 0),
    "clocks_throttle_reasons.active": ("throttle_reasons", 0),
}
# Columns that identify a GPU when there is no ``index`` column.
_IDENTITY_FIELDS = frozenset({"uuid", "gpu_uuid", "pci.bus_id", "gpu_bus_id"})
_TEXT_FIELDS = frozenset({"timestamp", "name", "pstate"})
_HEADER_CELL = re.compile(r"^[a-z][a-z0-9_.]*(\s*\[[^\]]*\])?$", re.IGNORECASE)
_UNIT_SUFFIX = re.compile(r"\s*\[[^\]]*\]$")
_SMI_TIMESTAMP = re.compile(r"^(\d{4})/(\d{2})/(\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d+)?)$")
_VALUE_UNIT = re.compile(r"^(\S+)(?:\s+(%|MiB|GiB|W|MHz|C|KB/s|MB/s))?$")
# A headerless row is taken for a query row only with a mark no training log prints: a GPU UUID,
# a PCI bus id, a MiB figure or an NVIDIA product name (a bare "0, 45, 1234" could be anything).
_GPU_MARK = re.compile(
    r"^(?:GPU-[0-9a-f]{8}-[0-9a-f-]+|[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]|\d+(?:\.\d+)?\s*MiB"
    r"|(?:NVIDIA|Tesla|GeForce|Quadro|TITAN)\b.*)$",
    re.IGNORECASE,
)
_ROW_CELL = re.compile(r"^[\w .:/()\[\]%+-]*$")

# dmon column -> GpuSample field. ``pclk`` is the graphics (processor) clock, which the SMs run at.
_DMON_FIELDS: dict[str, str] = {
    "gpu": "gpu_index",
    "pwr": "power_w",
    "temp": "temp_c",
    "gtemp": "temp_c",
    "mtemp": "mem_temp_c",
    "sm": "gpu_util_pct",
    "mem": "mem_util_pct",
    "mclk": "mem_clock_mhz",
    "pclk": "sm_clock_mhz",
    "fb": "mem_used_mib",
}
_DMON_HEADER_TOKEN = re.compile(r"^[a-z][a-z0-9_]*$", re.IGNORECASE)


def smi_timestamp_to_iso(text: str) -> str:
    """``2020/11/12 13:48:11.412`` -> ``2020-11-12T13:48:11.412`` (local time, zone unknown).

    >>> smi_timestamp_to_iso("2026/03/06 16:45:26")
    '2026-03-06T16:45:26'
    """
    match = _SMI_TIMESTAMP.match(text.strip())
    if not match:
        raise ValueError(f"not an nvidia-smi timestamp: {text!r}")
    year, month, day, clock = match.groups()
    return f"{year}-{month}-{day}T{clock}"


def dmon_timestamp(date: str | None, clock: str | None) -> str | None:
    """``dmon``/``pmon -o DT`` columns (``20240117``, ``14:58:48``) -> ISO 8601 without a zone.

    >>> dmon_timestamp("20240117", "14:58:48"), dmon_timestamp(None, "14:58:48")
    ('2024-01-17T14:58:48', None)
    """
    if date is None or clock is None or not re.fullmatch(r"\d{8}", date):
        return None
    return f"{date[:4]}-{date[4:6]}-{date[6:]}T{clock}"


def normalise_query_column(cell: str) -> str:
    """Header cell -> query field name: unit suffix dropped, lower case (``memory.used [MiB]``)."""
    return _UNIT_SUFFIX.sub("", cell.strip()).strip().lower()


def looks_like_query_header(cells: Sequence[str]) -> bool:
    """True when every cell is shaped like an nvidia-smi field name (data cells never all are)."""
    return (
        len(cells) >= 1
        and all(_HEADER_CELL.match(cell.strip()) for cell in cells)
        and any(
            normalise_query_column(c) in _QUERY_FIELDS
            or normalise_query_column(c) in _IDENTITY_FIELDS
            or "." in c
            or normalise_query_column(c) in {"pid", "process_name", "used_gpu_memory", "driver_version"}
            for c in cells
        )
    )


def looks_like_query_row(cells: Sequence[str]) -> bool:
    """True for a ``--format=csv,noheader`` data row: nvidia-smi's timestamp first, or an index and a GPU mark.

    >>> looks_like_query_row(["0", "NVIDIA H100 80GB HBM3", "45 %", "1234 MiB"])
    True
    >>> looks_like_query_row(["10", "3.2202", "893.76"])  # a training log's CSV row
    False
    """
    if len(cells) < 2 or not all(_ROW_CELL.match(c) for c in cells):
        return False
    first = cells[0].strip()
    if _SMI_TIMESTAMP.match(first):
        return True  # nvidia-smi's own timestamp layout is mark enough
    return len(cells) >= 3 and first.isdigit() and any(_GPU_MARK.match(c.strip()) for c in cells[1:])


def _query_value(column: str, raw: str) -> Any:
    """Convert one CSV cell for ``column``; raises ``ValueError`` on text that is not a value."""
    text = raw.strip()
    if text.lower() in {"[n/a]", "[not supported]", "n/a", "-", ""}:
        return None
    if column == "timestamp":
        return smi_timestamp_to_iso(text)
    if column in _TEXT_FIELDS:
        return text
    if column in {"clocks_event_reasons.active", "clocks_throttle_reasons.active"}:
        return decode_throttle_mask(int(text, 16))
    if column == "index":
        return int(text)
    match = _VALUE_UNIT.match(text)
    if not match:
        raise ValueError(f"not a value: {raw!r}")
    return parse_number(match.group(1))


class QueryCsvParser(StreamParser[GpuSample]):
    """``nvidia-smi --query-gpu=... --format=csv[,noheader][,nounits]``, any column order.

    GPU index comes from the ``index`` column; else from ``uuid``/``pci.bus_id`` in order of
    first appearance; else from row order within one ``timestamp`` (every GPU's row of one poll
    carries the same timestamp); else from row order within one header block (a one-shot call
    prints its header each time). A new header line restarts the column map, so concatenated
    captures and the ``--query-compute-apps`` table beside a GPU table both parse; rows of a
    table with no GPU column (the process table) are counted as skipped.

    A ``noheader`` row read with no ``columns`` is skipped and counted in ``rows_without_columns``
    (the playbook's own query, timestamp first, is the one layout assumed): which number is
    ``utilization.gpu`` and which ``utilization.memory`` only the command line knows, and a guess
    would be a wrong answer given as a right one. :func:`~.ingest.ingest` turns that count into an
    error asking for the columns.
    """

    format = "nvidia_smi_query"

    def __init__(self, columns: Sequence[str] | None = None) -> None:
        super().__init__()
        self._columns: list[str] | None = None
        self._assumed_columns = columns is None
        if columns is not None:
            self._set_columns([normalise_query_column(c) for c in columns])
        self._seq: dict[int, int] = {}
        self._identity_order: dict[str, int] = {}
        self._group_key: object = None
        self._group_pos = 0
        self.rows_without_columns = 0  # data rows of a noheader capture read without ``columns``

    def _set_columns(self, columns: list[str]) -> None:
        unknown = [c for c in columns if not c]
        if unknown:
            raise PreflightError("columns", columns, "nvidia-smi --query-gpu field names")
        self._columns = columns
        self._group_key = None
        self._group_pos = 0

    def feed(self, segment: str) -> list[GpuSample]:
        cells = [cell.strip() for cell in segment.split(",")]
        if looks_like_query_header(cells):
            self._set_columns([normalise_query_column(c) for c in cells])
            self._assumed_columns = False
            return []
        if (self._columns is None and self._assumed_columns and len(cells) == len(PLAYBOOK_QUERY_COLUMNS)
                and _SMI_TIMESTAMP.match(cells[0])):  # the playbook's query starts with the timestamp
            self._set_columns(list(PLAYBOOK_QUERY_COLUMNS))
        if self._columns is None and looks_like_query_row(cells):
            self.rows_without_columns += 1
        if self._columns is None or len(cells) != len(self._columns):
            self.skipped_lines += 1
            return []
        sample = self._row(cells)
        if sample is None:
            self.skipped_lines += 1
            return []
        return [sample]

    def _row(self, cells: list[str]) -> GpuSample | None:
        assert self._columns is not None
        fields: dict[str, Any] = {}
        priority: dict[str, int] = {}
        identity: str | None = None
        for column, raw in zip(self._columns, cells, strict=True):
            if column in _IDENTITY_FIELDS:
                identity = raw.strip()
                continue
            target = _QUERY_FIELDS.get(column)
            if target is None:
                continue
            name, rank = target
            try:
                value = _query_value(column, raw)
            except ValueError:
                return None
            if value is None:
                continue
            if name not in fields or rank < priority[name]:
                fields[name] = value
                priority[name] = rank
        if not fields or set(fields) <= {"gpu_index", "timestamp", "name", "perf_state"}:
            return None  # a table without GPU readings (e.g. --query-compute-apps)
        if "gpu_index" not in fields:
            fields["gpu_index"] = self._infer_index(identity, fields.get("timestamp"))
        index = int(fields["gpu_index"])
        fields["seq"] = self._seq.get(index, 0)
        self._seq[index] = fields["seq"] + 1
        return GpuSample(**fields)

    def _infer_index(self, identity: str | None, timestamp: str | None) -> int:
        if identity is not None:
            return self._identity_order.setdefault(identity, len(self._identity_order))
        key: object = timestamp if timestamp is not None else "header-block"
        if key != self._group_key:
            self._group_key = key
            self._group_pos = 0
        else:
            self._group_pos += 1
        return self._group_pos


class DmonParser(StreamParser[GpuSample]):
    """``nvidia-smi dmon`` with any ``-s`` selection, any driver's columns, ``-o DT`` included.

    The ``# gpu ...`` header names the columns (its ``#`` may be lost in a paste); the
    ``# Idx ...`` units line is consumed; dmon repeats both periodically, and each repeat
    restarts the column map. ``fb`` is printed in "MB" but is the same MiB count nvidia-smi
    reports as ``memory.used``.
    """

    format = "nvidia_smi_dmon"

    def __init__(self) -> None:
        super().__init__()
        self._columns: list[str] | None = None
        self._seq: dict[int, int] = {}

    def feed(self, segment: str) -> list[GpuSample]:
        text = segment.strip()
        body = text.lstrip("#").strip()
        tokens = body.split()
        lowered = [t.lower() for t in tokens]
        is_header = lowered and lowered[0] in {"gpu", "date", "time"} and "gpu" in lowered
        if is_header and all(_DMON_HEADER_TOKEN.match(t) for t in tokens):
            self._columns = lowered
            return []
        if self._columns is not None and "idx" in lowered and len(tokens) <= len(self._columns):
            return []  # the units line
        if self._columns is None or text.startswith("#") or len(tokens) != len(self._columns):
            self.skipped_lines += 1
            return []
        sample = self._row(tokens)
        if sample is None:
            self.skipped_lines += 1
            return []
        return [sample]

    def _row(self, tokens: list[str]) -> GpuSample | None:
        assert self._columns is not None
        fields: dict[str, Any] = {}
        date: str | None = None
        clock: str | None = None
        for column, raw in zip(self._columns, tokens, strict=True):
            if column == "date":
                date = raw
                continue
            if column == "time":
                clock = raw
                continue
            target = _DMON_FIELDS.get(column)
            try:
                value = parse_number(raw)
            except ValueError:
                return None
            if target is None or value is None:
                continue
            fields[target] = value
        if "gpu_index" not in fields or not float(fields["gpu_index"]).is_integer():
            return None
        index = int(fields["gpu_index"])
        fields["gpu_index"] = index
        stamp = dmon_timestamp(date, clock)
        if stamp is not None:
            fields["timestamp"] = stamp
        fields["seq"] = self._seq.get(index, 0)
        self._seq[index] = fields["seq"] + 1
        return GpuSample(**fields)


def parse_query_csv(text: str, *, columns: Sequence[str] | None = None) -> tuple[list[GpuSample], int]:
    """Samples and skipped-line count of a ``--query-gpu`` capture (``columns`` for ``noheader``)."""
    parser = QueryCsvParser(columns)
    samples = parser.feed_text(text)
    return samples, parser.skipped_lines


def parse_dmon(text: str) -> tuple[list[GpuSample], int]:
    """Samples and skipped-line count of an ``nvidia-smi dmon`` capture."""
    parser = DmonParser()
    samples = parser.feed_text(text)
    return samples, parser.skipped_lines

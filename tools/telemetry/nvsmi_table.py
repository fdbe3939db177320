"""Parser for the default ``nvidia-smi`` table, one shot or repeated into a log.

The table is the first thing anyone runs on a box, so it is what users paste and what job
scripts append to a log (``while ...; do nvidia-smi >> gpu.log; done``, ``nvidia-smi -l 5``).
Each GPU takes two lines of interest::

    |   0  NVIDIA H200                    On  |   00000000:19:00.0 Off |                    0 |
    | N/A   53C    P0            178W /  700W |    3941MiB / 143771MiB |     16%      Default |

The cells are found by splitting at ``|``, never by column position: the widths differ across
driver series (the 520+ layout is wider than 470's, 580 drops the ``|---`` line under the
version, Windows prints ``WDDM``/``TCC`` for persistence mode). A name too long for its cell is
cut by nvidia-smi itself (``Tesla V100-SXM2...``, ``NVIDIA GeForce RTX 4090 ...``); it is kept
as printed, ``...`` included, so nobody takes it for the full name. ``N/A`` and ``ERR!`` are
``None``. A new table starts at its ``NVIDIA-SMI`` version line (or its ``GPU  Name`` header
when the version line was cut); the ``Thu Feb 12 13:43:04 2026`` line nvidia-smi prints above
it gives the readings their timestamp (host local time, no zone). Back-to-back tables can share
one timestamp (a loop without a sleep prints ~10 a second), so ``seq`` is what orders them.

The "Processes:" box becomes :class:`ProcessSample` records in :attr:`TableParser.processes`
(``ProcessSample.seq`` is the table number); a memory cell nvidia-smi cut short (``13319...``)
is ``None``. The ``MIG devices:`` box is recognised and not read.

>>> text = '''Mon Mar  4 09:15:02 2024
... | NVIDIA-SMI 470.82.01    Driver Version: 470.82.01    CUDA Version: 11.4     |
... | GPU  Name        Persistence-M| Bus-Id        Disp.A | Volatile Uncorr. ECC |
... |===============================+======================+======================|
... |   0  Tesla V100-SXM2...  On   | 00000000:00:1E.0 Off |                    0 |
... | N/A   34C    P0    56W / 300W |  15012MiB / 16160MiB |     87%      Default |
... | Processes:                                                                  |
... |=============================================================================|
... |    0   N/A  N/A     12345      C   /usr/bin/python3                15009MiB |'''
>>> parser = TableParser()
>>> [(s.gpu_index, s.timestamp, s.fan_pct, s.temp_c, s.power_w, s.mem_used_mib, s.gpu_util_pct)
...  for s in parser.feed_text(text)]
[(0, '2024-03-04T09:15:02', None, 34.0, 56.0, 15012.0, 87.0)]
>>> [(p.gpu_index, p.pid, p.type, p.command, p.fb_mib) for p in parser.processes]
[(0, 12345, 'C', '/usr/bin/python3', 15009.0)]
"""

from __future__ import annotations

import re
from typing import Any, Literal

from .lines import StreamParser, parse_number
from .models import GpuSample, ProcessSample

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DATE_LINE = re.compile(
    rf"^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)\s+({'|'.join(_MONTHS)})\s+(\d{{1,2}})\s+(\d{{2}}:\d{{2}}:\d{{2}})\s+(\d{{4}})$"
)
VERSION_LINE = re.compile(r"^\|\s*NVIDIA-SMI\s+\S+\s+Driver Version:")
_GPU_HEADER = re.compile(r"^\|\s*GPU\s+Name\b")
_BORDER = re.compile(r"^[+|][-=+|]*[+|]$")
_PERSISTENCE = frozenset({"On", "Off", "WDDM", "TCC", "N/A"})
_ABSENT = frozenset({"N/A", "ERR!", "[N/A]", "?", "-"})
_GPU_LINE1 = re.compile(r"^(\d+)\s+(\S.*)$")
_GPU_LINE2 = re.compile(r"^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*/\s*(\S+)$")
_PAIR = re.compile(r"^(\S+)\s*/\s*(\S+)$")
_PROCESS = re.compile(
    r"^(?P<gpu>\d+)\s+(?:(?P<gi>\d+|N/A)\s+(?P<ci>\d+|N/A)\s+)?(?P<pid>\d+|N/A)\s+(?P<type>[CGM](?:\+[CGM])*)\s+"
    r"(?P<cmd>\S.*?)\s+(?P<mem>\d+MiB|N/A|\d*\.\.\.)$"
)

_State = Literal["outside", "gpu_head", "gpu_body", "mig", "proc_head", "proc_body"]
_BODY_OF: dict[_State, _State] = {"gpu_head": "gpu_body", "proc_head": "proc_body"}  # after a |=== line


def table_date_to_iso(text: str) -> str | None:
    """nvidia-smi's date line (C ``ctime`` layout) -> ISO 8601 without a zone; ``None`` if not one.

    >>> table_date_to_iso("Mon Mar  4 09:15:02 2024       ")
    '2024-03-04T09:15:02'
    """
    match = _DATE_LINE.match(text.strip())
    if not match:
        return None
    month, day, clock, year = match.groups()
    return f"{year}-{_MONTHS.index(month) + 1:02d}-{int(day):02d}T{clock}"


def _value(token: str, unit: str) -> float | None:
    """``'178W'`` -> 178.0 for unit ``W``; ``N/A``/``ERR!`` -> ``None``; anything else raises ``ValueError``."""
    if token in _ABSENT:
        return None
    if not token.endswith(unit):
        raise ValueError(f"not a value in {unit}: {token!r}")
    return parse_number(token[: -len(unit)])


def _cells(text: str) -> list[str]:
    return [cell.strip() for cell in text.strip().strip("|").split("|")]


class TableParser(StreamParser[GpuSample]):
    """The default ``nvidia-smi`` table: one :class:`GpuSample` per GPU per table, processes aside."""

    format = "nvidia_smi_table"

    def __init__(self) -> None:
        super().__init__()
        self.processes: list[ProcessSample] = []
        self._state: _State = "outside"
        self._table = -1
        self._date: str | None = None  # the last date line, for the next table
        self._timestamp: str | None = None  # the current table's
        self._line1: tuple[int, str | None] | None = None
        self._seq: dict[int, int] = {}

    def _start_table(self) -> None:
        self._table += 1
        self._timestamp, self._date = self._date, None
        self._state = "gpu_head"
        self._line1 = None

    def feed(self, segment: str) -> list[GpuSample]:
        text = segment.strip()
        date = table_date_to_iso(text)
        if date is not None:
            self._date = date
            self._state = "outside"
            return []
        if VERSION_LINE.match(text) or (_GPU_HEADER.match(text) and self._state != "gpu_head"):
            self._start_table()
            return []
        if _BORDER.match(text):
            if text.startswith("|=") or text.startswith("+="):
                self._state = _BODY_OF.get(self._state, self._state)
            elif self._state == "proc_body":
                self._state = "outside"  # the process box's bottom border ends the table
            return []
        if self._state == "outside" or not text.startswith("|"):
            self.skipped_lines += 1
            return []
        body = text.strip("|").strip()
        if body.startswith("Processes:"):
            self._state = "proc_head"
        elif body.startswith("MIG devices:"):
            self._state = "mig"
        elif self._state == "gpu_body":
            return self._gpu_line(text)
        elif self._state == "proc_body":
            self._process_line(body)
        return []  # header lines, the MIG box: recognised, not read

    def _gpu_line(self, text: str) -> list[GpuSample]:
        cells = _cells(text)
        if len(cells) < 3:
            self.skipped_lines += 1
            return []
        first = _GPU_LINE1.match(cells[0])
        if first and self._line1 is None:
            words = first.group(2).split()
            if len(words) > 1 and words[-1] in _PERSISTENCE:
                words = words[:-1]
            self._line1 = (int(first.group(1)), " ".join(words) or None)
            return []
        if self._line1 is None:
            return []  # the third line of a GPU (MIG M.) or a blank one
        index, name = self._line1
        self._line1 = None
        try:
            fields = self._readings(cells)
        except ValueError:
            self.skipped_lines += 1
            return []
        seq = self._seq.get(index, 0)
        self._seq[index] = seq + 1
        return [GpuSample(gpu_index=index, seq=seq, timestamp=self._timestamp, name=name, **fields)]

    @staticmethod
    def _readings(cells: list[str]) -> dict[str, Any]:
        """Fan, temperature, perf state, power, memory and util from a GPU's second line."""
        line2 = _GPU_LINE2.match(cells[0])
        memory = _PAIR.match(cells[1])
        util = cells[2].split()
        if not line2 or not memory or not util:
            raise ValueError("not a GPU readings line")
        fan, temp, perf, power, cap = line2.groups()
        if perf not in _ABSENT and not re.fullmatch(r"P\d{1,2}", perf):
            raise ValueError(f"not a perf state: {perf!r}")
        return {
            "fan_pct": _value(fan, "%"),
            "temp_c": _value(temp, "C"),
            "perf_state": None if perf in _ABSENT else perf,
            "power_w": _value(power, "W"),
            "power_limit_w": _value(cap, "W"),
            "mem_used_mib": _value(memory.group(1), "MiB"),
            "mem_total_mib": _value(memory.group(2), "MiB"),
            "gpu_util_pct": _value(util[0], "%"),
        }

    def _process_line(self, body: str) -> None:
        if body.lower().startswith("no running processes"):
            return
        match = _PROCESS.match(body)
        if not match:
            self.skipped_lines += 1
            return
        mem = match["mem"]
        self.processes.append(ProcessSample(
            gpu_index=int(match["gpu"]),
            seq=max(self._table, 0),
            timestamp=self._timestamp,
            pid=None if match["pid"] == "N/A" else int(match["pid"]),
            type=match["type"],
            command=match["cmd"],
            fb_mib=float(mem[:-3]) if mem.endswith("MiB") else None,
            gi_id=None if match["gi"] in (None, "N/A") else int(match["gi"]),
            ci_id=None if match["ci"] in (None, "N/A") else int(match["ci"]),
        ))


def parse_table(text: str) -> tuple[list[GpuSample], list[ProcessSample], int]:
    """GPU samples, processes and skipped-line count of one or more default ``nvidia-smi`` tables."""
    parser = TableParser()
    samples = parser.feed_text(text)
    return samples, parser.processes, parser.skipped_lines

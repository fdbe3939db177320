"""Parser for ``nvidia-smi pmon``: one :class:`ProcessSample` per process row.

pmon's header looks like dmon's (``# gpu ...`` over ``# Idx ...``), which is why it was once taken
for an empty dmon; its second column is ``pid`` and its units line says ``C/G``, and that is how
it is told apart. Like dmon, its columns depend on ``-s`` and the driver (530+ added ``jpg ofa``,
``-s m`` adds ``fb`` and, on new drivers, ``ccpm``; ``-o DT`` puts ``Date Time`` first), so the
header is read, not assumed. The command is the rest of the row (Linux cuts it to 15 characters:
``sglang::schedul``). A GPU with no process prints a row of ``-``: it is recognised and yields no
sample (it is not a process). pmon prints no cycle marker; the cycle (``seq``) is inferred as
:class:`~gpu_preflight.tools.telemetry.models.ProcessSample` describes.

>>> text = '''# gpu         pid   type     sm    mem    enc    dec    jpg    ofa     fb   ccpm    command
... # Idx           #    C/G      %      %      %      %      %      %     MB     MB    name
...     0       4242     C     92     52      -      -      -      -  90480      0    python
...     1          -     -      -      -      -      -      -      -      -      -    -'''
>>> [(p.gpu_index, p.pid, p.type, p.sm_pct, p.enc_pct, p.fb_mib, p.command) for p in PmonParser().feed_text(text)]
[(0, 4242, 'C', 92.0, None, 90480.0, 'python')]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from gpu_preflight.tools.common.render import table

from .lines import StreamParser, parse_number
from .models import ProcessSample
from .nvsmi import dmon_timestamp

# pmon column -> ProcessSample field (numbers; ``gpu``, ``pid``, ``type``, ``command`` apart).
_PMON_FIELDS: dict[str, str] = {
    "sm": "sm_pct",
    "mem": "mem_pct",
    "enc": "enc_pct",
    "dec": "dec_pct",
    "jpg": "jpg_pct",
    "ofa": "ofa_pct",
    "fb": "fb_mib",
}
_HEADER_TOKEN = re.compile(r"^[a-z][a-z0-9_]*$", re.IGNORECASE)
_TYPE = re.compile(r"^[CGM](?:\+[CGM])*$")
PMON_HEADER = re.compile(r"^#?\s*(?:Date\s+)?(?:Time\s+)?gpu\s+pid\s+type\b", re.IGNORECASE)
PMON_UNITS = re.compile(r"^#\s*(?:YYYYMMDD\s+)?(?:HH:MM:SS\s+)?Idx\s+#\s+C/G\b")


class PmonParser(StreamParser[ProcessSample]):
    """``nvidia-smi pmon`` with any ``-s`` selection, any driver's columns, ``-o DT`` included."""

    format = "nvidia_smi_pmon"

    def __init__(self) -> None:
        super().__init__()
        self._columns: list[str] | None = None
        self._cycle = 0
        self._seen: set[tuple[int, int | None]] = set()
        self._last_gpu = -1
        self._last_time: str | None = None

    def feed(self, segment: str) -> list[ProcessSample]:
        text = segment.strip()
        tokens = text.lstrip("#").split()
        if PMON_HEADER.match(text) and all(_HEADER_TOKEN.match(t) for t in tokens):
            self._columns = [t.lower() for t in tokens]
            self._new_cycle()  # a repeated header (concatenated captures) starts afresh
            return []
        if PMON_UNITS.match(text):
            return []
        if self._columns is None or text.startswith("#"):
            self.skipped_lines += 1
            return []
        last = len(self._columns) - 1
        cells = text.split(None, last) if self._columns[-1] == "command" else text.split()
        if len(cells) != len(self._columns):
            self.skipped_lines += 1  # a row cut short (the run crashed mid-print)
            return []
        try:
            sample = self._row(cells)
        except ValueError:
            self.skipped_lines += 1
            return []
        return [sample] if sample is not None else []

    def _new_cycle(self) -> None:
        if self._seen:
            self._cycle += 1
        self._seen = set()
        self._last_gpu = -1

    def _row(self, cells: list[str]) -> ProcessSample | None:
        assert self._columns is not None
        row = dict(zip(self._columns, cells, strict=True))
        gpu = int(row["gpu"])
        pid = None if row.get("pid", "-") == "-" else int(row["pid"])
        stamp = dmon_timestamp(row.get("date"), row.get("time"))
        if (gpu < self._last_gpu or (gpu, pid) in self._seen
                or (stamp is not None and self._last_time is not None and stamp != self._last_time)):
            self._new_cycle()
        self._seen.add((gpu, pid))
        self._last_gpu, self._last_time = gpu, stamp
        if pid is None:
            return None  # an idle GPU's row of dashes: no process
        kind = row.get("type", "-")
        if kind != "-" and not _TYPE.match(kind):
            raise ValueError(f"not a process type: {kind!r}")
        fields: dict[str, Any] = {
            target: parse_number(row[column]) for column, target in _PMON_FIELDS.items() if column in row
        }
        command = row.get("command", "-").strip()
        return ProcessSample(gpu_index=gpu, seq=self._cycle, timestamp=stamp, pid=pid,
                             type=None if kind == "-" else kind, command=None if command == "-" else command,
                             **fields)


def parse_pmon(text: str) -> tuple[list[ProcessSample], int]:
    """Process samples and skipped-line count of an ``nvidia-smi pmon`` capture."""
    parser = PmonParser()
    samples = parser.feed_text(text)
    return samples, parser.skipped_lines


def _shown(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:g}{unit}"


def processes_markdown(processes: Sequence[ProcessSample], *, max_rows: int = 20) -> str:
    """Which process held which GPU in the last snapshot (table or pmon cycle); ``""`` when none.

    Why only the last: a heartbeat asks who holds the GPU *now*; earlier snapshots are in the samples.

    >>> print(processes_markdown([ProcessSample(gpu_index=1, seq=0, pid=7, type="C", command="python", fb_mib=512)]))
    <BLANKLINE>
    <BLANKLINE>
    processes in the last snapshot (seq 0): 1
    | GPU | pid | type | command | GPU memory | sm |
    |---|---|---|---|---|---|
    | 1 | 7 | C | python | 512 MiB | - |
    """
    if not processes:
        return ""
    last = max(p.seq for p in processes)
    rows = [p for p in processes if p.seq == last]
    shown = [[p.gpu_index, p.pid if p.pid is not None else "N/A", p.type or "-", p.command or "-",
              _shown(p.fb_mib, " MiB"), _shown(p.sm_pct, "%")] for p in rows[:max_rows]]
    more = f" ({len(rows) - max_rows} more not shown)" if len(rows) > max_rows else ""
    return (f"\n\nprocesses in the last snapshot (seq {last}): {len(rows)}{more}\n"
            + table(["GPU", "pid", "type", "command", "GPU memory", "sm"], shown))

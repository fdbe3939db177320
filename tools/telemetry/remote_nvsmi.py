"""GPU readings of a registered host (issue 17): ``nvidia-smi`` over ssh, and captures read on the box.

Why ``nvidia-smi --query-gpu`` and not NVML: NVML is a library in *this* process; on a box reached by ssh
the one tool every NVIDIA driver install ships is ``nvidia-smi``, and its ``--query-gpu`` CSV is the format
we already parse (:class:`~.nvsmi.QueryCsvParser`). The answer has the shape of the local NVML snapshot
(:class:`~.nvml.NvmlSnapshot`) where the CSV has the field, with ``source: nvidia-smi`` and the host;
what only NVML reads (reserved memory, the throttle bitmask, per-GPU processes) stays empty, and
``throttle_reasons`` comes from the CSV's ``clocks_event_reasons.active`` mask.

A box without ``nvidia-smi``, or whose ``nvidia-smi`` fails (no driver, no device), is ``available: false``
with ``answer.kind = no_gpu`` and nvidia-smi's own last line; a box that does not answer raises
:class:`~gpu_preflight.tools.hosts.remotefile.RemoteFileUnreachable` (the host's fault, not the GPU's).
"""

from __future__ import annotations

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.hosts.faults import classify, last_line
from gpu_preflight.tools.hosts.registry import get_host
from gpu_preflight.tools.hosts.remotefile import MAX_READ_BYTES, RemoteFileUnreachable, read_remote
from gpu_preflight.tools.hosts.ssh import DEFAULT_TIMEOUT_S, call

from .ingest import ingest
from .models import IngestResult
from .nvml import NvmlGpuReading, NvmlSnapshot
from .nvml_errors import NvmlAnswer
from .nvsmi import QueryCsvParser

QUERY_COLUMNS = ("index", "name", "uuid", "utilization.gpu", "utilization.memory", "memory.used", "memory.total",
                 "power.draw", "power.limit", "temperature.gpu", "clocks.sm", "clocks.mem", "fan.speed",
                 "clocks_event_reasons.active", "driver_version")
"""Every ``--query-gpu`` field the NVML snapshot has a place for (``driver_version`` is read off the rows)."""
_MARK = "PF-SMI"
_SCRIPT = (f'command -v nvidia-smi >/dev/null 2>&1 || {{ echo "{_MARK} missing"; exit 0; }}; '
           'out=$(nvidia-smi --query-gpu="$1" --format=csv,noheader,nounits 2>&1); rc=$?; '
           f'echo "{_MARK} rc $rc"; printf "%s\\n" "$out"')


def parse_query(text: str, host: str) -> NvmlSnapshot:
    """The snapshot of the ``QUERY_COLUMNS`` rows in ``text`` (what the box's nvidia-smi printed).

    >>> row = "0, NVIDIA H100 80GB HBM3, GPU-1a2b3c4d-0000, 97, 41, 61234, 81559, 612.40, 700.00, 61, 1980, "
    >>> row += "2619, [N/A], 0x0000000000000000, 550.54.15"
    >>> snap = parse_query(row, "box")
    >>> (snap.source, snap.driver_version, snap.gpus[0].gpu_util_pct, snap.gpus[0].mem_used_mib)
    ('nvidia-smi', '550.54.15', 97.0, 61234.0)
    """
    parser = QueryCsvParser(columns=QUERY_COLUMNS)
    rows = [line for line in text.splitlines() if line.strip()]
    gpus: list[NvmlGpuReading] = []
    driver: str | None = None
    for row in rows:
        for sample in parser.feed(row):
            cells = [c.strip() for c in row.split(",")]
            gpus.append(NvmlGpuReading(**sample.model_dump(), uuid=cells[2] or None))
            driver = cells[-1] or driver
    if rows and not gpus:
        return _no_gpu(host, f"nvidia-smi printed no GPU row we could read ({last_line(text)})")
    return NvmlSnapshot(available=True, driver_version=driver, gpus=gpus, source="nvidia-smi", host=host)


def _no_gpu(host: str, why: str) -> NvmlSnapshot:
    answer = NvmlAnswer(error_class="nvidia-smi", code=None, kind="no_gpu", run_killing=False,
                        message=f"no GPU readings on {host}: {why}")
    return NvmlSnapshot(available=False, answer=answer, source="nvidia-smi", host=host)


def remote_gpu_snapshot(host_name: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> NvmlSnapshot:
    """One ``nvidia-smi --query-gpu`` on registered host ``host_name`` (one ssh call), as an NVML snapshot."""
    host = get_host(host_name, field="host")
    done = call(host, ["sh", "-c", _SCRIPT, "pf-smi", ",".join(QUERY_COLUMNS)], timeout_s=timeout_s)
    fault = classify(done, host.name)
    if fault is not None:
        raise RemoteFileUnreachable(host.name, fault.status, fault.reason)
    head, _, body = done.stdout.partition("\n")
    words = head.split()
    if words[:2] == [_MARK, "missing"]:
        return _no_gpu(host.name, "no nvidia-smi on the box")
    if words[:2] != [_MARK, "rc"] or len(words) != 3:
        raise PreflightError("host", host.name, "a POSIX sh on the box", f"status {done.rc}: "
                             f"{last_line(done.stderr) or 'no answer we understand'}")
    if words[2] != "0":
        return _no_gpu(host.name, f"nvidia-smi failed (status {words[2]}): {last_line(body) or 'no output'}")
    return parse_query(body, host.name)


def ingest_remote(host_name: str, path: str, *, fmt: str | None = None, regex: str | None = None,
                  columns: list[str] | str | None = None, field: str = "path") -> IngestResult:
    """:func:`.ingest.ingest` of a capture or log at ``path`` on registered host ``host_name`` (its first 32 MiB)."""
    found = read_remote(get_host(host_name, field="host"), path, offset_bytes=0, field=field)
    assert found is not None  # must_exist: a missing file was refused naming the path on the host
    if not found.to_end:
        raise PreflightError(field, f"{path} on {host_name}", f"a capture of at most {MAX_READ_BYTES:,} bytes",
                             f"it holds {found.size_bytes:,}: cut it on the box (tail -c) first")
    text = found.data.decode("utf-8", "replace")
    text += "" if "\n" in text else "\n"  # one line is never taken for a file name here (ingest.read_text)
    return ingest(text, fmt=fmt, regex=regex, columns=columns, field=field)

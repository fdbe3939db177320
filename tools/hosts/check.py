"""``hosts check``: can we reach the box, how fast, has it tmux, which GPUs, in one ssh round trip.

One round trip on purpose: on a cold host that trip is the connection set-up (and leaves the master
connection open for what follows); on a warm one it is the latency a dispatch will pay per command.
The probe is a fixed script run as ``sh -c SCRIPT`` (quoted by the runner like every argv); its sections
are marked so a login banner or a noisy ``.bashrc`` on the box cannot be mistaken for an answer.

``gpus`` comes from ``nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader,nounits``
(``memory.total`` in MiB); where nvidia-smi is absent or fails, ``gpus`` is empty and ``status`` is
``no_gpu`` with nvidia-smi's own first line as the reason.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from .faults import HostStatus, classify, last_line
from .registry import Host, get_host
from .ssh import DEFAULT_TIMEOUT_S, call

_MARK = "@@preflight-"
PROBE_SCRIPT = (
    f"echo {_MARK}tmux; if command -v tmux >/dev/null 2>&1; then tmux -V 2>&1; fi; "
    f"echo {_MARK}gpus; if command -v nvidia-smi >/dev/null 2>&1; then "
    "nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader,nounits 2>&1; "
    f"echo {_MARK}nvsmi-rc $?; else echo {_MARK}nvsmi-rc missing; fi"
)


class GpuInfo(BaseModel):
    index: int
    name: str
    memory_total_mib: int | None = Field(description="nvidia-smi memory.total, MiB (None where [N/A]).")


class HostCheck(BaseModel):
    """The contract of ``preflight hosts check NAME --json`` (issue 17) plus ``status``."""

    name: str
    reachable: bool
    latency_ms: float | None = Field(description="Wall time of the probe's ssh round trip, connection set-up "
                                     "included when no master connection was open.")
    tmux_version: str | None = Field(description="As `tmux -V` prints it, without 'tmux '; None if missing.")
    gpus: list[GpuInfo]
    error: str | None = Field(description="One line: why the host is not fully usable; None when status is ok.")
    status: HostStatus


def parse_gpus(text: str) -> list[GpuInfo]:
    """Rows of ``--query-gpu=index,name,memory.total --format=csv,noheader,nounits``.

    >>> [g.name for g in parse_gpus("0, NVIDIA H100 80GB HBM3, 81559\\n1, NVIDIA H100 80GB HBM3, [N/A]\\n")]
    ['NVIDIA H100 80GB HBM3', 'NVIDIA H100 80GB HBM3']
    >>> parse_gpus("0, NVIDIA A10G, 23028")[0].memory_total_mib
    23028
    """
    gpus: list[GpuInfo] = []
    for line in text.splitlines():
        index, _, rest = line.partition(",")
        name, _, memory = rest.rpartition(",")
        if not index.strip().isdigit() or not name.strip():
            continue
        mem = memory.strip()
        gpus.append(GpuInfo(index=int(index), name=name.strip(), memory_total_mib=int(mem) if mem.isdigit() else None))
    return gpus


def _sections(stdout: str) -> dict[str, str]:
    found: dict[str, list[str]] = {}
    current: str | None = None
    for line in stdout.splitlines():
        if line.startswith(_MARK):
            head, _, tail = line[len(_MARK):].partition(" ")
            current = head
            found.setdefault(head, [])
            if tail:
                found[head].append(tail)
        elif current is not None:
            found[current].append(line)
    return {key: "\n".join(lines) for key, lines in found.items()}


def check(host: Host, timeout_s: float = DEFAULT_TIMEOUT_S) -> HostCheck:
    """Probe ``host`` once (see the module docstring)."""
    done = call(host, ["sh", "-c", PROBE_SCRIPT], timeout_s)
    fault = classify(done, host.name)
    if fault is not None:
        return HostCheck(name=host.name, reachable=False, latency_ms=None, tmux_version=None, gpus=[],
                         error=fault.reason, status=fault.status)
    parts = _sections(done.stdout)
    if "nvsmi-rc" not in parts:  # the script did not run through (no sh on the box?)
        return HostCheck(name=host.name, reachable=True, latency_ms=round(done.elapsed_ms, 1), tmux_version=None,
                         gpus=[], error=f"the probe did not run (status {done.rc}): {last_line(done.stderr)}",
                         status="ssh_error")
    tmux = parts.get("tmux", "").strip()
    tmux_version = tmux.removeprefix("tmux ").strip() if tmux.startswith("tmux ") else None
    gpus = parse_gpus(parts.get("gpus", "")) if parts["nvsmi-rc"].strip() == "0" else []
    problems: list[tuple[HostStatus, str]] = []
    if tmux_version is None:
        problems.append(("tmux_missing", f"tmux is not installed on {host.name} (apt-get install -y tmux there)"))
    if not gpus:
        rc = parts["nvsmi-rc"].strip()
        why = ("no nvidia-smi on the box" if rc == "missing"
               else f"nvidia-smi failed (status {rc}): {last_line(parts.get('gpus', '')) or 'no output'}")
        problems.append(("no_gpu", f"{why}; no GPU visible on {host.name}"))
    return HostCheck(name=host.name, reachable=True, latency_ms=round(done.elapsed_ms, 1), tmux_version=tmux_version,
                     gpus=gpus, error="; ".join(text for _, text in problems) or None,
                     status=problems[0][0] if problems else "ok")


def check_host(name: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> HostCheck:
    """Check the registered host ``name`` (refused, naming the field, when it is not registered)."""
    return check(get_host(name), timeout_s)

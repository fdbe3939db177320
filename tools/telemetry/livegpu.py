"""The live GPU reading of a run's check: the GPUs of the box the run is on, or this machine's (issue 17).

Why not always NVML here: a run recorded on a host trains on that box's GPUs; the agent's machine may
have none, or other ones, so ``run_check(live_gpu=True)``, ``preflight check --live-gpu`` and ``watch
--live-gpu`` of such a run read the box with ``nvidia-smi --query-gpu`` (:mod:`.remote_nvsmi`, one ssh
call on the warm connection). A run without a host reads NVML here, as before.

The readings join the GPU samples the triggers fold into windows (the same path as an ``--nvsmi``
capture), stamped with this machine's clock when the answer came back, like the NVML sampler's. A box
without ``nvidia-smi`` or a working driver (``no_gpu``), or a box that does not answer, is a note: the
check still judges the run from its log and heartbeat.
"""

from __future__ import annotations

from datetime import datetime

from gpu_preflight.tools.hosts.remotefile import RemoteFileUnreachable

from .models import GpuSample
from .nvml import NvmlSnapshot, gpu_snapshot
from .remote_nvsmi import remote_gpu_snapshot


def run_host(run_id: str) -> str | None:
    """The host run ``run_id`` was launched on (None: this machine, or no dispatcher to record it)."""
    from .runcheck import dispatch_module

    dispatch = dispatch_module()
    return None if dispatch is None else dispatch.get_run(run_id).host


def live_reading(host: str | None, notes: list[str]) -> tuple[NvmlSnapshot | None, list[GpuSample]]:
    """One reading of ``host``'s GPUs (None: NVML here) and its per-GPU samples; why there are none goes to
    ``notes``. The snapshot is None only when the box did not answer."""
    if host is None:
        snap = gpu_snapshot()
    else:
        try:
            snap = remote_gpu_snapshot(host)
        except RemoteFileUnreachable as exc:
            notes.append(f"live GPU on {exc.host} not read: {exc.status}: {exc.reason}")
            return None, []
    if not snap.available:
        why = snap.answer.message if snap.answer is not None else "no GPU readings"
        notes.append(f"live GPU: {why}")
        return snap, []
    stamp = datetime.now().isoformat(timespec="milliseconds")
    return snap, [g if g.timestamp else g.model_copy(update={"timestamp": stamp}) for g in snap.gpus]

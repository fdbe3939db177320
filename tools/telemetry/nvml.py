"""Live GPU readings through NVML (``nvidia-ml-py``, module ``pynvml``): thin, real, init once.

Why NVML and not ``nvidia-smi`` in a loop: one in-process NVML sample costs well under a
millisecond, a ``nvidia-smi`` call forks a process and re-initialises the driver (tens of ms,
up to 0.6 s with persistence mode off); ``bench/telemetry.py`` measures both on the same box.

Readings follow nvidia-smi's meaning so live and recorded data compare: memory comes from the
v2 memory API (v1 ``used`` also counts driver-reserved memory, hundreds of MiB to ~1 GiB on an
idle A100, which nvidia-smi does not); power is watts (NVML reports milliwatts). A reading the
GPU does not support is ``None``; a GPU that fell off the bus raises
:class:`~gpu_preflight.tools.telemetry.nvml_errors.NvmlUnavailable`, because the run on it is dead.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal, TypeVar

import pynvml  # type: ignore[import-untyped]  # nvidia-ml-py ships no type hints
from pydantic import BaseModel, ConfigDict, Field

from .models import GpuSample
from .nvml_errors import NvmlAnswer, NvmlUnavailable, explain_nvml_error
from .throttle import decode_throttle_mask

_MIB = 1024 * 1024
_INIT_LOCK = threading.Lock()
_init_count = 0
T = TypeVar("T")


class GpuProcess(BaseModel):
    """A compute process on a GPU. PIDs are host-namespace PIDs: inside a container they may not match."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pid: int
    used_mib: float | None


class NvmlGpuReading(GpuSample):
    """A :class:`GpuSample` plus what only NVML knows: UUID, reserved memory, throttle mask, processes."""

    uuid: str | None = None
    mem_reserved_mib: float | None = None
    throttle_mask: int | None = None
    processes: list[GpuProcess] = Field(default_factory=list)


class NvmlSnapshot(BaseModel):
    """One reading of every GPU, or the answer why there is none (``available`` false)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    available: bool
    driver_version: str | None = None
    cuda_driver_version: int | None = None
    gpus: list[NvmlGpuReading] = []
    answer: NvmlAnswer | None = None
    source: Literal["nvml", "nvidia-smi"] = "nvml"
    host: str | None = None


def _acquire() -> None:
    """``nvmlInit`` once per process, however many sessions are open (reference counted)."""
    global _init_count
    with _INIT_LOCK:
        if _init_count == 0:
            try:
                pynvml.nvmlInit()
            except Exception as exc:
                raise NvmlUnavailable(explain_nvml_error(exc)) from exc
        _init_count += 1


def _release() -> None:
    global _init_count
    with _INIT_LOCK:
        if _init_count == 0:
            return
        _init_count -= 1
        if _init_count == 0:
            with contextlib.suppress(pynvml.NVMLError):  # a lost GPU's library: nothing left to release
                pynvml.nvmlShutdown()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _optional(call: Callable[[], T]) -> T | None:
    """A reading that may be unsupported: ``None`` for those errors; a lost GPU still raises."""
    try:
        return call()
    except pynvml.NVMLError as exc:
        answer = explain_nvml_error(exc)
        if answer.run_killing:
            raise NvmlUnavailable(answer) from exc
        return None
    except AttributeError:
        return None  # bindings older than the call (e.g. ClocksEventReasons before 12.535)


class Nvml:
    """An open NVML session with cached device handles; use as a context manager or :meth:`close`."""

    def __init__(self) -> None:
        _acquire()
        self._closed = False
        try:
            count = int(pynvml.nvmlDeviceGetCount())
            self._handles: list[Any] = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except pynvml.NVMLError as exc:
            _release()
            self._closed = True
            raise NvmlUnavailable(explain_nvml_error(exc)) from exc
        self._seq: dict[int, int] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> Nvml:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release this session's share of NVML (``nvmlShutdown`` when it was the last)."""
        if not self._closed:
            self._closed = True
            _release()

    @property
    def gpu_count(self) -> int:
        """GPUs in NVML order (PCI bus order, not ``CUDA_VISIBLE_DEVICES`` order)."""
        return len(self._handles)

    def driver_version(self) -> str | None:
        """The kernel driver version string, e.g. ``"550.54.15"``."""
        return _optional(lambda: _text(pynvml.nvmlSystemGetDriverVersion()))

    def cuda_driver_version(self) -> int | None:
        """The CUDA version the driver supports, as NVML encodes it (12020 = 12.2)."""
        return _optional(lambda: int(pynvml.nvmlSystemGetCudaDriverVersion()))

    def _memory(self, handle: Any) -> tuple[float | None, float | None, float | None]:
        """(used, total, reserved) MiB from the v2 API, falling back to v1 on old drivers."""
        info = _optional(lambda: pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2))
        if info is not None:
            return info.used / _MIB, info.total / _MIB, info.reserved / _MIB
        info = _optional(lambda: pynvml.nvmlDeviceGetMemoryInfo(handle))
        if info is not None:
            return info.used / _MIB, info.total / _MIB, None
        return None, None, None

    def _processes(self, handle: Any) -> list[GpuProcess]:
        found = _optional(lambda: pynvml.nvmlDeviceGetComputeRunningProcesses(handle)) or []
        out = []
        for proc in found:
            used = getattr(proc, "usedGpuMemory", None)
            out.append(GpuProcess(pid=int(proc.pid), used_mib=used / _MIB if isinstance(used, int) else None))
        return out

    def read(self, index: int) -> NvmlGpuReading:
        """Every reading of GPU ``index``; raises :class:`NvmlUnavailable` if the GPU is lost."""
        handle = self._handles[index]
        util = _optional(lambda: pynvml.nvmlDeviceGetUtilizationRates(handle))
        used, total, reserved = self._memory(handle)
        power_mw = _optional(lambda: pynvml.nvmlDeviceGetPowerUsage(handle))
        limit_mw = _optional(lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(handle))
        mask = _optional(lambda: int(pynvml.nvmlDeviceGetCurrentClocksEventReasons(handle)))
        if mask is None:
            mask = _optional(lambda: int(pynvml.nvmlDeviceGetCurrentClocksThrottleReasons(handle)))
        with self._lock:
            seq = self._seq.get(index, 0)
            self._seq[index] = seq + 1
        return NvmlGpuReading(
            gpu_index=index,
            seq=seq,
            timestamp=datetime.now().isoformat(timespec="milliseconds"),
            name=_optional(lambda: _text(pynvml.nvmlDeviceGetName(handle))),
            uuid=_optional(lambda: _text(pynvml.nvmlDeviceGetUUID(handle))),
            gpu_util_pct=float(util.gpu) if util is not None else None,
            mem_util_pct=float(util.memory) if util is not None else None,
            mem_used_mib=used,
            mem_total_mib=total,
            mem_reserved_mib=reserved,
            power_w=power_mw / 1000 if power_mw is not None else None,
            power_limit_w=limit_mw / 1000 if limit_mw is not None else None,
            temp_c=_optional(lambda: float(pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU))),
            sm_clock_mhz=_optional(lambda: float(pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM))),
            mem_clock_mhz=_optional(lambda: float(pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM))),
            fan_pct=_optional(lambda: float(pynvml.nvmlDeviceGetFanSpeed(handle))),
            throttle_mask=mask,
            throttle_reasons=decode_throttle_mask(mask) if mask is not None else None,
            processes=self._processes(handle),
        )

    def sample(self) -> list[NvmlGpuReading]:
        """One reading of every GPU."""
        return [self.read(i) for i in range(self.gpu_count)]


def gpu_snapshot() -> NvmlSnapshot:
    """Open NVML, read every GPU once, close; an NVML failure becomes ``answer``, never an exception."""
    try:
        with Nvml() as nvml:
            return NvmlSnapshot(
                available=True,
                driver_version=nvml.driver_version(),
                cuda_driver_version=nvml.cuda_driver_version(),
                gpus=nvml.sample(),
            )
    except NvmlUnavailable as exc:
        return NvmlSnapshot(available=False, answer=exc.answer)

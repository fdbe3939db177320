"""Telemetry: recorded nvidia-smi logs, training logs and live NVML, folded into the playbook's checks
(pre-estimation §5 "Runtime Validation Loop"; run-calibrated Stages B-D and "Contradiction Triggers").

The pieces, in the order data flows through them:

- :func:`ingest` / :class:`LogTail`: text or a growing file -> :class:`GpuSample` or :class:`LogSample`;
- :func:`build_timeline` -> :func:`fold_windows`: samples on one clock, in fixed windows;
- :func:`assess`: the four contradiction triggers, the bottleneck class and the playbook's action;
- :func:`gpu_snapshot` / :class:`NvmlSampler`: live readings where the server runs beside the GPU;
- :mod:`.remotelog`, :mod:`.remote_nvsmi`: a run's log, a capture and ``nvidia-smi`` on a registered host (ssh).

Everything here is plain functions and pydantic models; the CLI and the MCP server wrap them.
"""

from __future__ import annotations

from .assess import PLAYBOOK_ACTIONS, Assessment, assess, assess_samples
from .bottleneck import Bottleneck, HostEvidence, classify_bottleneck
from .ingest import ALL_FORMATS, detect_format, ingest, make_parser
from .models import GpuSample, IngestFormat, IngestResult, LogSample
from .nvml import GpuProcess, Nvml, NvmlGpuReading, NvmlSnapshot, gpu_snapshot
from .nvml_errors import NO_DRIVER_MESSAGE, NvmlAnswer, NvmlUnavailable, explain_nvml_error
from .sampler import NvmlSampler
from .tail import LogTail, TailUpdate
from .timeline import Timeline, build_timeline
from .triggers import Prediction, TriggerConfig, TriggerResult
from .windows import Window, WindowSeries, fold_windows

__all__ = [
    "ALL_FORMATS",
    "NO_DRIVER_MESSAGE",
    "PLAYBOOK_ACTIONS",
    "Assessment",
    "Bottleneck",
    "GpuProcess",
    "GpuSample",
    "HostEvidence",
    "IngestFormat",
    "IngestResult",
    "LogSample",
    "LogTail",
    "Nvml",
    "NvmlAnswer",
    "NvmlGpuReading",
    "NvmlSampler",
    "NvmlSnapshot",
    "NvmlUnavailable",
    "Prediction",
    "TailUpdate",
    "Timeline",
    "TriggerConfig",
    "TriggerResult",
    "Window",
    "WindowSeries",
    "assess",
    "assess_samples",
    "build_timeline",
    "classify_bottleneck",
    "detect_format",
    "explain_nvml_error",
    "fold_windows",
    "gpu_snapshot",
    "ingest",
    "make_parser",
]

"""NVML backend: the no-driver path for real on this GPU-less host; the GPU path under ``-m gpu``.

Nothing is mocked: the error answers are built from pynvml's own exception classes (NVMLError(code)
maps to the same subclass the library raises), and the no-driver tests call the real nvmlInit.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pynvml  # type: ignore[import-untyped]
import pytest

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.telemetry import nvml as nvml_module
from gpu_preflight.tools.telemetry.nvml import Nvml, gpu_snapshot
from gpu_preflight.tools.telemetry.nvml_errors import NO_DRIVER_MESSAGE, NvmlUnavailable, explain_nvml_error
from gpu_preflight.tools.telemetry.sampler import NvmlSampler

BENCH = Path(__file__).parent.parent / "bench" / "telemetry.py"


def _nvml_works() -> bool:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


HAS_GPU = _nvml_works()
no_driver_only = pytest.mark.skipif(HAS_GPU, reason="NVML works here: the no-driver path cannot be exercised")
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="nvmlInit() failed: no NVIDIA driver on this host")


# --- error answers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error_class", "kind", "run_killing"),
    [
        (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "NVMLError_LibraryNotFound", "no_driver", False),
        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "NVMLError_DriverNotLoaded", "no_driver", False),
        (pynvml.NVML_ERROR_GPU_IS_LOST, "NVMLError_GpuIsLost", "gpu_lost", True),
        (pynvml.NVML_ERROR_RESET_REQUIRED, "NVMLError_ResetRequired", "reset_required", True),
        (pynvml.NVML_ERROR_GPU_NOT_FOUND, "NVMLError_GpuNotFound", "gpu_lost", True),
        (pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH, "NVMLError_LibRmVersionMismatch", "driver_mismatch", False),
        (pynvml.NVML_ERROR_NO_PERMISSION, "NVMLError_NoPermission", "no_permission", False),
        (pynvml.NVML_ERROR_NOT_SUPPORTED, "NVMLError_NotSupported", "not_supported", False),
        (pynvml.NVML_ERROR_FUNCTION_NOT_FOUND, "NVMLError_FunctionNotFound", "not_supported", False),
        (pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH, "NVMLError_ArgumentVersionMismatch", "not_supported", False),
        (pynvml.NVML_ERROR_TIMEOUT, "NVMLError_Timeout", "timeout", False),
        (pynvml.NVML_ERROR_UNINITIALIZED, "NVMLError_Uninitialized", "uninitialized", False),
        (pynvml.NVML_ERROR_UNKNOWN, "NVMLError_Unknown", "other", False),
    ],
)
def test_every_nvml_error_class_has_an_answer(code: int, error_class: str, kind: str, run_killing: bool) -> None:
    answer = explain_nvml_error(pynvml.NVMLError(code))
    assert (answer.error_class, answer.code, answer.kind, answer.run_killing) == (error_class, code, kind, run_killing)
    assert answer.message


def test_the_two_answers_the_issue_names() -> None:
    assert explain_nvml_error(pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)).message == NO_DRIVER_MESSAGE
    lost = explain_nvml_error(pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST))
    assert "fell off the bus" in lost.message and "run-killing" in lost.message


def test_library_mismatch_and_os_errors() -> None:
    assert explain_nvml_error(pynvml.NVMLLibraryMismatchError("x")).kind == "driver_mismatch"
    assert explain_nvml_error(OSError("libnvidia-ml.so.1: cannot open")).message == NO_DRIVER_MESSAGE
    assert explain_nvml_error(RuntimeError("boom")).message == "NVML failed: boom"


# --- no driver, for real ---------------------------------------------------------------------------


@no_driver_only
def test_session_without_driver_says_so() -> None:
    with pytest.raises(NvmlUnavailable) as err:
        Nvml()
    assert err.value.answer.kind == "no_driver"
    assert err.value.answer.error_class in {"NVMLError_LibraryNotFound", "NVMLError_DriverNotLoaded"}
    assert str(err.value) == NO_DRIVER_MESSAGE
    assert nvml_module._init_count == 0  # a failed init leaves nothing to shut down


@no_driver_only
def test_snapshot_without_driver_is_an_answer_not_an_exception() -> None:
    snap = gpu_snapshot()
    assert (snap.available, snap.gpus, snap.driver_version) == (False, [], None)
    assert snap.answer is not None and snap.answer.message == NO_DRIVER_MESSAGE


@no_driver_only
def test_sampler_without_driver_refuses_to_start_and_stops_cleanly() -> None:
    sampler = NvmlSampler()
    with pytest.raises(NvmlUnavailable):
        sampler.start()
    assert not sampler.running
    sampler.stop()  # safe after a failed start
    assert sampler.readings() == []


@no_driver_only
def test_bench_says_no_gpu_and_exits_zero() -> None:
    done = subprocess.run([sys.executable, str(BENCH), "--samples", "3"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout.startswith("no GPU here:")


def test_sampler_interval_checked() -> None:
    with pytest.raises(PreflightError) as err:
        NvmlSampler(interval_s=0.5)
    assert err.value.field == "interval_s"
    with pytest.raises(PreflightError):
        NvmlSampler(max_readings=0)
    assert NvmlSampler().interval_s == 10.0


# --- a real GPU ----------------------------------------------------------------------------------


@pytest.mark.gpu
@needs_gpu
def test_snapshot_reads_every_gpu() -> None:
    snap = gpu_snapshot()
    assert snap.available and snap.answer is None and snap.gpus
    assert snap.driver_version and snap.cuda_driver_version
    for gpu in snap.gpus:
        assert gpu.name and gpu.uuid and gpu.timestamp
        assert gpu.mem_total_mib is not None and gpu.mem_total_mib > 1000
        assert gpu.mem_used_mib is not None and 0 <= gpu.mem_used_mib <= gpu.mem_total_mib
        assert gpu.mem_reserved_mib is not None  # the v2 API answered
        assert gpu.gpu_util_pct is not None and 0 <= gpu.gpu_util_pct <= 100
        assert gpu.power_w is not None and gpu.power_w > 0
        assert gpu.power_limit_w is not None and gpu.power_limit_w >= 50
        assert gpu.temp_c is not None and 0 < gpu.temp_c < 110
        assert gpu.sm_clock_mhz is not None and gpu.throttle_reasons is not None


@pytest.mark.gpu
@needs_gpu
def test_v2_used_excludes_reserved_like_nvidia_smi() -> None:
    with Nvml() as nvml:
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        v1 = pynvml.nvmlDeviceGetMemoryInfo(handle)
        reading = nvml.read(0)
    assert reading.mem_used_mib is not None and reading.mem_used_mib <= v1.used / 2**20


@pytest.mark.gpu
@needs_gpu
def test_sessions_share_one_init_and_count_readings() -> None:
    with Nvml() as first, Nvml() as second:
        assert nvml_module._init_count == 2
        assert [first.read(0).seq, first.read(0).seq, second.read(0).seq] == [0, 1, 0]
    assert nvml_module._init_count == 0


@pytest.mark.gpu
@needs_gpu
def test_sampler_collects_in_background_and_stops_fast() -> None:
    batches: list[int] = []
    sampler = NvmlSampler(interval_s=1.0, on_sample=lambda batch: batches.append(len(batch)))
    sampler.start()
    time.sleep(1.5)
    began = time.perf_counter()
    sampler.stop()
    assert time.perf_counter() - began < 1.0  # Event.wait, not sleep: no waiting out the interval
    assert not sampler.running and sampler.last_error is None
    assert len(batches) >= 2 and len(sampler.readings()) == sum(batches)

"""Every NVML failure as a clear answer: what happened, what to do, and whether the run is dead.

NVML raises one exception class per ``NVML_ERROR_*`` code. An agent watching a rented box must
tell three situations apart that all look like "telemetry failed": there is no driver here at
all (the server runs on a laptop: read a recorded nvidia-smi log instead), the GPU fell off the
bus (the training job on it is dead: stop paying), or the box is fine and one reading is simply
not supported on this GPU (leave that field null). :func:`explain_nvml_error` makes that call.

>>> import pynvml
>>> a = explain_nvml_error(pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND))
>>> a.kind, a.run_killing, a.message
('no_driver', False, 'no NVIDIA driver on this host: use a recorded nvidia-smi log')
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

NO_DRIVER_MESSAGE = "no NVIDIA driver on this host: use a recorded nvidia-smi log"

NvmlProblem = Literal[
    "no_driver",
    "gpu_lost",
    "reset_required",
    "driver_mismatch",
    "no_permission",
    "not_supported",
    "timeout",
    "uninitialized",
    "no_gpu",
    "other",
]

# NVML_ERROR_* codes (nvml.h; the same numbers pynvml exposes).
_UNINITIALIZED, _NOT_SUPPORTED, _NO_PERMISSION = 1, 3, 4
_DRIVER_NOT_LOADED, _TIMEOUT, _LIBRARY_NOT_FOUND, _FUNCTION_NOT_FOUND = 9, 10, 12, 13
_GPU_IS_LOST, _RESET_REQUIRED, _LIB_RM_VERSION_MISMATCH = 15, 16, 18
_GPU_NOT_FOUND = 28
_ARGUMENT_VERSION_MISMATCH = 25

_ANSWERS: dict[int, tuple[NvmlProblem, bool, str]] = {
    _LIBRARY_NOT_FOUND: ("no_driver", False, NO_DRIVER_MESSAGE),
    _DRIVER_NOT_LOADED: ("no_driver", False, NO_DRIVER_MESSAGE),
    _GPU_IS_LOST: (
        "gpu_lost",
        True,
        "the GPU fell off the bus (NVML: GPU is lost): a run-killing event; the job on it is dead or"
        " about to die, and only a host reset brings the GPU back: stop paying for this instance",
    ),
    _RESET_REQUIRED: (
        "reset_required",
        True,
        "the GPU needs a reset before further use (NVML: reset required): a run-killing event",
    ),
    _LIB_RM_VERSION_MISMATCH: (
        "driver_mismatch",
        False,
        "NVML library and kernel driver versions differ (driver upgraded without a reboot):"
        " reboot the host, or use a recorded nvidia-smi log",
    ),
    _NO_PERMISSION: (
        "no_permission",
        False,
        "NVML refused the query for lack of permission (common inside containers): the field is left null",
    ),
    _NOT_SUPPORTED: ("not_supported", False, "this GPU or driver does not report that reading: it is left null"),
    _FUNCTION_NOT_FOUND: (
        "not_supported",
        False,
        "the installed driver is older than this NVML call: the reading is left null",
    ),
    _ARGUMENT_VERSION_MISMATCH: (
        "not_supported",
        False,
        "the driver does not know this version of the NVML call: the reading is left null",
    ),
    _TIMEOUT: (
        "timeout",
        False,
        "NVML timed out: the driver is busy or hung; retry, and suspect the host if it repeats",
    ),
    _UNINITIALIZED: ("uninitialized", False, "NVML was used before nvmlInit (a bug in the caller)"),
    _GPU_NOT_FOUND: ("gpu_lost", True, "the GPU is no longer found by the driver: a run-killing event"),
}


class NvmlAnswer(BaseModel):
    """One NVML failure explained: the class NVML raised, its code, the kind, and what to do."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    error_class: str
    code: int | None
    kind: NvmlProblem
    run_killing: bool
    message: str


class NvmlUnavailable(RuntimeError):
    """Raised when NVML cannot give readings at all (no driver, lost GPU); carries the answer."""

    def __init__(self, answer: NvmlAnswer) -> None:
        self.answer = answer
        super().__init__(answer.message)


def explain_nvml_error(exc: BaseException) -> NvmlAnswer:
    """Map any exception from NVML (or from loading it) to an :class:`NvmlAnswer`."""
    code = getattr(exc, "value", None)
    name = type(exc).__name__
    if isinstance(code, int) and code in _ANSWERS:
        kind, killing, message = _ANSWERS[code]
        return NvmlAnswer(error_class=name, code=code, kind=kind, run_killing=killing, message=message)
    if name == "NVMLLibraryMismatchError":
        return NvmlAnswer(
            error_class=name,
            code=None,
            kind="driver_mismatch",
            run_killing=False,
            message="the NVML library does not match the Python bindings' expectations: update the driver"
            " or nvidia-ml-py",
        )
    if isinstance(exc, OSError):
        return NvmlAnswer(error_class=name, code=None, kind="no_driver", run_killing=False, message=NO_DRIVER_MESSAGE)
    detail = str(exc) or name
    return NvmlAnswer(
        error_class=name,
        code=code if isinstance(code, int) else None,
        kind="other",
        run_killing=False,
        message=f"NVML failed: {detail}",
    )

"""The GPU catalogue (``data/gpus.toml``) and how a ``gpu`` argument becomes numbers.

Why a catalogue at all: Vast's ``total_flops`` is FP32 CUDA-core TFLOPS summed over an offer's
GPUs, a 10-15x understatement of what bf16 training runs on, and its ``gpu_mem_bw`` is a noisy
measurement. Dense tensor peaks with FP32 accumulate come from vendor datasheets, one source per
row; Vast's own figures are used only for GPUs the catalogue lacks, and the answer says so.

Imported by the offers and telemetry rooms on purpose: one catalogue of peak figures, so an option row
and a calibration's switch advice read the same numbers for the same GPU.
"""

from __future__ import annotations

import difflib
import tomllib
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gpu_preflight.tools.common.errors import PreflightError, from_validation_error
from gpu_preflight.tools.common.nextstep import call
from gpu_preflight.tools.estimator.gpunames import describe, gpu_key, match_gpu, memory_hint_gb

MIB_TO_GB = 1024 * 1024 / 1e9
TflopsSource = Literal["catalogue", "explicit", "vast_fp32"]


class GpuVariant(BaseModel):
    gpu_ram_gb: float
    hbm_bw_gbps: float | None = None
    memory_total_mib: int | None = None


class GpuModel(BaseModel):
    """One catalogue row, with its datasheet source."""

    model_config = ConfigDict(extra="allow")

    name: str
    aliases: list[str] = Field(default_factory=list)
    vendor: str = "nvidia"
    architecture: str = "unknown"
    compute_capability: str | None = None
    gpu_ram_gb: float
    memory_total_mib: int | None = None
    bf16_tflops: float | None = None
    fp16_tflops: float | None = None
    fp8_tflops: float | None = None
    tf32_tflops: float | None = None
    fp32_tflops: float
    hbm_bw_gbps: float
    interconnect: str | None = None
    nvlink_gbps: float | None = None
    pcie_gen: int | None = None
    tdp_w: float | None = None
    source: str
    variants: list[GpuVariant] = Field(default_factory=list)

    def memory_options_gb(self) -> list[float]:
        """The memory sizes this row comes in (its variants, else its one size), GB."""
        return sorted({v.gpu_ram_gb for v in self.variants}) or [self.gpu_ram_gb]


class GpuSpec(BaseModel):
    """A GPU given by its figures instead of a catalogue name (per GPU, not per offer)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(default="custom", max_length=100)
    gpu_ram_gb: Annotated[float, Field(gt=0, le=10_000)]
    bf16_tflops: Annotated[float, Field(gt=0, le=1e6)]
    hbm_bw_gbps: Annotated[float, Field(gt=0, le=1e6)]
    fp16_tflops: Annotated[float, Field(gt=0, le=1e6)] | None = None
    fp32_tflops: Annotated[float, Field(gt=0, le=1e6)] | None = None
    architecture: str = "unknown"
    cpu_ram_gb: Annotated[float, Field(gt=0, le=1e6)] | None = Field(default=None, description="Host RAM available.")
    disk_gb: Annotated[float, Field(gt=0, le=1e7)] | None = None
    inet_down_mbps: Annotated[float, Field(gt=0, le=1e7)] | None = None


class ResolvedGpu(BaseModel):
    """Per-GPU figures the estimators use, and where each came from."""

    name: str
    architecture: str
    gpu_ram_gb: float = Field(description="Usable memory per GPU in GB (nvidia-smi memory.total where known).")
    bf16_tflops: float | None
    fp16_tflops: float | None
    fp32_tflops: float | None
    hbm_bw_gbps: float
    fp8_tflops: float | None = Field(default=None, description="Dense FP8 tensor peak; None: no FP8 tensor cores.")
    pcie_measured_gbps: float | None = Field(
        default=None, description="Host<->GPU bandwidth an offer measured (Vast pcie_bw), for the comm term.")
    tflops_source: TflopsSource
    source: str
    cpu_ram_gb: float | None = None
    disk_gb: float | None = None
    inet_down_mbps: float | None = None

    def peak_tflops(self, precision: str) -> tuple[float, str]:
        """Dense peak for the training precision, and a note when a fallback was needed. fp8 runs on the bf16
        peak: its float8 matmuls are a measured speed-up on top (:data:`.throughput.FP8_SPEEDUP`)."""
        if precision == "fp8":
            precision = "bf16"
        if precision == "bf16" and self.bf16_tflops:
            return self.bf16_tflops, ""
        if precision == "bf16" and self.fp16_tflops:
            return self.fp32_tflops or self.fp16_tflops, (
                f"{self.name} has no bf16 tensor cores: bf16 runs on a slow path; train in fp16 instead"
            )
        if precision == "fp16" and (self.fp16_tflops or self.bf16_tflops):
            return float(self.fp16_tflops or self.bf16_tflops or 0.0), ""
        if self.fp32_tflops:
            note = "" if precision == "fp32" else f"no {precision} tensor figure for {self.name}: used FP32"
            return self.fp32_tflops, note
        return float(self.bf16_tflops or self.fp16_tflops or 0.0), ""


@lru_cache(maxsize=1)
def catalogue() -> list[GpuModel]:
    raw = resources.files("gpu_preflight.tools.estimator").joinpath("data/gpus.toml").read_bytes()
    return [GpuModel.model_validate(row) for row in tomllib.loads(raw.decode("utf-8")).get("gpu", [])]


@lru_cache(maxsize=512)
def gpu_candidates(name: str) -> tuple[GpuModel, ...]:
    """The rows a GPU name may mean (see :mod:`.gpunames`): one, several (the caller must pick), or none."""
    found = match_gpu(name, catalogue())
    return tuple(row for row in catalogue() if any(row is f for f in found))  # catalogue order


def lookup_gpu(name: str) -> GpuModel | None:
    """The catalogue row a Vast, nvidia-smi or marketing name means; None when unknown or ambiguous."""
    found = gpu_candidates(name)
    return found[0] if len(found) == 1 else None


def find_gpu(name: str, field: str = "gpu") -> GpuModel:
    """:func:`lookup_gpu`, or a refusal listing the candidates (ambiguous) or the closest names (unknown)."""
    found = gpu_candidates(name)
    if len(found) == 1:
        return found[0]
    objects = "or an object with gpu_ram_gb, bf16_tflops, hbm_bw_gbps"
    if found:
        raise PreflightError(field, name, f"one of {describe(found)}", f"{name!r} names several cards; say which")
    keys = {"".join(gpu_key(k)): row.name for row in catalogue() for k in [row.name, *row.aliases]}
    close = difflib.get_close_matches("".join(gpu_key(name)), list(keys), n=8, cutoff=0.6)
    near = list(dict.fromkeys(keys[k] for k in close))[:4]
    hint = f"closest: {', '.join(near)}" if near else ""
    raise PreflightError(field, name, f"a catalogue name (see {call('gpus')}) {objects}", hint)


def price_class(row: GpuModel) -> str:
    """consumer (GeForce, Titan), workstation (RTX A/Ada/PRO, Quadro) or datacenter: rental $/h rises in
    that order on every market we read, so an agent can shortlist before it asks for real offers."""
    key = gpu_key(row.name)
    if key[:1] in (("gtx",), ("titan",)) or (key[:1] == ("rtx",) and len(key) > 1 and key[1][:1].isdigit()
                                            and not key[1].endswith("ada")):
        return "consumer"
    if key[:1] in (("q",), ("quadro",)) or key[:2] == ("rtx", "pro") or (key[:1] == ("rtx",) and len(key) > 1):
        return "workstation"
    return "datacenter"


def gpu_index_rows() -> list[list[Any]]:
    """One short row per GPU for the ``preflight://gpus`` index: [name, VRAM GB, dense bf16 TFLOPS, class].

    >>> [r for r in gpu_index_rows() if r[0] == "H100 SXM"]
    [['H100 SXM', 80.0, 989.4, 'datacenter']]
    """
    return [[row.name, row.gpu_ram_gb, row.bf16_tflops, price_class(row)] for row in catalogue()]


def gpu_names() -> list[str]:
    return [row.name for row in catalogue()]


def from_catalogue(row: GpuModel, gpu_ram_gb_hint: float | None = None) -> ResolvedGpu:
    """Catalogue figures; ``gpu_ram_gb_hint`` (e.g. an offer's VRAM) picks the memory variant."""
    ram_gb, bw, mib = row.gpu_ram_gb, row.hbm_bw_gbps, row.memory_total_mib
    if gpu_ram_gb_hint is not None and row.variants:
        best = min(row.variants, key=lambda v: abs(v.gpu_ram_gb - gpu_ram_gb_hint))
        ram_gb, bw, mib = best.gpu_ram_gb, best.hbm_bw_gbps or bw, best.memory_total_mib
    usable = mib * MIB_TO_GB if mib else ram_gb
    return ResolvedGpu(
        name=row.name, architecture=row.architecture, gpu_ram_gb=round(usable, 2), bf16_tflops=row.bf16_tflops,
        fp16_tflops=row.fp16_tflops, fp32_tflops=row.fp32_tflops, hbm_bw_gbps=bw, fp8_tflops=row.fp8_tflops,
        tflops_source="catalogue",
        source=row.source,
    )


def resolve_gpu(gpu: str | dict[str, Any] | GpuSpec | ResolvedGpu, field: str = "gpu") -> ResolvedGpu:
    """A catalogue name, or an object with explicit ``gpu_ram_gb``, ``bf16_tflops``, ``hbm_bw_gbps``."""
    if isinstance(gpu, ResolvedGpu):
        return gpu
    if isinstance(gpu, str):
        return from_catalogue(find_gpu(gpu, field), memory_hint_gb(gpu))
    if isinstance(gpu, dict):
        try:
            gpu = GpuSpec.model_validate(gpu)
        except ValidationError as exc:
            raise from_validation_error(exc, field) from None
    if not isinstance(gpu, GpuSpec):
        raise PreflightError(field, gpu, "a catalogue name or an object with gpu_ram_gb, bf16_tflops, hbm_bw_gbps")
    return ResolvedGpu(
        name=gpu.name, architecture=gpu.architecture, gpu_ram_gb=gpu.gpu_ram_gb, bf16_tflops=gpu.bf16_tflops,
        fp16_tflops=gpu.fp16_tflops or gpu.bf16_tflops, fp32_tflops=gpu.fp32_tflops, hbm_bw_gbps=gpu.hbm_bw_gbps,
        tflops_source="explicit", source="given by the caller", cpu_ram_gb=gpu.cpu_ram_gb, disk_gb=gpu.disk_gb,
        inet_down_mbps=gpu.inet_down_mbps,
    )

"""The GPU catalogue (``data/gpus.toml``) and how a ``gpu`` argument becomes numbers.

Why a catalogue at all: Vast's ``total_flops`` is FP32 CUDA-core TFLOPS summed over an offer's
GPUs, a 10-15x understatement of what bf16 training runs on, and its ``gpu_mem_bw`` is a noisy
measurement. Dense tensor peaks with FP32 accumulate come from vendor datasheets, one source per
row; Vast's own figures are used only for GPUs the catalogue lacks, and the answer says so.

Imported by the offers and telemetry rooms on purpose: one catalogue of peak figures, so an option row
and a calibration's switch advice read the same numbers for the same GPU.
"""

from __future__ import annotations

import re
import tomllib
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gpu_preflight.tools.common.errors import PreflightError, from_validation_error

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
    tflops_source: TflopsSource
    source: str
    cpu_ram_gb: float | None = None
    disk_gb: float | None = None
    inet_down_mbps: float | None = None

    def peak_tflops(self, precision: str) -> tuple[float, str]:
        """Dense peak for the training precision, and a note when a fallback was needed."""
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


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


@lru_cache(maxsize=1)
def catalogue() -> list[GpuModel]:
    raw = resources.files("gpu_preflight.tools.estimator").joinpath("data/gpus.toml").read_bytes()
    return [GpuModel.model_validate(row) for row in tomllib.loads(raw.decode("utf-8")).get("gpu", [])]


@lru_cache(maxsize=1)
def _index() -> dict[str, GpuModel]:
    table: dict[str, GpuModel] = {}
    for row in catalogue():
        for key in [row.name, *row.aliases]:
            table.setdefault(_norm(key), row)
    return table


def lookup_gpu(name: str) -> GpuModel | None:
    """Catalogue row by Vast name or alias (case, spaces, dashes and underscores ignored)."""
    key = _norm(name)
    found = _index().get(key)
    if found is None and key.startswith("nvidia"):
        found = _index().get(key[len("nvidia") :])
    return found


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
        fp16_tflops=row.fp16_tflops, fp32_tflops=row.fp32_tflops, hbm_bw_gbps=bw, tflops_source="catalogue",
        source=row.source,
    )


def resolve_gpu(gpu: str | dict[str, Any] | GpuSpec | ResolvedGpu, field: str = "gpu") -> ResolvedGpu:
    """A catalogue name, or an object with explicit ``gpu_ram_gb``, ``bf16_tflops``, ``hbm_bw_gbps``."""
    if isinstance(gpu, ResolvedGpu):
        return gpu
    if isinstance(gpu, str):
        row = lookup_gpu(gpu)
        if row is None:
            names = ", ".join(gpu_names()[:12])
            raise PreflightError(
                field, gpu, f"a catalogue name ({names}, ...; see `preflight gpus`) or an object with "
                "gpu_ram_gb, bf16_tflops, hbm_bw_gbps",
            )
        size = re.search(r"(\d+)\s*GB", gpu, re.IGNORECASE)
        return from_catalogue(row, float(size.group(1)) if size else None)
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

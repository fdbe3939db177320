"""Host fit: CPU RAM (playbook 1.2), disk and network (playbook 1.3).

CPU RAM, playbook rule (kept as ``required_gb_playbook``): offloaded Adam moments at ``8 bytes``
per trainable parameter (plus the parameters when they are offloaded too), dataloader, OS and
cache, times 1.3. Why a refined figure beside it: DeepSpeed's offloaded optimizer holds fp32
master weights, both moments and fp32 gradients, 16 B/param, in pinned memory (its own estimator
adds a 1.5 buffer), so the rule's 8 B/param is 2-3x low; and each data-parallel process loads the
checkpoint into host RAM before moving it to the GPU, a peak no rule mentions. The refined figure
is the larger of the loading phase and the training phase, times the playbook's 1.3.

Disk: ``model + data + 2 * largest_checkpoint + logs + temp``, plus 30% (the playbook's exact
rule), with each missing size filled from the spec and listed in ``assumed``. Network: the time to
download model and data at the offer's ``inet_down`` (Mbit/s), flagged when it dominates setup.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from gpu_preflight.tools.estimator.modelshape import ResolvedModel
from gpu_preflight.tools.estimator.spec import RunSpec

GB = 1e9
CPU_HEADROOM = 1.3
DISK_HEADROOM = 1.3
PLAYBOOK_OFFLOAD_BYTES = 8.0
OFFLOAD_BYTES = 16.0
DEFAULT_DATALOADER_GB_PER_GPU = 2.0
DEFAULT_OS_AND_CACHE_GB = 4.0
DEFAULT_TEMP_GB = 10.0
"""Container image layers, pip and compile caches: a PyTorch CUDA image alone is 8-15 GB."""
DEFAULT_LOGS_GB = 1.0
BYTES_PER_TOKEN_DATA = 8.0
"""Raw text (~4 B/token for English) plus the tokenized copy (int32, 4 B/token)."""
CPU_CLOSE_RATIO = 0.8

CpuVerdict = Literal["pass", "close_to_limit", "fail", "unknown"]


class CpuMemoryFit(BaseModel):
    required_gb: float = Field(description="Refined host RAM need, x1.3; the verdict uses it.")
    required_gb_playbook: float = Field(description="Playbook 1.2: 1.3 * (8 B/param offload + dataloader + OS).")
    cpu_ram_gb: float | None = Field(description="Host RAM available (offer share or given); null when unknown.")
    offload_gb: float
    model_load_gb: float
    dataloader_gb: float
    os_and_cache_gb: float
    verdict: CpuVerdict
    advice: list[str]


class DiskFit(BaseModel):
    required_gb: float = Field(description="1.3 * (model + data + 2*checkpoint + logs + temp).")
    model_gb: float
    data_gb: float
    checkpoint_gb: float
    logs_gb: float
    temp_gb: float
    disk_gb: float | None
    verdict: Literal["pass", "fail", "unknown"]
    assumed: list[str] = Field(description="Sizes filled in by the estimator rather than given.")


class NetworkFit(BaseModel):
    download_gb: float
    inet_down_mbps: float | None
    download_hours: float | None
    dominates_setup: bool
    note: str


def cpu_verdict(required_gb: float, available_gb: float | None) -> CpuVerdict:
    """``pass`` up to 0.8 of the host's RAM, ``close_to_limit`` up to all of it, ``fail`` beyond.

    >>> cpu_verdict(80, 100), cpu_verdict(80.1, 100), cpu_verdict(100, 100), cpu_verdict(101, 100)
    ('pass', 'close_to_limit', 'close_to_limit', 'fail')
    """
    if available_gb is None:
        return "unknown"
    ratio = required_gb / available_gb
    if ratio <= CPU_CLOSE_RATIO:
        return "pass"
    return "close_to_limit" if ratio <= 1.0 else "fail"


def estimate_cpu_memory(spec: RunSpec, m: ResolvedModel, p_train: int, cpu_ram_gb: float | None) -> CpuMemoryFit:
    t, o = spec.training, spec.overheads
    dataloader = o.dataloader_gb if o.dataloader_gb is not None else DEFAULT_DATALOADER_GB_PER_GPU * t.num_gpus
    os_cache = o.os_and_cache_gb if o.os_and_cache_gb is not None else DEFAULT_OS_AND_CACHE_GB
    params_offloaded = t.offload == "optimizer_and_params"
    playbook_offload = 0.0
    refined_offload = 0.0
    if t.offload != "none":
        playbook_offload = PLAYBOOK_OFFLOAD_BYTES * p_train + (2 * m.params_total if params_offloaded else 0)
        refined_offload = OFFLOAD_BYTES * p_train + (2 * m.params_total if params_offloaded else 0)
    required_playbook = CPU_HEADROOM * (playbook_offload / GB + dataloader + os_cache)
    # Every process of a replicated setup materialises the checkpoint on the host once while loading;
    # sharded (zero3/fsdp) loaders typically load on rank 0 only.
    loaders = t.num_gpus if t.sharding_resolved in ("none", "ddp", "zero1", "zero2") else 1
    load = 2 * m.params_total * loaders / GB
    training_phase = refined_offload / GB + dataloader + os_cache
    loading_phase = load + os_cache
    required = CPU_HEADROOM * max(training_phase, loading_phase)
    verdict = cpu_verdict(required, cpu_ram_gb)
    advice: list[str] = []
    if verdict in ("close_to_limit", "fail"):
        advice.append("do not launch the full run: use a smaller batch/seq, no offload, or a host with more RAM")
    if verdict == "unknown":
        advice.append("host RAM unknown: give cpu_ram_gb (an offer carries it)")
    return CpuMemoryFit(
        required_gb=round(required, 2), required_gb_playbook=round(required_playbook, 2), cpu_ram_gb=cpu_ram_gb,
        offload_gb=round(refined_offload / GB, 2), model_load_gb=round(load, 2), dataloader_gb=dataloader,
        os_and_cache_gb=os_cache, verdict=verdict, advice=advice,
    )


def estimate_disk(spec: RunSpec, m: ResolvedModel, p_train: int, target_tokens: float,
                  disk_gb: float | None) -> DiskFit:
    d = spec.overheads.disk
    assumed: list[str] = []

    def pick(given: float | None, default: float, label: str) -> float:
        if given is not None:
            return given
        assumed.append(label)
        return default

    model_gb = pick(d.model_gb, 2 * m.params_total / GB, "model_gb = 2 B/param (safetensors bf16)")
    tokens = spec.target.dataset_tokens or target_tokens
    data_gb = pick(d.data_gb, BYTES_PER_TOKEN_DATA * tokens / GB, "data_gb = 8 B/token (raw text + tokenized)")
    if spec.training.method == "full":
        # half weights + fp32 master + optimizer states, as trainers save them for resumption
        ckpt_default = (2 + 4 + 8) * m.params_total / GB
        ckpt_label = "checkpoint_gb = 14 B/param (weights + master + Adam states)"
    else:
        ckpt_default = 12 * p_train / GB
        ckpt_label = "checkpoint_gb = 12 B/trainable param (adapters + Adam states)"
    ckpt_gb = pick(d.checkpoint_gb, ckpt_default, ckpt_label)
    logs_gb = pick(d.logs_gb, DEFAULT_LOGS_GB, "logs_gb = 1")
    temp_gb = pick(d.temp_gb, DEFAULT_TEMP_GB, "temp_gb = 10 (image layers, caches)")
    required = DISK_HEADROOM * (model_gb + data_gb + 2 * ckpt_gb + logs_gb + temp_gb)
    verdict: Literal["pass", "fail", "unknown"] = "unknown" if disk_gb is None else (
        "pass" if required <= disk_gb else "fail")
    return DiskFit(
        required_gb=round(required, 2), model_gb=round(model_gb, 2), data_gb=round(data_gb, 2),
        checkpoint_gb=round(ckpt_gb, 2), logs_gb=logs_gb, temp_gb=temp_gb, disk_gb=disk_gb, verdict=verdict,
        assumed=assumed,
    )


def estimate_network(disk: DiskFit, inet_down_mbps: float | None, setup_debug_hours: float) -> NetworkFit:
    download_gb = disk.model_gb + disk.data_gb
    if inet_down_mbps is None:
        return NetworkFit(download_gb=round(download_gb, 2), inet_down_mbps=None, download_hours=None,
                          dominates_setup=False, note="download speed unknown: give inet_down_mbps (offers carry it)")
    hours = download_gb * 8000 / inet_down_mbps / 3600
    dominates = hours > 0.5 * setup_debug_hours
    note = (f"downloading {download_gb:.1f} GB at {inet_down_mbps:.0f} Mbit/s takes {hours:.2f} h"
            + (": bandwidth dominates setup; pick a faster link or pre-stage data" if dominates else ""))
    return NetworkFit(download_gb=round(download_gb, 2), inet_down_mbps=inet_down_mbps, download_hours=round(hours, 3),
                      dominates_setup=dominates, note=note)

"""The shapes every telemetry source is turned into, so windows and triggers see one vocabulary.

Why one model per kind of reading rather than per source: ``nvidia-smi --query-gpu``, ``dmon``
and NVML all describe the same GPU counters with different names and units, and seven training
frameworks print the same four numbers (step, loss, throughput, MFU) in seven layouts. The
parsers translate once, into these models, and nothing downstream needs to know where a number
came from. A field the source did not print is ``None`` (never 0: a missing power reading is not
zero watts).

The JSON of :class:`IngestResult` is a contract used by checks outside the test suite: the keys
``format``, ``samples`` and ``skipped_lines`` and the sample field names must not change.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

GpuFormat = Literal["nvidia_smi_query", "nvidia_smi_dmon"]
LogFormat = Literal["nanogpt", "nanochat", "torchtitan", "hf_trainer", "lightning", "composer", "megatron", "regex"]
IngestFormat = Literal[GpuFormat, LogFormat]
GPU_FORMATS: tuple[GpuFormat, ...] = get_args(GpuFormat)
LOG_FORMATS: tuple[LogFormat, ...] = get_args(LogFormat)

SampleKind = Literal["train", "eval", "summary"]
TokensScope = Literal["job", "device"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpuSample(_Frozen):
    """One reading of one GPU, from nvidia-smi (query CSV or dmon) or NVML.

    ``seq`` numbers the readings of this GPU within one capture (0, 1, 2, ...), so an untimed
    ``dmon`` log can still be placed on a time axis as ``seq * interval_s``.
    ``timestamp`` is ISO 8601 without a zone: nvidia-smi prints host local time and says nothing
    about the zone, and inventing one would be a lie.
    """

    gpu_index: int = Field(ge=0)
    seq: int = Field(default=0, ge=0)
    timestamp: str | None = None
    name: str | None = None
    gpu_util_pct: float | None = None
    mem_util_pct: float | None = None
    mem_used_mib: float | None = None
    mem_total_mib: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    temp_c: float | None = None
    mem_temp_c: float | None = None
    sm_clock_mhz: float | None = None
    mem_clock_mhz: float | None = None
    fan_pct: float | None = None
    throttle_reasons: list[str] | None = None


class LogSample(_Frozen):
    """One metrics record from a training log.

    ``tokens_per_s_scope`` says whether ``tokens_per_s`` counts the whole job (nanochat,
    Composer ``throughput/tokens_per_sec``) or one device (torchtitan ``tps``); comparing a
    per-device number with a per-job prediction would misfire the throughput trigger by the GPU
    count. ``kind`` separates training steps from eval lines and end-of-run summaries, which
    must not be mixed into step-time medians.
    """

    kind: SampleKind = "train"
    step: int | None = None
    total_steps: int | None = None
    epoch: float | None = None
    loss: float | None = None
    val_loss: float | None = None
    tokens_per_s: float | None = None
    tokens_per_s_scope: TokensScope | None = None
    samples_per_s: float | None = None
    step_time_s: float | None = None
    mfu_pct: float | None = None
    tflops: float | None = None
    mem_used_gib: float | None = None
    mem_used_pct: float | None = None
    elapsed_s: float | None = None
    eta_s: float | None = None
    eval_runtime_s: float | None = None
    timestamp: str | None = None


class IngestResult(_Frozen):
    """What one file or text held: its detected format, the samples, and what was not data.

    ``skipped_lines`` counts non-blank lines that were neither data nor a recognised header or
    record continuation (banners, shell prompts, ``...`` elisions, truncated lines); they are
    counted, never fatal. ``duplicate_lines`` counts the same step printed again (every rank of
    a multi-GPU job prints it, tqdm redraws its bar), dropped so medians are not skewed.
    """

    format: IngestFormat
    samples: list[GpuSample] | list[LogSample]
    skipped_lines: int = Field(ge=0)
    duplicate_lines: int = Field(default=0, ge=0)

    def gpu_samples(self) -> list[GpuSample]:
        """The samples, typed, when the format is an nvidia-smi one (else an empty list)."""
        return [s for s in self.samples if isinstance(s, GpuSample)]

    def log_samples(self) -> list[LogSample]:
        """The samples, typed, when the format is a training-log one (else an empty list)."""
        return [s for s in self.samples if isinstance(s, LogSample)]

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

GpuFormat = Literal["nvidia_smi_query", "nvidia_smi_dmon", "nvidia_smi_table", "nvidia_smi_pmon"]
LogFormat = Literal["nanogpt", "nanochat", "torchtitan", "hf_trainer", "lightning", "composer", "megatron",
                    "modded_nanogpt", "fairseq", "deepspeed", "llama_factory", "litgpt", "torchtune", "regex"]
IngestFormat = Literal[GpuFormat, LogFormat]
GPU_FORMATS: tuple[GpuFormat, ...] = get_args(GpuFormat)
LOG_FORMATS: tuple[LogFormat, ...] = get_args(LogFormat)

SampleKind = Literal["train", "eval", "summary"]
TokensScope = Literal["job", "device"]
StepTimeSource = Literal["log_timestamps", "write_times"]


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
    perf_state: str | None = Field(default=None, pattern=r"^P\d{1,2}$")


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
    step_time_avg_s: float | None = Field(default=None, description=(
        "A running average of the step time as the framework printed it (modded-nanogpt step_avg, a tqdm "
        "bar's smoothed rate): it includes earlier steps (warm-up, smaller batches), so it is never step_time_s."))
    step_time_source: StepTimeSource | None = Field(
        default=None, description="Where step_time_s came from when not printed on this line (see writetimes).")


class ProcessSample(_Frozen):
    """One process on one GPU: a row of ``nvidia-smi pmon`` or of the default table's process list.

    Why its own model: a heartbeat has to say *which* process holds a GPU (a stray notebook
    kernel, a zombie from the last run), which no per-GPU counter can. ``seq`` numbers the
    snapshot the row belongs to: the table (0, 1, ...) or the pmon cycle. pmon prints no cycle
    marker, so a new cycle is inferred when the GPU index goes back, a (GPU, pid) pair repeats,
    or the ``-o DT`` time changes. ``fb_mib`` is the process's GPU memory: pmon's ``fb`` (printed
    as MB, the same MiB figure the table prints under "GPU Memory Usage"). A ``-`` or ``N/A``
    cell, and a cell nvidia-smi cut short (``13319...``), is ``None``: the figure was not
    printed whole, and a truncated number would be wrong.
    """

    gpu_index: int = Field(ge=0)
    seq: int = Field(default=0, ge=0)
    timestamp: str | None = None
    pid: int | None = Field(default=None, ge=0)
    type: str | None = Field(default=None, pattern=r"^[CGM](\+[CGM])*$")
    command: str | None = None
    sm_pct: float | None = None
    mem_pct: float | None = None
    enc_pct: float | None = None
    dec_pct: float | None = None
    jpg_pct: float | None = None
    ofa_pct: float | None = None
    fb_mib: float | None = None
    gi_id: int | None = None
    ci_id: int | None = None


class IngestResult(_Frozen):
    """What one file or text held: its detected format, the samples, and what was not data.

    ``skipped_lines`` counts non-blank lines that were neither data nor a recognised header or
    record continuation (banners, shell prompts, ``...`` elisions, truncated lines); they are
    counted, never fatal. ``duplicate_lines`` counts the same step printed again (every rank of
    a multi-GPU job prints it, tqdm redraws its bar), dropped so medians are not skewed.

    For ``nvidia_smi_pmon`` the processes ARE the samples (:class:`ProcessSample`, one per pmon
    row). ``processes`` holds the process list printed beside GPU readings (the default
    ``nvidia_smi_table``'s "Processes:" box); it is empty for every other format.
    """

    format: IngestFormat
    samples: list[GpuSample] | list[LogSample] | list[ProcessSample]
    skipped_lines: int = Field(ge=0)
    duplicate_lines: int = Field(default=0, ge=0)
    processes: list[ProcessSample] = Field(default_factory=list)

    def gpu_samples(self) -> list[GpuSample]:
        """The samples, typed, when the format is an nvidia-smi one (else an empty list)."""
        return [s for s in self.samples if isinstance(s, GpuSample)]

    def log_samples(self) -> list[LogSample]:
        """The samples, typed, when the format is a training-log one (else an empty list)."""
        return [s for s in self.samples if isinstance(s, LogSample)]

    def process_samples(self) -> list[ProcessSample]:
        """Every process reading: pmon's samples, or the table's process list (else an empty list)."""
        return [s for s in self.samples if isinstance(s, ProcessSample)] + list(self.processes)

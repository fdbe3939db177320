"""One-line training-log layouts: nanoGPT, nanochat, torchtitan, Megatron, tqdm bars, and signatures.

Each ``parse_*`` function takes one ANSI-stripped segment and returns a :class:`LogSample` when the
segment is that format's metrics line, else ``None``. They search rather than anchor, because
launchers prefix lines (``0:``, ``[rank0]:``, ``[default0]:``, timestamps) and the numbers are
what matter. Values are what the framework printed, converted to the field's unit; sentinels
(nanoGPT's ``mfu -100.00%`` before it has an estimate) become ``None``.

>>> s = parse_nanogpt("iter 100: loss 2.4049, time 929.71ms, mfu 16.59%")
>>> (s.step, s.loss, s.step_time_s, s.mfu_pct)
(100, 2.4049, 0.92971, 16.59)
>>> s = parse_torchtitan("step: 200  loss:  6.1384  memory: 49.66GiB(52.28%)  tps: 5,856  mfu: 34.29%")
>>> (s.step, s.tokens_per_s, s.tokens_per_s_scope, s.mem_used_pct)
(200, 5856.0, 'device', 52.28)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .lines import parse_number
from .models import LogFormat, LogSample

# Lines that identify a format, for detection; one hit per line is counted.
SIGNATURES: dict[LogFormat, re.Pattern[str]] = {
    "nanogpt": re.compile(r"\biter \d+: loss \S+, time [\d.]+ms|\bstep \d+: train loss \S+, val loss"),
    "nanochat": re.compile(r"\bstep \d+(?:/\d+)? \([\d.]+%\) \|"),
    "torchtitan": re.compile(r"\bstep:\s*\d+\s+loss:\s*\S+"),
    "hf_trainer": re.compile(
        r"\{'(?:loss|eval_loss|train_runtime|learning_rate|grad_norm|train_loss)'\s*:|\*{5} \w+ metrics \*{5}"
    ),
    # TQDM's "Epoch 3:  50%" and Rich's "Epoch 2/2  ━━━ 12/12 0:00:00 • 0:00:00" (Lightning's two bars).
    "lightning": re.compile(
        r"\b(?:Epoch \d+|Validation|Testing|Sanity Checking)(?: DataLoader \d+)?:\s*\d+%"
        r"|\bEpoch \d+/\d+ .*\d+/\d+ [\d:]+ \u2022 "
    ),
    "composer": re.compile(r"\[batch=\d+/\d+\]"),
    "megatron": re.compile(r"\biteration\s+\d+\s*/\s*\d+\s*\|"),
    # Issue 21's formats (parsers in trainlog_more / trainlog_json); none matches a line of the above.
    "modded_nanogpt": re.compile(r"\bstep:\d+/\d+ (?:train_loss|val_loss|train_time):"),
    "fairseq": re.compile(r"\"num_updates\": \"?\d+|\bnum_updates=\d+"),
    "deepspeed": re.compile(r"\bstep=\d+, skipped=\d+|\bCurrSamplesPerSec="),
    "llama_factory": re.compile(r"\"current_steps\": \d+"),
    "litgpt": re.compile(r"\biter \d+ step \d+(?: \||:) loss"),
    "torchtune": re.compile(r"\bStep \d+ \| loss:"),
}

_NANOGPT_ITER = re.compile(r"\biter (\d+): loss ([^,\s]+), time ([\d.]+)ms(?:, mfu (-?[\d.]+)%)?")
_NANOGPT_EVAL = re.compile(r"\bstep (\d+): train loss ([^,\s]+), val loss ([^,\s]+)")
_NANOCHAT = re.compile(r"\bstep (\d+)(?:/(\d+))? \([\d.]+%\) \|(.*)$")
_TITAN_STEP = re.compile(r"\bstep:\s*(\d+)\s+loss:\s*([^\s\]]+)")
_TITAN_MEMORY = re.compile(r"\bmemory:\s*([\d.]+)GiB\(([\d.]+)%\)")
_TITAN_TPS = re.compile(r"\btps:\s*([\d,]+(?:\.\d+)?)")
_TITAN_TFLOPS = re.compile(r"\btflops:\s*([\d,]+(?:\.\d+)?)")
_TITAN_MFU = re.compile(r"\bmfu:\s*([\d.]+)%")
_ISO_LIKE = re.compile(r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:[,.](\d+))?")
_MEGATRON = re.compile(r"\biteration\s+(\d+)\s*/\s*(\d+)\s*\|(.*)$")
_TQDM = re.compile(
    r"(?P<n>\d+)/(?P<total>\d+|\?)\s*\[(?P<elapsed>[\d:]+)<(?P<remaining>[\d:?]+),\s*"
    r"(?P<rate>[\d.]+|\?)\s*(?P<unit>it/s|s/it)(?:(?P<post>[^\]]*)\])?"
)  # the "]" may be missing: a warning printed straight after "20.89s/it" (the DPO capture)


def _num(token: str) -> float | None:
    """Forgiving number: malformed text gives ``None`` rather than losing the whole line."""
    try:
        return parse_number(token)
    except ValueError:
        return None


def _ms_to_s(value: float | None) -> float | None:
    """Milliseconds to seconds, rounded to the nanosecond so ``989.44`` ms prints as ``0.98944``."""
    return round(value / 1000, 9) if value is not None else None


def _strip_unit(token: str, unit: str) -> str:
    token = token.strip()
    return token[: -len(unit)] if token.endswith(unit) else token


def iso_timestamp(text: str) -> str | None:
    """First ``YYYY-MM-DD HH:MM:SS[,mmm]`` in a line, as ISO 8601 (logging's comma becomes a dot)."""
    match = _ISO_LIKE.search(text)
    if not match:
        return None
    date, clock, frac = match.groups()
    return f"{date}T{clock}" + (f".{frac}" if frac else "")


def clock_to_s(text: str) -> float | None:
    """``7:32:50`` or ``0:00:10.48`` or ``26:15`` -> seconds (tqdm and HF metrics blocks)."""
    parts = text.strip().split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        return None
    total = 0.0
    for value in values:
        total = total * 60 + value
    return total


def parse_nanogpt(line: str) -> LogSample | None:
    """``iter N: loss X, time Yms[, mfu Z%]`` (``time`` is that one iteration) and eval lines."""
    match = _NANOGPT_ITER.search(line)
    if match:
        step, loss, time_ms, mfu = match.groups()
        time_value = _num(time_ms)
        mfu_value = _num(mfu) if mfu is not None else None
        return LogSample(
            step=int(step),
            loss=_num(loss),
            step_time_s=_ms_to_s(time_value),
            mfu_pct=mfu_value if mfu_value is not None and mfu_value >= 0 else None,
        )
    match = _NANOGPT_EVAL.search(line)
    if match:
        step, train_loss, val_loss = match.groups()
        return LogSample(kind="eval", step=int(step), loss=_num(train_loss), val_loss=_num(val_loss))
    return None


def _pipe_fields(text: str) -> dict[str, str]:
    """``| key: value | key: value`` -> dict (nanochat, Megatron)."""
    fields: dict[str, str] = {}
    for part in text.split("|"):
        key, sep, value = part.partition(":")
        if sep and key.strip():
            fields[key.strip()] = value.strip()
    return fields


def parse_nanochat(line: str) -> LogSample | None:
    """``step 00004/21400 (0.02%) | loss: X | dt: Yms | tok/sec: 529,882 | mfu: 74.13 | total time: Zm``.

    ``tok/sec`` counts tokens of all ranks (nanochat divides world tokens by ``dt``), and
    ``mfu`` is a percentage printed without ``%``.
    """
    match = _NANOCHAT.search(line)
    if not match:
        return None
    step, total, rest = match.groups()
    fields = _pipe_fields(rest)
    dt_ms = _num(_strip_unit(fields.get("dt", ""), "ms"))
    total_min = _num(_strip_unit(fields.get("total time", ""), "m"))
    tokens = _num(fields.get("tok/sec", ""))
    return LogSample(
        step=int(step),
        total_steps=int(total) if total else None,
        loss=_num(fields.get("loss", "")),
        step_time_s=_ms_to_s(dt_ms),
        tokens_per_s=tokens,
        tokens_per_s_scope="job" if tokens is not None else None,
        mfu_pct=_num(_strip_unit(fields.get("mfu", ""), "%")),
        elapsed_s=total_min * 60 if total_min is not None else None,
    )


def parse_torchtitan(line: str) -> LogSample | None:
    """``step: N  loss: X  memory: G GiB(P%)  tps: T  tflops: F  mfu: M%`` (tps is per device)."""
    match = _TITAN_STEP.search(line)
    if not match:
        return None
    values: dict[str, Any] = {"step": int(match.group(1)), "loss": _num(match.group(2))}
    if memory := _TITAN_MEMORY.search(line):
        values["mem_used_gib"] = _num(memory.group(1))
        values["mem_used_pct"] = _num(memory.group(2))
    if tps := _TITAN_TPS.search(line):
        values["tokens_per_s"] = _num(tps.group(1))
        values["tokens_per_s_scope"] = "device"
    if tflops := _TITAN_TFLOPS.search(line):
        values["tflops"] = _num(tflops.group(1))
    if mfu := _TITAN_MFU.search(line):
        values["mfu_pct"] = _num(mfu.group(1))
    values["timestamp"] = iso_timestamp(line)
    return LogSample(**values)


def parse_megatron(line: str) -> LogSample | None:
    """`` iteration N/ M | ... | elapsed time per iteration (ms): T | ... | samples per second: S |``.

    Megatron-DeepSpeed prints samples/s and ``actual seqlen``; tokens/s is their product (every
    sample is one sequence), which is what a tokens/s prediction compares against.
    """
    match = _MEGATRON.search(line)
    if not match:
        return None
    step, total, rest = match.groups()
    fields = {key.lower(): value for key, value in _pipe_fields(rest).items()}
    step_ms = _num(fields.get("elapsed time per iteration (ms)", ""))
    samples = _num(fields.get("samples per second", ""))
    seqlen = _num(fields.get("actual seqlen", ""))
    tokens = _num(fields.get("tokens per second", fields.get("tokens per sec", "")))
    if tokens is None and samples is not None and seqlen is not None:
        tokens = round(samples * seqlen, 6)
    loss_text = fields.get("lm loss", fields.get("loss", ""))
    tflops_text = fields.get("tflops", fields.get("throughput per gpu (tflop/s/gpu)", ""))
    return LogSample(
        step=int(step),
        total_steps=int(total),
        loss=_num(loss_text),
        step_time_s=_ms_to_s(step_ms),
        samples_per_s=samples,
        tokens_per_s=tokens,
        tokens_per_s_scope="job" if tokens is not None else None,
        tflops=_num(tflops_text),
        timestamp=iso_timestamp(line.split("iteration", 1)[0]),
    )


@dataclass(frozen=True)
class TqdmState:
    """One tqdm bar state: ``n/total [elapsed<remaining, rate unit, key=value...]``."""

    n: int
    total: int | None
    elapsed_s: float | None
    remaining_s: float | None
    step_time_s: float | None
    postfix: dict[str, str] = field(default_factory=dict)


def parse_tqdm(line: str) -> TqdmState | None:
    """The last tqdm state in a segment; ``s/it`` and ``it/s`` both become seconds per step."""
    matches = list(_TQDM.finditer(line))
    if not matches:
        return None
    match = matches[-1]
    rate = _num(match.group("rate"))
    step_time: float | None = None
    if rate is not None and rate > 0:
        step_time = rate if match.group("unit") == "s/it" else 1.0 / rate
    postfix: dict[str, str] = {}
    for part in (match.group("post") or "").split(","):
        key, sep, value = part.partition("=")
        if sep:
            postfix[key.strip()] = value.strip()
    total = match.group("total")
    return TqdmState(
        n=int(match.group("n")),
        total=int(total) if total.isdigit() else None,
        elapsed_s=clock_to_s(match.group("elapsed")),
        remaining_s=clock_to_s(match.group("remaining")) if "?" not in match.group("remaining") else None,
        step_time_s=step_time,
        postfix=postfix,
    )

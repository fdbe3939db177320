"""Cost of one GPU reading: an in-process NVML sample vs one ``nvidia-smi --query-gpu`` call.

Why it matters: the validation loop polls every few seconds for hours, and on some hosts each
``nvidia-smi`` call costs 0.6 s of driver initialisation (bpytop issue 26). Run it on the GPU box:

    python bench/telemetry.py [--samples 50]

Both paths read the playbook's fields (utilization, memory used/total, power) for every GPU; NVML
also reads temperature, clocks, throttle reasons and processes, so its figure is an upper bound.
With no GPU it prints one "no GPU here" line and exits 0.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

from gpu_preflight.tools.telemetry.nvml import Nvml
from gpu_preflight.tools.telemetry.nvml_errors import NvmlUnavailable
from gpu_preflight.tools.telemetry.nvsmi import parse_query_csv

QUERY = "timestamp,utilization.gpu,utilization.memory,memory.used,memory.total,power.draw"


def _stats(times_s: list[float]) -> str:
    ms = sorted(t * 1000 for t in times_s)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"median {statistics.median(ms):9.3f} ms   p95 {p95:9.3f} ms   n={len(ms)}"


def bench_nvml(samples: int) -> tuple[list[float], int] | str:
    """Per-sample wall times of ``Nvml.sample()`` (all GPUs, all fields), or why NVML is unusable."""
    try:
        nvml = Nvml()
    except NvmlUnavailable as exc:
        return exc.answer.message
    with nvml:
        nvml.sample()  # first call pays one-time lazy loading; the loop measures the steady state
        times = []
        for _ in range(samples):
            began = time.perf_counter()
            nvml.sample()
            times.append(time.perf_counter() - began)
        return times, nvml.gpu_count


def bench_nvidia_smi(samples: int) -> tuple[list[float], int] | str:
    """Per-call wall times of the playbook's query as a one-shot ``nvidia-smi``, or why it failed."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return "nvidia-smi is not on PATH"
    command = [exe, f"--query-gpu={QUERY}", "--format=csv,noheader,nounits"]
    times = []
    gpus = 0
    for _ in range(samples):
        began = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        times.append(time.perf_counter() - began)
        if done.returncode != 0:
            return f"nvidia-smi failed: {(done.stdout + done.stderr).strip()[:200]}"
        gpus = len(parse_query_csv(done.stdout)[0])
    return times, gpus


def main(argv: list[str] | None = None) -> int:
    """Print both timings and their ratio; exit 0 whatever the host has."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--samples", type=int, default=50, help="readings per method (default 50)")
    args = parser.parse_args(argv)
    samples = max(1, args.samples)
    nvml = bench_nvml(samples)
    smi = bench_nvidia_smi(samples)
    if isinstance(nvml, str) and isinstance(smi, str):
        print(f"no GPU here: NVML: {nvml}; nvidia-smi: {smi}. Nothing to compare.")
        return 0
    if isinstance(nvml, str):
        print(f"NVML          unavailable: {nvml}")
    else:
        print(f"NVML sample   {_stats(nvml[0])}   ({nvml[1]} GPU(s), all fields)")
    if isinstance(smi, str):
        print(f"nvidia-smi    unavailable: {smi}")
    else:
        print(f"nvidia-smi    {_stats(smi[0])}   ({smi[1]} GPU(s), {QUERY})")
    if not isinstance(nvml, str) and not isinstance(smi, str):
        ratio = statistics.median(smi[0]) / statistics.median(nvml[0])
        print(f"one nvidia-smi call costs {ratio:,.0f} NVML samples")
    return 0


if __name__ == "__main__":
    sys.exit(main())

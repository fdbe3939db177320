"""Measured cases of our own: a grid of small real trainings on a GPU, stored as benchmark cases.

Why: published numbers come from other people's stacks and are sometimes hard to read exactly
(``quality: suspect`` in ``bench/cases/published.json``). A run we make ourselves has every knob
known: the grid trains GPT-2 124M and 355M and Llama-3.2-1B (a Llama-shaped ~1B model), full and
LoRA, bf16, with and without activation checkpointing, at two micro-batches each (24 runs), and
records peak ``max_memory_allocated``, ``max_memory_reserved``, the device's used memory as
nvidia-smi reports it, and tokens/s. Each becomes a case in ``bench/cases/measured.json`` with the
provenance "measured on <GPU> with torch <version>", which ``bench/accuracy.py`` scores beside the
published ones.

Each point runs in its own process (``bench/gridrun.py``); an out-of-memory point is reported and
stored as no case. Runs on other GPUs add to the file: a case is replaced only by a case of the same id.

    python bench/measure_grid.py                         # on a machine with an NVIDIA GPU and torch
    python bench/measure_grid.py --only gpt2 --steps 10  # a subset
    python bench/measure_grid.py --device cpu --smoke    # checks the plumbing on CPU; writes nothing

Needs ``torch`` (not a project dependency: ``pip install torch``) for the runs themselves; the
grid and case-building code below imports neither torch nor CUDA, so it is tested without them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gpu_preflight.tools.estimator.catalogue import lookup_gpu

HERE = Path(__file__).resolve().parent
OUT_PATH = HERE / "cases" / "measured.json"
GRID_MODELS: dict[str, tuple[int, tuple[int, int]]] = {
    # preset: (seq_len, the two micro-batches). GPT-2's learned position table stops at 1024.
    "gpt2": (1024, (4, 8)),
    "gpt2-medium": (1024, (4, 8)),
    "llama-3.2-1b": (2048, (2, 4)),
}
LORA_RANK = 16
LORA_TARGETS = "all_linear"
TARGET_TOKENS = 100_000_000  # cases need a target; the measured rate does not depend on it
POINT_TIMEOUT_S = 900
SMOKE_SEQ_LEN = 64
ABOUT = ("Cases measured by bench/measure_grid.py: random-token training of preset-shaped models in plain "
         "PyTorch (bench/gridrun.py), one process per configuration. Same schema as published.json.")


@dataclass(frozen=True)
class GridPoint:
    model: str
    method: str
    activation_checkpointing: bool
    micro_batch: int
    seq_len: int
    lora_rank: int | None = None
    lora_targets: str | None = None

    @property
    def slug(self) -> str:
        ac = "ac" if self.activation_checkpointing else "noac"
        return f"{self.model}-{self.method}-{ac}-mb{self.micro_batch}-seq{self.seq_len}"


def default_grid() -> list[GridPoint]:
    """3 models x {full, LoRA} x {no AC, full AC} x 2 micro-batches = 24 points."""
    points: list[GridPoint] = []
    for model, (seq_len, micro_batches) in GRID_MODELS.items():
        for method in ("full", "lora"):
            for ac in (False, True):
                for mb in micro_batches:
                    lora = (LORA_RANK, LORA_TARGETS) if method == "lora" else (None, None)
                    points.append(GridPoint(model, method, ac, mb, seq_len, *lora))
    return points


def training_spec(point: GridPoint) -> dict[str, Any]:
    """What bench/gridrun.py runs, in the run-spec vocabulary (the estimate reads exactly this)."""
    t: dict[str, Any] = {
        "method": point.method, "precision": "bf16", "master_weights_fp32": True, "optimizer": "adamw",
        "optimizer_impl": "fused", "seq_len": point.seq_len, "micro_batch": point.micro_batch, "grad_accum": 1,
        "num_gpus": 1, "activation_checkpointing": point.activation_checkpointing, "attention": "sdpa",
        "loss": "standard", "tuning": "normal",
    }
    if point.method == "lora":
        t |= {"lora_rank": point.lora_rank, "lora_targets": point.lora_targets}
    return t


def _gb(n_bytes: float) -> float:
    return round(n_bytes / 1e9, 3)


def cases_for(result: dict[str, Any], gpu: str, commit: str, date: str) -> list[dict[str, Any]]:
    """One throughput case and up to three memory cases from one successful grid run."""
    point = GridPoint(**result["point"])
    cuda = f", CUDA {result['cuda']}" if result.get("cuda") else ""
    source = (f"measured on {result['device_name']} with torch {result['torch']}{cuda}: bench/measure_grid.py "
              f"(gpu-preflight commit {commit}), {date}")
    notes = (f"Random tokens; {result['warmup_steps']} warm-up + {result['timed_steps']} timed optimizer steps "
             f"({result['step_time_s']:.4f} s/step); plain PyTorch, fp32 weights under bf16 autocast, fused "
             f"AdamW, SDPA attention, fp32 logits into cross-entropy"
             + (", torch.utils.checkpoint around every block" if point.activation_checkpointing else "")
             + (f", LoRA r={point.lora_rank} on {point.lora_targets}" if point.method == "lora" else "")
             + f". params {result['params_total']:,} (trainable {result['params_trainable']:,}); loss "
             f"{result['loss_first']:.3f} -> {result['loss_last']:.3f}. Memory counters are peaks over the whole "
             "process (model load included); nvidia-smi's figure was read after the last step.")
    common = {"gpu": gpu, "model": {"name": point.model}, "training": training_spec(point),
              "target": {"target_tokens": TARGET_TOKENS}, "source": source, "notes": notes, "tags": ["measured"]}
    gpu_slug = gpu.lower().replace(" ", "")
    base_id = f"measured-{gpu_slug}-{point.slug}"
    cases = [{"id": f"{base_id}-tps", "kind": "throughput",
              "measured": {"value": round(result["tokens_per_s"], 1), "unit": "tokens/s",
                           "what": "tokens_per_s_per_gpu"}} | common]
    for key, what, suffix in (("max_memory_allocated_bytes", "max_memory_allocated", "alloc"),
                              ("max_memory_reserved_bytes", "max_memory_reserved", "reserved"),
                              ("nvml_used_bytes", "nvidia-smi", "nvml")):
        if result.get(key):
            cases.append({"id": f"{base_id}-{suffix}", "kind": "memory",
                          "measured": {"value": _gb(result[key]), "unit": "GB", "what": what}} | common)
    return cases


def merge_cases(existing: dict[str, Any] | None, new: list[dict[str, Any]]) -> dict[str, Any]:
    """Replace cases with the same id, keep the rest (runs on other GPUs), keep the order stable."""
    old = list((existing or {}).get("cases", []))
    fresh = {c["id"]: c for c in new}
    kept = [fresh.pop(c["id"], c) for c in old]
    return {"schema": "bench/cases/published.json", "about": ABOUT, "cases": kept + list(fresh.values())}


def run_point(point: GridPoint, device: str, warmup: int, steps: int, python: str) -> dict[str, Any]:
    cmd = [python, str(HERE / "gridrun.py"), "--point", json.dumps(asdict(point)), "--device", device,
           "--warmup", str(warmup), "--steps", str(steps)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=POINT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return {"point": asdict(point), "error": f"timed out after {POINT_TIMEOUT_S} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"point": asdict(point), "error": f"exit {proc.returncode}: {tail}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE,
                             check=False, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def catalogue_gpu(device_name: str) -> str:
    row = lookup_gpu(device_name)
    if row is None:
        raise SystemExit(f"measure_grid: GPU {device_name!r} is not in the catalogue; pass --gpu NAME "
                         "(see `preflight gpus`)")
    return row.name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--out", type=Path, default=OUT_PATH,
                    help="case file to add to (default: bench/cases/measured.json)")
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --smoke)")
    ap.add_argument("--gpu", help="catalogue GPU name, when torch's device name is not in the catalogue")
    ap.add_argument("--only", action="append", default=[], help="run only points whose slug contains this")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--smoke", action="store_true",
                    help=f"tiny runs (seq {SMOKE_SEQ_LEN}, micro-batch 1, 1+2 steps), print, write nothing")
    ap.add_argument("--python", default=sys.executable, help="python with torch for the runs")
    args = ap.parse_args(argv)
    if args.device != "cuda" and not args.smoke:
        ap.error("--device cpu measures no GPU memory: use it only with --smoke")
    points = [p for p in default_grid() if all(o in p.slug for o in args.only)]
    if args.smoke:
        points = [GridPoint(p.model, p.method, p.activation_checkpointing, 1, SMOKE_SEQ_LEN, p.lora_rank,
                            p.lora_targets) for p in points if p.micro_batch == GRID_MODELS[p.model][1][0]]
        args.warmup, args.steps = 1, 2
    date, commit = dt.date.today().isoformat(), _commit()
    cases: list[dict[str, Any]] = []
    failed = 0
    print(f"{'point':<44} {'tokens/s':>10} {'alloc GB':>9} {'reserved GB':>11} {'nvml GB':>8}")
    for point in points:
        result = run_point(point, args.device, args.warmup, args.steps, args.python)
        if "error" in result:
            failed += 1
            print(f"{point.slug:<44} {result['error']}")
            continue
        mem = [result.get(k) for k in ("max_memory_allocated_bytes", "max_memory_reserved_bytes", "nvml_used_bytes")]
        shown = ["-" if v is None else f"{v / 1e9:.2f}" for v in mem]
        print(f"{point.slug:<44} {result['tokens_per_s']:>10,.0f} {shown[0]:>9} {shown[1]:>11} {shown[2]:>8}")
        if result["params_trainable"] != result["params_trainable_expected"]:
            failed += 1
            print(f"  trainable params {result['params_trainable']:,} != estimator's "
                  f"{result['params_trainable_expected']:,}: not stored")
            continue
        if not args.smoke:
            cases += cases_for(result, args.gpu or catalogue_gpu(result["device_name"]), commit, date)
    if cases:
        existing = json.loads(args.out.read_text(encoding="utf-8")) if args.out.exists() else None
        args.out.write_text(json.dumps(merge_cases(existing, cases), indent=1) + "\n", encoding="utf-8")
        print(f"{len(cases)} case(s) written to {args.out}")
    print(f"{len(points) - failed} of {len(points)} point(s) ran" + (" (smoke: nothing written)" if args.smoke else ""))
    return 1 if failed == len(points) else 0


if __name__ == "__main__":
    sys.exit(main())

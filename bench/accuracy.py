"""Accuracy benchmark: our estimates against published measurements, with peers side by side.

Why: an estimator is only as good as its error on runs that really happened. Every case in
``bench/cases/published.json`` is a run spec plus a measured number and its citation; this script
feeds each spec through ``estimate_run`` (the same code path as ``preflight estimate``) and prints
predicted vs measured, the signed error and the formula path, then per kind the median absolute
error, the 90th percentile and, for throughput, the share of cases whose measured value falls inside
the pessimistic..optimistic range. The playbook's rule figure is scored beside the refined one, so the
gain of the refinement stays visible.

How values are compared:

* memory: ``max_memory_allocated`` against ``allocated_peak_gb``, ``max_memory_reserved`` against
  ``peak_gb``, ``nvidia-smi`` against ``nvml_used_gb``, a QLoRA load's ``load_max_memory_allocated`` against
  ``breakdown.load_gb``; all in GB (1e9 bytes; MiB and GiB converted).
  The playbook column is the rule's own point figure (``playbook.total_gb``); the rule's x1.2
  ``required_gb`` is summarised too.
* throughput: everything is converted to whole-run tokens/s before the error is taken:
  per-GPU rates times ``num_gpus``; GPU-hours as ``target_tokens / (gpu_hours * 3600) * num_gpus``;
  MFU as ``mfu * peak * num_gpus / flops_per_token`` with the FLOPs basis the source used (``model``
  or ``hardware``, i.e. with recompute), taken from our own FLOPs-per-token count.

Run offline, no GPU, in seconds: ``python bench/accuracy.py``. ``--peers`` adds DeepSpeed's and
EleutherAI's formulas (reimplemented in ``bench/peers.py``); ``--peer-python /tmp/peers/bin/python``
also runs the pip-installable peers from a throwaway virtualenv, created for example with
``python -m venv /tmp/peers && /tmp/peers/bin/pip install llm-analysis ftuneai gpu-estimator alloc``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# bench/ is a folder of scripts, not an installed package: make its sibling module importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers

from gpu_preflight.tools.estimator.estimate import estimate_run, trainable_params
from gpu_preflight.tools.estimator.modelshape import resolve_model
from gpu_preflight.tools.estimator.spec import parse_spec
from gpu_preflight.tools.estimator.throughput import SCENARIO_FACTORS

CASES_DIR = Path(__file__).resolve().parent / "cases"
CASES_PATH = CASES_DIR / "published.json"
MEASURED_PATH = CASES_DIR / "measured.json"  # written by bench/measure_grid.py on a GPU
CATEGORIES = ("single_gpu_finetune", "multi_gpu_finetune", "multi_gpu_pretrain", "other")
"""Reported apart because they fail differently: a single-GPU fine-tune is small steps on one card where the
optimizer update and fixed costs weigh; multi-GPU pretraining is large steps on tuned stacks."""


def published_paths() -> list[Path]:
    """Every ``published*.json`` in bench/cases/ (one file per batch of sources), in name order."""
    return sorted(CASES_DIR.glob("published*.json"))
SPEC_KEYS = ("model", "training", "target", "overheads", "baseline")
MEMORY_WHAT = ("max_memory_allocated", "max_memory_reserved", "nvidia-smi", "load_max_memory_allocated")
THROUGHPUT_WHAT = ("tokens_per_s_per_gpu", "tokens_per_s_total", "mfu", "gpu_hours")
UNIT_TO_GB = {"GB": 1.0, "GiB": 2**30 / 1e9, "MB": 1e-3, "MiB": 2**20 / 1e9}
THROUGHPUT_UNITS = {"tokens_per_s_per_gpu": "tokens/s", "tokens_per_s_total": "tokens/s", "mfu": "fraction",
                    "gpu_hours": "GPU-hours"}
KINDS = ("memory", "throughput")


@dataclass
class Row:
    """One case, normalised: GB for memory, whole-run tokens/s for throughput."""

    case_id: str
    kind: str
    what: str
    gpu: str
    measured: float
    ours: float
    playbook: float | None
    playbook_x12: float | None
    low: float | None
    high: float | None
    path: str
    tags: list[str]
    suspect: bool = False
    category: str = "other"
    peers: dict[str, float | None] = field(default_factory=dict)

    def err(self, value: float | None) -> float | None:
        return None if value is None else (value - self.measured) / self.measured * 100.0

    @property
    def in_range(self) -> bool | None:
        if self.low is None or self.high is None:
            return None
        return self.low <= self.measured <= self.high

    @property
    def in_range_playbook_band(self) -> bool | None:
        """Inside the playbook's own band around our base, x0.6..x1.2 (cold estimates publish x1.3)."""
        if self.low is None or self.high is None:
            return None
        return in_playbook_band(self.measured, self.ours)


def in_playbook_band(measured: float, base: float) -> bool:
    """``measured`` inside the playbook's pessimistic..optimistic rates around ``base`` (x0.6..x1.2)."""
    return SCENARIO_FACTORS["pessimistic"] * base <= measured <= SCENARIO_FACTORS["optimistic"] * base


def load_cases(path: Path = CASES_PATH) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    cases = data["cases"] if isinstance(data, dict) else data
    if not isinstance(cases, list):
        raise ValueError(f"{path}: expected a list of cases under 'cases'")
    return cases


def spec_of(case: dict[str, Any]) -> dict[str, Any]:
    """The run-spec part of a case: exactly what ``preflight estimate`` would read from a spec file."""
    return {k: case[k] for k in SPEC_KEYS if k in case}


def _target_tokens(case: dict[str, Any]) -> int:
    target = case.get("target", {})
    if "target_tokens" in target:
        return int(target["target_tokens"])
    raise ValueError(f"{case['id']}: throughput cases measured in GPU-hours need target.target_tokens")


def evaluate_case(case: dict[str, Any]) -> tuple[Row, peers.PeerFacts]:
    """Estimate one case and put measured and predicted on the same scale."""
    est = estimate_run(spec_of(case), case["gpu"])
    spec = parse_spec(spec_of(case))
    m = resolve_model(spec.model)
    p_train, _ = trainable_params(spec, m)
    t = spec.training
    meas = case["measured"]
    what = meas["what"]
    tags = list(case.get("tags", []))
    gpu_label = case["gpu"] if isinstance(case["gpu"], str) else str(case["gpu"].get("name", "custom"))
    if case["kind"] == "memory":
        g = est.memory.gpu
        ours = {"max_memory_allocated": g.allocated_peak_gb, "max_memory_reserved": g.peak_gb,
                "nvidia-smi": g.nvml_used_gb, "load_max_memory_allocated": g.breakdown.load_gb}[what]
        training = not what.startswith("load_")  # the playbook's rule sizes training, not a load
        row = Row(case["id"], "memory", what, gpu_label, float(meas["value"]) * UNIT_TO_GB[meas["unit"]], ours,
                  g.playbook.total_gb if training else None, g.required_gb if training else None, None, None,
                  "memory.gpu: refined component model", tags, case.get("quality") == "suspect",
                  case.get("category", "other"))
        target_tokens = int(case.get("target", {}).get("target_tokens", 0))
    else:
        tp = est.throughput
        n = t.num_gpus
        value = float(meas["value"])
        if what == "tokens_per_s_per_gpu":
            measured = value * n
        elif what == "tokens_per_s_total":
            measured = value
        elif what == "gpu_hours":
            measured = _target_tokens(case) / (value * 3600.0) * n
        else:  # mfu
            basis = case.get("flops_basis", "model")
            fpt = tp.flops_per_token.hardware if basis == "hardware" else tp.flops_per_token.model
            measured = value * tp.peak_tflops_total * 1e12 / fpt
        s = tp.tokens_per_s
        ours = s.base or 0.0
        path = f"throughput: {tp.method}" + (f" (mfu {tp.mfu_assumed})" if tp.mfu_assumed else
                                             f" (eff {tp.efficiency_factor})")
        row = Row(case["id"], "throughput", what, gpu_label, measured, ours, tp.tokens_per_s_playbook, None,
                  s.pessimistic, s.optimistic, path, tags, case.get("quality") == "suspect",
                  case.get("category", "other"))
        target_tokens = int(case.get("target", {}).get("target_tokens", 0))
    facts = peers.facts_for(case["id"], case["kind"], gpu_label, spec, m, p_train, target_tokens)
    return row, facts


def add_formula_peers(rows: list[Row], facts: list[peers.PeerFacts]) -> None:
    for row, f in zip(rows, facts, strict=True):
        if row.kind == "memory" and not row.what.startswith("load_"):
            row.peers["deepspeed"] = peers.deepspeed_memory_gb(f)
            row.peers["eleuther"] = peers.eleuther_memory_gb(f)


def add_external_peers(rows: list[Row], facts: list[peers.PeerFacts], python: str) -> peers.ExternalResult:
    result = peers.run_external(facts, python)
    key = {"memory": "memory_gb", "throughput": "tokens_per_s_total"}
    for name, answers in result.predictions.items():
        for row in rows:
            answer = None if row.what.startswith("load_") else answers.get(row.case_id)
            row.peers[name] = None if not answer else answer.get(key[row.kind])
    return result


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), so p90 of few cases is still defined."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass
class Score:
    estimator: str
    n: int
    median_abs: float
    p90_abs: float
    median_signed: float
    in_range: float | None = None
    in_range_playbook_band: float | None = None


def score(rows: list[Row], estimator: str) -> Score | None:
    errs: list[float] = []
    inside: list[bool] = []
    inside_playbook_band: list[bool] = []
    for r in rows:
        if estimator == "ours":
            value: float | None = r.ours
        elif estimator == "playbook":
            value = r.playbook
        elif estimator == "playbook_x1.2":
            value = r.playbook_x12
        else:
            value = r.peers.get(estimator)
        e = r.err(value)
        if e is None:
            continue
        errs.append(e)
        if r.kind == "throughput" and estimator == "ours" and r.in_range is not None:
            inside.append(r.in_range)
            inside_playbook_band.append(bool(r.in_range_playbook_band))
        if r.kind == "throughput" and estimator == "playbook" and value is not None:
            inside.append(in_playbook_band(r.measured, value))
    if not errs:
        return None
    abs_errs = [abs(e) for e in errs]
    return Score(estimator, len(errs), statistics.median(abs_errs), percentile(abs_errs, 0.9),
                 statistics.median(errs), (sum(inside) / len(inside)) if inside else None,
                 (sum(inside_playbook_band) / len(inside_playbook_band)) if inside_playbook_band else None)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:+.{digits}f}%"


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def print_report(rows: list[Row], peer_names: list[str], out: Any = sys.stdout) -> dict[str, list[Score]]:
    summary: dict[str, list[Score]] = {}
    for kind in KINDS:
        krows = [r for r in rows if r.kind == kind]
        if not krows:
            continue
        unit = "GB" if kind == "memory" else "tok/s (whole run)"
        print(f"\n## {kind} ({len(krows)} cases, values in {unit})", file=out)
        head = f"{'case':<50} {'measured':>10} {'ours':>10} {'err':>8} {'playbook':>10} {'err':>8}"
        head += "".join(f" {p[:12]:>12}" for p in peer_names) + "  in-range  path"
        print(head, file=out)
        for r in krows:
            line = (f"{r.case_id[:50]:<50} {_num(r.measured):>10} {_num(r.ours):>10} {_fmt(r.err(r.ours)):>8} "
                    f"{_num(r.playbook):>10} {_fmt(r.err(r.playbook)):>8}")
            line += "".join(f" {_fmt(r.err(r.peers.get(p))):>12}" for p in peer_names)
            flag = {True: "yes", False: "no", None: ""}[r.in_range]
            print(f"{line}  {flag:>8}  {r.path}{'  [suspect source]' if r.suspect else ''}", file=out)
        estimators = ["ours", "playbook"] + (["playbook_x1.2"] if kind == "memory" else []) + peer_names
        trusted = [r for r in krows if not r.suspect]
        for label, subset in (("all cases", krows), ("excluding suspect sources", trusted)):
            if label != "all cases" and len(subset) == len(krows):
                continue
            scores = [s for s in (score(subset, e) for e in estimators) if s is not None]
            summary[kind if label == "all cases" else f"{kind}_trusted"] = scores
            print(f"\n{kind} summary, {label}: |error| median, p90, signed median (bias), cases scored"
                  + (", measured inside [pessimistic, optimistic]" if kind == "throughput" else ""), file=out)
            for s in scores:
                extra = f"  in-range {s.in_range:.0%}" if s.in_range is not None else ""
                if s.in_range_playbook_band is not None:
                    extra += f" (playbook band x0.6..x1.2 around our base: {s.in_range_playbook_band:.0%})"
                print(f"  {s.estimator:<14} median {s.median_abs:6.1f}%  p90 {s.p90_abs:7.1f}%  "
                      f"bias {s.median_signed:+7.1f}%  n={s.n}{extra}", file=out)
        for peer in peer_names:  # head to head: ours on exactly the cases this peer could answer
            both = [r for r in krows if r.peers.get(peer) is not None]
            if both:
                ours_med = statistics.median(abs(r.err(r.ours) or 0.0) for r in both)
                peer_med = statistics.median(abs(r.err(r.peers[peer]) or 0.0) for r in both)
                print(f"  head to head with {peer} on its {len(both)} case(s): ours {ours_med:.1f}%, "
                      f"{peer} {peer_med:.1f}%", file=out)
        print_categories(krows, kind, summary, out)
        groups: dict[str, list[float]] = {}
        for r in krows:
            e = r.err(r.ours)
            if e is not None:
                groups.setdefault(r.tags[0] if r.tags else "untagged", []).append(e)
        print(f"{kind} by source (ours, signed median error):  " + "  ".join(
            f"{g} {statistics.median(v):+.0f}% (n={len(v)})" for g, v in sorted(groups.items())), file=out)
    return summary


def print_categories(krows: list[Row], kind: str, summary: dict[str, list[Score]], out: Any) -> None:
    """Ours per category (all cases, then without suspect sources), one line each; kept in ``summary``."""
    print(f"{kind} by category (ours; all cases | excluding suspect sources):", file=out)
    for cat in CATEGORIES:
        rows = [r for r in krows if r.category == cat]
        everything, trusted = score(rows, "ours"), score([r for r in rows if not r.suspect], "ours")
        if everything is None:
            continue
        summary[f"{kind}_{cat}"] = [everything]
        line = f"  {cat:<20} {_line(everything)}"
        if trusted is not None and trusted.n != everything.n:
            summary[f"{kind}_{cat}_trusted"] = [trusted]
            line += f"  |  {_line(trusted)}"
        print(line, file=out)


def _line(s: Score) -> str:
    extra = f" in-range {s.in_range:.0%}" if s.in_range is not None else ""
    return f"median {s.median_abs:5.1f}% p90 {s.p90_abs:6.1f}% bias {s.median_signed:+6.1f}% n={s.n}{extra}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--cases", type=Path, nargs="+", default=None,
                    help="case files (default: bench/cases/published*.json, plus measured.json when present)")
    ap.add_argument("--kind", choices=KINDS, help="only memory or only throughput cases")
    ap.add_argument("--peers", action="store_true", help="also run the peer estimators")
    ap.add_argument("--peer-python", default=os.environ.get("PREFLIGHT_PEER_PYTHON"),
                    help="python of a throwaway venv with llm-analysis/ftuneai/gpu-estimator/alloc (implies --peers)")
    ap.add_argument("--json", type=Path, help="also write rows and summary as JSON here")
    args = ap.parse_args(argv)

    paths: list[Path] = args.cases or published_paths() + ([MEASURED_PATH] if MEASURED_PATH.exists() else [])
    cases = [c for p in paths for c in load_cases(p) if args.kind is None or c["kind"] == args.kind]
    rows: list[Row] = []
    facts: list[peers.PeerFacts] = []
    for case in cases:
        row, fact = evaluate_case(case)
        rows.append(row)
        facts.append(fact)
    peer_names: list[str] = []
    notes: list[str] = []
    if args.peers or args.peer_python:
        add_formula_peers(rows, facts)
        peer_names += list(peers.FORMULA_PEERS)
        if args.peer_python:
            result = add_external_peers(rows, facts, args.peer_python)
            peer_names += [p for p in peers.EXTERNAL_PEERS if p in result.predictions]
            notes += [f"peer {p} could not run: {why}" for p, why in result.unavailable.items()]
            notes += [f"peer {p} refused {len(r)} case(s), e.g. {next(iter(r.items()))}" for p, r in
                      result.refused.items()]
        else:
            notes.append("pip peers not run: pass --peer-python PATH (a throwaway venv, see the module docstring)")
    print(f"gpu-preflight accuracy benchmark: {len(rows)} cases from {', '.join(p.name for p in paths)}")
    summary = print_report(rows, peer_names)
    for note in notes:
        print(note)
    if args.json:
        payload = {"rows": [r.__dict__ for r in rows],
                   "summary": {k: [s.__dict__ for s in v] for k, v in summary.items()}, "notes": notes}
        args.json.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

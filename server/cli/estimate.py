"""``preflight estimate``, ``preflight gpus`` and ``preflight models``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.common.limits import loads_json, quantity


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("estimate", help="memory fit, throughput, time and cost for one spec")
    p.add_argument("spec", help="run spec file (.json or .toml)")
    p.add_argument("--gpu", help='catalogue name, e.g. "H100 SXM" (see `preflight gpus`), or a JSON object')
    p.add_argument("--dph", type=quantity(0, 10_000, "USD/h"),
                   default=None, metavar="USD_PER_HOUR", help="price per hour (dph_total)")
    p.add_argument("--cpu-ram-gb", type=quantity(0, 100_000, "GB"), default=None, help="host RAM available, GB")
    p.add_argument("--disk-gb", type=quantity(0, 1e6, "GB"), default=None, help="disk available, GB")
    p.add_argument("--inet-down-mbps", type=quantity(0, 1e6, "Mbit/s"), default=None, help="download bandwidth, Mbit/s")
    p.add_argument("--checklist", default=None, metavar="ID", help="attach the result to this checklist")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_estimate)

    g = sub.add_parser("gpus", help="list the GPU catalogue")
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=run_gpus)

    m = sub.add_parser("models", help="list the model presets")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=run_models)


def parse_gpu_arg(value: str | None) -> str | dict[str, Any]:
    if value is None or not value.strip():
        raise PreflightError("--gpu", value, 'a catalogue name such as "H100 SXM" or a JSON object')
    text = value.strip()
    if text.startswith("{"):
        obj = loads_json(text, field="--gpu", source="the --gpu text",
                         allowed="a JSON object with gpu_ram_gb, bf16_tflops, hbm_bw_gbps")
        if not isinstance(obj, dict):
            raise PreflightError("--gpu", text, "a JSON object")
        return obj
    return text


def run_estimate(args: argparse.Namespace) -> int:
    from gpu_preflight.tools.estimator.estimate import estimate_run
    from gpu_preflight.tools.estimator.render import estimate_markdown
    from gpu_preflight.tools.estimator.spec import load_spec_file

    spec = load_spec_file(args.spec)
    result = estimate_run(spec, parse_gpu_arg(args.gpu), args.dph, cpu_ram_gb=args.cpu_ram_gb,
                          disk_gb=args.disk_gb, inet_down_mbps=args.inet_down_mbps)
    if args.checklist:
        from gpu_preflight.server.evidence_bridge import attach_estimate

        attach_estimate(args.checklist, spec, result)
    if args.json:
        sys.stdout.write(result.model_dump_json() + "\n")
    else:
        sys.stdout.write(estimate_markdown(result) + "\n")
    return 0


def run_gpus(args: argparse.Namespace) -> int:
    from gpu_preflight.tools.common.render import table
    from gpu_preflight.tools.estimator.catalogue import catalogue

    rows = catalogue()
    if args.json:
        sys.stdout.write(json.dumps([r.model_dump() for r in rows]) + "\n")
        return 0
    sys.stdout.write(table(
        ["GPU", "VRAM GB", "bf16 TFLOPS (dense)", "fp32 TFLOPS", "HBM GB/s", "arch"],
        [[r.name, r.gpu_ram_gb, r.bf16_tflops or "-", r.fp32_tflops, r.hbm_bw_gbps, r.architecture] for r in rows],
    ) + "\n")
    return 0


def run_models(args: argparse.Namespace) -> int:
    from gpu_preflight.tools.common.render import table
    from gpu_preflight.tools.estimator.modelshape import preset_names, resolve_model
    from gpu_preflight.tools.estimator.spec import ModelSpec

    models = [resolve_model(ModelSpec(name=n)) for n in preset_names()]
    if args.json:
        sys.stdout.write(json.dumps([m.model_dump() for m in models]) + "\n")
        return 0
    sys.stdout.write(table(
        ["preset", "params", "layers", "hidden", "heads/kv", "vocab", "source"],
        [[m.name, f"{m.params_total:,}", m.n_layers, m.hidden_size, f"{m.n_heads}/{m.n_kv_heads}", m.vocab_size,
          m.source] for m in models],
    ) + "\n")
    return 0

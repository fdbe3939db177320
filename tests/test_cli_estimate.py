"""The installed ``preflight`` command: the estimate contract and one-line errors with exit 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers_spec import EXAMPLES, spec, with_change

PREFLIGHT = shutil.which("preflight")
pytestmark = pytest.mark.skipif(PREFLIGHT is None, reason="the preflight console script is not installed")


def run(*args: str, state: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if state is not None:
        env["PREFLIGHT_STATE_DIR"] = str(state)
    return subprocess.run([str(PREFLIGHT), *args], capture_output=True, text=True, timeout=60, env=env, check=False)


def test_estimate_json_contract() -> None:
    out = run("estimate", str(EXAMPLES / "llama-3-8b-full.json"), "--gpu", "H100 SXM", "--dph", "19.2", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    gpu = data["memory"]["gpu"]
    assert gpu["peak_gb"] > 0 and gpu["required_gb"] > 0
    assert gpu["verdict"] in ("pass", "high_oom_risk", "fail")
    assert data["memory"]["cpu"]["required_gb"] > 0 and data["memory"]["disk"]["required_gb"] > 0
    for key in ("optimistic", "base", "pessimistic"):
        assert data["throughput"]["tokens_per_s"][key] > 0
        assert data["time_hours"][key] > 0
        assert data["cost_usd"][key] == pytest.approx(data["time_hours"][key] * 19.2, abs=0.02)
    assert data["time_hours"]["optimistic"] < data["time_hours"]["base"] < data["time_hours"]["pessimistic"]
    assert 0 < data["setup_debug_tax"] < 1


def test_estimate_table_for_people() -> None:
    out = run("estimate", str(EXAMPLES / "llama-3.2-1b-lora.toml"), "--gpu", "RTX 4090", "--dph", "0.4")
    assert out.returncode == 0, out.stderr
    assert "| GPU memory" in out.stdout and "tokens/s" in out.stdout and "Next step:" in out.stdout


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("training.micro_batch", 0, "spec.training.micro_batch"),
    ("training.method", "lora", "lora_rank"),
    ("target.target_steps", ..., "exactly one of"),
    ("training.global_batch", 3, "global_batch=3"),
])
def test_bad_spec_exits_2_with_one_line(tmp_path: Path, key: str, value: object, needle: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(with_change(spec(), key, value)))
    out = run("estimate", str(bad), "--gpu", "RTX 4090")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in out.stderr
    assert out.stdout == ""


def test_nan_in_json_and_unknown_gpu_exit_2(tmp_path: Path) -> None:
    nan = tmp_path / "nan.json"
    nan.write_text(json.dumps(spec()).replace('"setup_debug_hours": 1.0', '"setup_debug_hours": NaN'))
    out = run("estimate", str(nan), "--gpu", "RTX 4090")
    assert out.returncode == 2 and "setup_debug_hours" in out.stderr and "finite" in out.stderr
    good = tmp_path / "good.json"
    good.write_text(json.dumps(spec()))
    out = run("estimate", str(good), "--gpu", "RTX 9999")
    assert out.returncode == 2 and "gpu: got 'RTX 9999'" in out.stderr


@pytest.mark.parametrize(("flag", "value"), [("--dph", "-1"), ("--cpu-ram-gb", "-5"), ("--disk-gb", "nan"),
                                             ("--inet-down-mbps", "0")])
def test_bad_host_figures_exit_2(tmp_path: Path, flag: str, value: str) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(spec()))
    out = run("estimate", str(good), "--gpu", "RTX 4090", flag, value)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert f"argument {flag}: got" in out.stderr  # issue 14: argparse checks the physical range, naming the flag


def test_usage_error_is_one_line_exit_2() -> None:
    out = run("estimate")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1


def test_gpus_and_models_listings() -> None:
    gpus = json.loads(run("gpus", "--json").stdout)
    assert any(g["name"] == "H100 SXM" for g in gpus)
    models = json.loads(run("models", "--json").stdout)
    assert any(m["name"] == "llama-3.1-8b" and m["params_total"] == 8_030_261_248 for m in models)

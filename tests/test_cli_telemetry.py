"""The installed ``preflight`` telemetry commands: the ``ingest --json`` contract on every real fixture,
check/watch/calibrate/plot, and one-line errors with exit 2."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

PREFLIGHT = shutil.which("preflight")
pytestmark = pytest.mark.skipif(PREFLIGHT is None, reason="the preflight console script is not installed")
FIXTURES = Path(__file__).parent / "fixtures"
NANOGPT = FIXTURES / "logs/nanogpt_a100_issue178_mfu.log"
V100_SMI = FIXTURES / "nvidia-smi/query_csv_units_v100_aau_2020-11-12.csv"
GPU_KEYS = {"gpu_index", "timestamp", "gpu_util_pct", "mem_util_pct", "mem_used_mib", "mem_total_mib", "power_w"}
LOG_KEYS = {"step", "loss", "tokens_per_s", "step_time_s", "mfu_pct"}
FAMILY = {"composer": "composer", "hf": "hf_trainer", "lightning": "lightning", "megatron": "megatron",
          "nanochat": "nanochat", "nanogpt": "nanogpt", "torchtitan": "torchtitan", "dmon": "nvidia_smi_dmon",
          "query": "nvidia_smi_query"}
ALL_FIXTURES = sorted([*FIXTURES.glob("logs/*.log"), *FIXTURES.glob("nvidia-smi/*.txt"),
                       *FIXTURES.glob("nvidia-smi/*.csv")])
SPEC = {
    "model": {"name": "llama-3.2-1b"},
    "training": {"method": "lora", "lora_rank": 16, "seq_len": 2048, "micro_batch": 2},
    "target": {"target_steps": 36000},
    "overheads": {"setup_debug_hours": 1.0, "eval_runtime_s": 40.0, "eval_every_steps": 1000},
}
PROBE = {"gpu": "RTX 4090", "median_step_time_s": 0.5, "steps_measured": 50, "dph_total_usd": 2.5,
         "setup_debug_hours_so_far": 0.5}


def run(*args: str, state: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if state is not None:
        env["PREFLIGHT_STATE_DIR"] = str(state)
    return subprocess.run([str(PREFLIGHT), *args], capture_output=True, text=True, timeout=60, env=env, check=False)


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: p.name)
def test_ingest_json_contract_on_every_fixture(path: Path) -> None:
    out = run("ingest", str(path), "--json")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("\n") == 1  # one object
    data = json.loads(out.stdout)
    assert {"format", "samples", "skipped_lines"} <= set(data)
    assert data["format"] == FAMILY[path.name.split("_")[0]]
    assert isinstance(data["skipped_lines"], int) and data["skipped_lines"] >= 0
    assert data["samples"], "every fixture holds data"
    keys = GPU_KEYS if data["format"].startswith("nvidia_smi") else LOG_KEYS
    for sample in data["samples"]:
        assert keys <= set(sample)  # absent readings are null, never missing


def test_ingest_exact_values_and_human_output() -> None:
    data = json.loads(run("ingest", str(V100_SMI), "--json").stdout)
    first = {k: data["samples"][0][k] for k in GPU_KEYS}
    assert first == {"gpu_index": 0, "timestamp": "2020-11-12T13:48:11.412", "gpu_util_pct": 99.0,
                     "mem_util_pct": 52.0, "mem_used_mib": 30994.0, "mem_total_mib": 32480.0, "power_w": None}
    log = json.loads(run("ingest", str(NANOGPT), "--json").stdout)
    second = {k: log["samples"][1][k] for k in LOG_KEYS}
    assert second == {"step": 10, "loss": 3.2202, "tokens_per_s": None, "step_time_s": 0.89376, "mfu_pct": 16.68}
    human = run("ingest", str(NANOGPT))
    assert human.returncode == 0 and human.stdout.startswith("format **nanogpt**: 26 samples, 0 skipped lines")
    forced = json.loads(run("ingest", str(NANOGPT), "--regex", r"iter (?P<step>\d+): loss (?P<loss>[\d.]+)",
                            "--json").stdout)
    assert forced["format"] == "regex" and forced["samples"][1]["loss"] == 3.2202


@pytest.mark.parametrize(("args", "needle"), [
    (["ingest", "/no/such.log"], "preflight: error: FILE: got '/no/such.log'; allowed: a regular file holding "
     "a text log (it does not exist)"),
    (["ingest", str(NANOGPT), "--format", "csv"], "preflight: error: fmt: got 'csv'"),
    (["check"], "preflight: error: RUN: got None; allowed: a run id, or --log FILE"),
    (["check", "r-missing"], "preflight: error: run_id: got 'r-missing'"),
    (["check", "--log", str(NANOGPT), "--window-s", "-5"], "preflight: error: argument --window-s: got '-5'; "
     "allowed: a number of seconds, >= 1"),
    (["watch", "--log", str(NANOGPT), "--interval", "0", "--once"], "preflight: error: argument --interval: got '0'; "
     "allowed: a number of seconds, > 0"),
    (["plot", "-o", "x.png"], "preflight: error: RUN: got None"),
    (["calibrate", "/no/spec.json", "--probe", "{}"], "preflight: error: spec: got '/no/spec.json'"),
])
def test_bad_input_is_one_line_exit_2(args: list[str], needle: str, tmp_path: Path) -> None:
    out = run(*args, state=tmp_path)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stderr.startswith(needle) and out.stderr.count("\n") == 1, out.stderr


def test_calibrate_bad_probe_is_one_line(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    for probe, needle in (("{not json", "--probe: got 'inline'; allowed: a JSON object (not JSON"),
                          ('{"gpu": "RTX 4090"}', "probe.steps_measured: got '(missing)'"),
                          ("missing.json", "--probe: got 'missing.json'; allowed: a regular file holding a JSON object "
                           "(it does not exist)")):
        out = run("calibrate", str(spec), "--probe", probe, state=tmp_path)
        assert out.returncode == 2 and needle in out.stderr and out.stderr.count("\n") == 1, out.stderr


def test_check_json_and_exit_3_on_kill(tmp_path: Path) -> None:
    out = run("check", "--log", str(NANOGPT), "--nvsmi", str(V100_SMI), "--predicted-step-s", "0.6",
              "--window-s", "30", "--total-steps", "5000", "--dph", "2", "--json", state=tmp_path)
    assert out.returncode == 3, out.stderr
    data = json.loads(out.stdout)
    assert data["decision"]["decision"] == "kill"
    assert data["fired"] == ["throughput_below_predicted", "memory_pressure"]
    assert data["window"]["step_last"] == 240 and data["eta_s"] == 4261.6756
    keep = run("check", "--log", str(NANOGPT), "--predicted-step-s", "0.9", "--window-s", "30", state=tmp_path)
    assert keep.returncode == 0 and keep.stdout.startswith("**KEEP**: no trigger fired")


def test_watch_once_draws_one_frame(tmp_path: Path) -> None:
    out = run("watch", "--log", str(NANOGPT), "--predicted-step-s", "0.6", "--window-s", "30", "--once",
              state=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("preflight watch ") and "**KILL**: throughput_below_predicted" in out.stdout
    assert "\x1b[2J" not in out.stdout  # no screen clearing when not a terminal


def test_calibrate_probe_json_and_file(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    out = run("calibrate", str(spec), "--probe", json.dumps(PROBE), "--json", state=tmp_path)
    assert out.returncode == 0, out.stderr
    cal = json.loads(out.stdout)["calibration"]
    assert cal["time_hours"] == {"optimistic": 5.0667, "base": 5.9, "pessimistic": 9.2333}
    assert cal["decision"]["decision"] in ("keep", "switch")
    probe = tmp_path / "probe.json"
    probe.write_text(json.dumps(PROBE | {"gpu_util_pct": 30}))
    human = run("calibrate", str(spec), "--probe", str(probe), state=tmp_path)
    assert human.returncode == 0 and human.stdout.startswith("**KILL**: trigger fired: gpu_util_low")
    from_log = run("calibrate", str(spec), "--log", str(NANOGPT), "--probe", '{"gpu": "A100 SXM4"}', "--json",
                   state=tmp_path)
    assert from_log.returncode == 0, from_log.stderr
    assert json.loads(from_log.stdout)["calibration"]["steps_per_s"] == pytest.approx(1 / 0.894, rel=0.01)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    idat = data.index(b"IDAT")
    length = struct.unpack(">I", data[idat - 4 : idat])[0]
    raw = zlib.decompress(data[idat + 4 : idat + 4 + length])
    assert len(raw) == height * (1 + 3 * width)  # every row: filter byte + RGB
    return width, height


def test_plot_writes_a_png(tmp_path: Path) -> None:
    target = tmp_path / "run.png"
    out = run("plot", "--log", str(NANOGPT), "--nvsmi", str(V100_SMI), "--predicted-step-s", "0.6", "-o",
              str(target), state=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"wrote {target}")
    assert _png_size(target.read_bytes()) == (960, 620)
    bad = run("plot", "--log", str(NANOGPT), "-o", str(tmp_path / "no" / "dir.png"), state=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("preflight: error: --output: got")


def test_watch_refreshes_until_ctrl_c(tmp_path: Path) -> None:
    import signal
    import time

    env = dict(os.environ, PREFLIGHT_STATE_DIR=str(tmp_path))
    proc = subprocess.Popen([str(PREFLIGHT), "watch", "--log", str(NANOGPT), "--interval", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        time.sleep(3.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out.count("preflight watch ") >= 2 and "Traceback" not in err  # refreshed, then left cleanly

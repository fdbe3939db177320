"""Hardening of the telemetry loop (issue 14): caller-named files, numbers, probe caps, one-batch calibration.

Each test fails on the code before this change: ``check --log /typo`` answered WAIT, ``plot --nvsmi
/typo`` ignored it, a FIFO blocked the reader, a file's first line came back in an error, a 400-digit
``--tokens-per-step`` was a traceback, ``heartbeat`` said nothing about a probe's cap, ``check`` on a probe
past its cap only reported it, and ``calibrate`` recorded its items one transaction each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers_probe import PROBE, SPEC
from helpers_tmux import TmuxTestServer, retry_until
from mcp import Client
from mcp.types import TextContent

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.common.files import ALLOW_PATHS_ENV
from gpu_preflight.tools.dispatch import get_run, heartbeat, launch_command, read_job, record_run
from gpu_preflight.tools.telemetry.tail import LogTail

FIXTURES = Path(__file__).parent / "fixtures"
NANOGPT = FIXTURES / "logs/nanogpt_a100_issue178_mfu.log"  # last train step 240
APPS = Path(__file__).parent / "tui_apps"
SECRET = "root:$6$s3cr3tHASHvalue:19000:0:99999:7:::"


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gpu_preflight.server", *args], capture_output=True, text=True,
                          timeout=timeout, env=os.environ.copy(), check=False)


def _text(result: Any) -> str:
    content = result.content
    assert isinstance(content[0], TextContent)
    return str(content[0].text)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.log"
    os.mkfifo(path)
    return path


# --- 1. caller-named files --------------------------------------------------------------------------------

def test_a_typo_in_a_log_path_is_an_error_naming_the_flag_not_wait() -> None:
    out = cli("check", "--log", "/nonexistent/train.log")
    assert out.returncode == 2 and out.stderr.startswith(
        "preflight: error: --log: got '/nonexistent/train.log'; allowed: a regular file holding a text log "
        "(it does not exist)"), out.stderr
    plot = cli("plot", "--log", str(NANOGPT), "--nvsmi", "/typo.csv", "-o", "/tmp/never.png")
    assert plot.returncode == 2 and plot.stderr.startswith("preflight: error: --nvsmi: got '/typo.csv'"), plot.stderr


@pytest.mark.parametrize("flag", ["--log", "--nvsmi"])
def test_a_fifo_or_a_directory_is_refused_without_blocking(fifo: Path, tmp_path: Path, flag: str) -> None:
    extra = [] if flag == "--log" else ["--log", str(NANOGPT)]
    for path, why in ((fifo, "it is a FIFO (named pipe)"), (tmp_path, "")):
        out = cli("check", *extra, flag, str(path), timeout=20)
        assert out.returncode == 2 and out.stderr.startswith(f"preflight: error: {flag}: got '"), out.stderr
        assert why in out.stderr
    ingest = cli("ingest", str(fifo), timeout=20)
    assert ingest.returncode == 2 and "FILE: got" in ingest.stderr and "FIFO" in ingest.stderr


def test_log_tail_refuses_a_fifo_and_reads_a_missing_log_as_not_yet(fifo: Path, tmp_path: Path) -> None:
    with pytest.raises(PreflightError) as info:
        LogTail(fifo, field="log_path")
    assert info.value.field == "log_path" and "FIFO" in info.value.one_line()
    with LogTail(tmp_path / "later.log") as tail:  # a run that has not written its log yet
        assert tail.poll().samples == []
    with pytest.raises(PreflightError):
        LogTail(tmp_path / "typo.log", must_exist=True)


@pytest.mark.anyio
async def test_errors_never_quote_file_content(tmp_path: Path, mcp_client: Client) -> None:
    secret = tmp_path / "shadow"
    secret.write_text(SECRET + "\n")
    for args in (("ingest", str(secret)), ("calibrate", str(tmp_path / "s.json"), "--probe", str(secret))):
        (tmp_path / "s.json").write_text(json.dumps(SPEC))
        out = cli(*args)
        assert out.returncode == 2 and "s3cr3t" not in out.stderr and "root:" not in out.stderr, out.stderr
    got = await mcp_client.call_tool("ingest_nvidia_smi", {"path": str(secret)})
    assert got.is_error is True and "s3cr3t" not in _text(got) and str(secret) in _text(got)
    # A regex that matches nothing reports counts only, never the lines it skipped.
    none = await mcp_client.call_tool("ingest_nvidia_smi", {"path": str(secret), "regex": r"zz (?P<step>\d+)"})
    assert "s3cr3t" not in _text(none) and "s3cr3t" not in json.dumps(none.structured_content)


@pytest.mark.anyio
async def test_allow_path_confines_every_telemetry_reader(tmp_path: Path, mcp_client: Client,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    inside = tmp_path / "ok"
    inside.mkdir()
    monkeypatch.setenv(ALLOW_PATHS_ENV, str(inside))
    got = await mcp_client.call_tool("ingest_nvidia_smi", {"path": str(NANOGPT), "regex": r"iter (?P<step>\d+)"})
    assert got.is_error is True and "path: got" in _text(got) and "allowed folder" in _text(got)
    run = record_run("train:0.0", "python train.py", kind="probe", log_path=str(inside / "t.log"),
                     socket_name="pf-test-nonexistent")
    check = await mcp_client.call_tool("run_check", {"run_id": run.run_id, "nvsmi_path": str(NANOGPT)})
    assert check.is_error is True and "nvsmi_path: got" in _text(check), _text(check)
    with pytest.raises(PreflightError) as info:
        LogTail(NANOGPT, field="log_path")
    assert info.value.field == "log_path"
    launch = await mcp_client.call_tool("launch_run", {"checklist_id": "c-none", "target": "x:0",
                                                       "command": "true", "log_path": str(NANOGPT)})
    assert launch.is_error is True and "log_path: got" in _text(launch), _text(launch)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["fifo", "dir", "nul"])
async def test_launch_run_refuses_a_log_path_that_is_no_file(kind: str, fifo: Path, tmp_path: Path,
                                                             mcp_client: Client) -> None:
    path = {"fifo": str(fifo), "dir": str(tmp_path), "nul": "a\x00b"}[kind]
    launch = await mcp_client.call_tool("launch_run", {"checklist_id": "c-none", "target": "x:0",
                                                       "command": "true", "log_path": path})
    assert launch.is_error is True and "log_path: got" in _text(launch), _text(launch)
    with pytest.raises(PreflightError) as info:
        launch_command("x:0", "true", kind="probe", log_path=path)
    assert info.value.field == "log_path"


# --- 2. numbers -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("flag", "value"), [
    ("--tokens-per-step", "9" * 400), ("--predicted-step-s", "inf"), ("--window-s", "nan"), ("--dph", "-1"),
    ("--num-gpus", "1e9"), ("--predicted-tps", "9" * 400), ("--gpu-interval-s", "0")])
def test_cli_numbers_are_physical_quantities(flag: str, value: str, tmp_path: Path) -> None:
    command = "plot" if flag == "--tokens-per-step" else "check"
    extra = ["-o", str(tmp_path / "x.png")] if command == "plot" else []
    if flag == "--dph":
        command, extra = "check", []
    out = cli(command, "--log", str(NANOGPT), *extra, flag, value)
    assert out.returncode == 2 and f"argument {flag}: got" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("\n") <= 3


# --- 3. probe caps ----------------------------------------------------------------------------------------

def test_steps_in_a_log_tail_and_the_heartbeat_cap() -> None:
    from gpu_preflight.tools.telemetry.probecap import steps_in_tail, tail_cap

    text = NANOGPT.read_text()
    assert steps_in_tail(text[-3000:]) == 240
    cap = tail_cap(100, None, 5.0, text[-3000:])
    assert cap is not None and cap.reached and cap.steps_done == 240
    assert tail_cap(None, None, 5.0, text) is None


def test_heartbeat_reports_the_probe_cap(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_bytes(NANOGPT.read_bytes())
    run = record_run("train:0.0", "python train.py", kind="probe", log_path=str(log), cap_steps=100,
                     socket_name="pf-test-nonexistent")
    hb = heartbeat(run_id=run.run_id)
    assert hb.probe_cap is not None and hb.probe_cap.reached and hb.probe_cap.steps_done == 240
    full = record_run("train:0.0", "python train.py", kind="full", log_path=str(log),
                      socket_name="pf-test-nonexistent")
    assert heartbeat(run_id=full.run_id).probe_cap is None


@pytest.mark.anyio
async def test_mcp_run_check_reports_the_cap_and_stays_read_only(tmp_path: Path, mcp_client: Client) -> None:
    log = tmp_path / "train.log"
    log.write_bytes(NANOGPT.read_bytes())
    run = record_run("train:0.0", "python train.py", kind="probe", log_path=str(log), cap_steps=100,
                     socket_name="pf-test-nonexistent")
    got = await mcp_client.call_tool("run_check", {"run_id": run.run_id, "window_s": 30})
    sc = got.structured_content
    assert sc is not None and sc["probe_cap"]["reached"] is True and sc["decision"]["decision"] == "kill"
    # The reason names the MCP tool that stops it (not a Python function or a shell command, issue 20).
    reason = sc["decision"]["reason"]
    assert "stop_run(run_id)" in reason and "interrupt_run" not in reason and "preflight" not in reason


def _probe(tmux_srv: TmuxTestServer, tmp_path: Path) -> tuple[str, Path]:
    log = tmp_path / "probe.log"
    command = f"{sys.executable} {APPS / 'fake_train.py'} --log {log} --steps 400 --step-s 0.05"
    launched = launch_command(tmux_srv.shell(), command, kind="probe", log_path=str(log), cap_steps=8,
                              socket_name=tmux_srv.socket_name)
    assert launched.run is not None and launched.dispatch.status == "submitted"
    retry_until(lambda: log.exists() and log.read_text().count("\n") >= 10, timeout_s=15, what="past the cap")
    return launched.run.run_id, log


def test_cli_check_stops_a_probe_at_its_cap_by_default(tmux_srv: TmuxTestServer, tmp_path: Path) -> None:
    run_id, _ = _probe(tmux_srv, tmp_path)
    report = cli("check", run_id, "--no-enforce-caps", "--json", "--window-s", "5")
    assert report.returncode == 3 and "enforced" not in json.loads(report.stdout)
    job_id = get_run(run_id).job_id
    assert job_id is not None and not read_job(job_id).exited  # opted out: still running
    done = cli("check", run_id, "--json", "--window-s", "5")
    payload = json.loads(done.stdout)
    assert payload["probe_cap"]["reached"] is True and payload["enforced"]["stopped"] is True, done.stdout
    assert read_job(job_id).exited


@pytest.mark.anyio
async def test_mcp_stop_run_stops_a_probe_past_its_cap_and_proves_it(tmux_srv: TmuxTestServer, tmp_path: Path,
                                                                      mcp_client: Client) -> None:
    run_id, _ = _probe(tmux_srv, tmp_path)
    check = await mcp_client.call_tool("run_check", {"run_id": run_id, "window_s": 5})
    assert check.structured_content is not None and check.structured_content["decision"]["decision"] == "kill"
    got = await mcp_client.call_tool("stop_run", {"run_id": run_id})
    sc = got.structured_content
    assert not got.is_error and sc is not None and sc["stopped"] is True and sc["exit_code"] not in (None, 0)
    job_id = get_run(run_id).job_id
    assert job_id is not None and read_job(job_id).exited  # proven by the job's exit record
    bad = await mcp_client.call_tool("stop_run", {"run_id": "r000000000000"})
    assert bad.is_error and "run_id" in str(bad.content[0])


# --- 4. calibrate records one batch -----------------------------------------------------------------------

@pytest.mark.anyio
async def test_calibrate_records_its_items_in_one_batch(mcp_client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from gpu_preflight.server import evidence_bridge

    calls: list[list[str]] = []
    real = evidence_bridge.attach_items

    def counting(checklist_id: str, spec: Any, items: dict[str, Any], tool: str, *a: Any, **k: Any) -> Any:
        calls.append(sorted(items))
        return real(checklist_id, spec, items, tool, *a, **k)

    monkeypatch.setattr(evidence_bridge, "attach_items", counting)
    start = await mcp_client.call_tool("checklist_start", {"run_name": "probe", "policy": "run-calibrated",
                                                           "spec": SPEC})
    assert start.structured_content is not None
    result = await mcp_client.call_tool("calibrate", {"probe": PROBE, "checklist_id": start.structured_content["id"]})
    assert result.is_error is False, _text(result)
    assert result.structured_content is not None
    attached = result.structured_content["checklist"]["attached"]
    assert len(calls) == 1 and calls[0] == sorted(attached) and len(attached) >= 3


def test_a_log_replaced_by_a_fifo_does_not_block_the_heartbeat(tmp_path: Path) -> None:
    """hbscan.read_log opens non-blocking and reads regular files only (a FIFO would block forever)."""
    import os
    import time

    from gpu_preflight.tools.dispatch.hbscan import read_log

    fifo = tmp_path / "train.log"
    os.mkfifo(fifo)
    started = time.monotonic()
    assert read_log(str(fifo), time.time()) is None
    assert time.monotonic() - started < 1.0
    regular = tmp_path / "ok.log"
    regular.write_text("step 1\rstep 2\n")
    view = read_log(str(regular), time.time())
    assert view is not None and view.last_line == "step 2" and view.size_bytes == 14

"""Rough edges a new user met on the CLI, as they meet them: the installed ``preflight`` command.

- ``heartbeat --all`` with no tmux server on the socket printed nothing and exited 0.
- The probe JSON of ``calibrate --probe`` was documented nowhere, and a bad probe said "and 1 more
  problem" instead of the problems; its schema is now in ``calibrate --help`` and the MCP resource
  ``preflight://schema/probe``, and a refusal lists every problem.
- A dispatch prompt starting with ``-`` is read as an option; the error now says to put ``--`` first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from helpers_spec import EXAMPLES
from mcp import Client

from gpu_preflight.tools.telemetry.calibrate import Probe

PREFLIGHT = shutil.which("preflight")
TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(PREFLIGHT is None, reason="the preflight console script is not installed")
SPEC = str(EXAMPLES / "llama-3.2-1b-lora.toml")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PREFLIGHT), *args], capture_output=True, text=True, timeout=60, check=False,
                          env=dict(os.environ))


@pytest.fixture
def socket_name() -> Iterator[str]:
    """A tmux socket name no server uses yet; any server started on it is killed at the end."""
    name = f"preflight-edge-{uuid.uuid4().hex[:8]}"
    yield name
    if TMUX:
        subprocess.run([TMUX, "-L", name, "kill-server"], capture_output=True, timeout=10, check=False)


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
def test_heartbeat_all_names_the_socket_without_a_server(socket_name: str) -> None:
    out = run("heartbeat", "--all", "-L", socket_name)
    assert out.returncode == 0, out.stderr
    assert f"no tmux server on socket -L {socket_name}" in out.stdout
    data = json.loads(run("heartbeat", "--all", "-L", socket_name, "--json").stdout)
    assert data["heartbeats"] == [] and data["tmux_server_running"] is False
    assert f"-L {socket_name}" in data["note"]


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
def test_heartbeat_all_with_a_server_reports_its_panes(socket_name: str) -> None:
    assert TMUX is not None
    subprocess.run([TMUX, "-L", socket_name, "new-session", "-d", "-s", "edge", "sleep 60"], check=True, timeout=10)
    data = json.loads(run("heartbeat", "--all", "-L", socket_name, "--json").stdout)
    assert data["tmux_server_running"] is True and "note" not in data
    assert [hb["target"] for hb in data["heartbeats"]] == ["edge:0.0"]


def test_calibrate_help_lists_every_probe_field() -> None:
    out = run("calibrate", "--help")
    assert out.returncode == 0
    listed = [line.split()[0] for line in out.stdout.split("\nprobe JSON (", 1)[1].splitlines()[2:] if line.strip()]
    assert listed == list(Probe.model_fields)
    assert "give median_step_time_s or tokens_per_s" in out.stdout
    assert "steps_measured (integer, required) [>= 1" in out.stdout


def test_a_bad_probe_lists_every_problem() -> None:
    probe = {"gpu": "RTX 4090", "gpu_util_pct": 140, "steps_measured": 0, "speed": 3}
    out = run("calibrate", SPEC, "--probe", json.dumps(probe))
    assert out.returncode == 2
    err = out.stderr
    assert "more problem" not in err
    for problem in ("probe.gpu_util_pct: Input should be less than or equal to 100 (got 140)",
                    "probe.steps_measured: Input should be greater than or equal to 1 (got 0)",
                    "probe.speed: Extra inputs are not permitted",
                    "give median_step_time_s or tokens_per_s"):
        assert problem in err, problem
    assert "4 problems" in err and "`preflight calibrate --help`" in err
    assert err.count("\n") == 1  # still one line


@pytest.mark.anyio
async def test_probe_schema_resource_validates_what_calibrate_accepts(mcp_client: Client) -> None:
    read = await mcp_client.read_resource("preflight://schema/probe")
    schema = json.loads(read.contents[0].text)  # type: ignore[union-attr]
    assert set(schema["properties"]) == set(Probe.model_fields)
    assert schema["required"] == ["gpu", "steps_measured"]
    assert {"required": ["tokens_per_s"]} in schema["anyOf"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["gpu_util_pct"]["anyOf"][0]["maximum"] == 100


@pytest.mark.parametrize("argv", [["dispatch", "work:0.0", "-x"], ["dispatch", "work:0.0", "hi", "--fix"],
                                  ["launch", "work:0.0", "--checklist", "ck-000000000000", "-m"]])
def test_a_text_starting_with_a_dash_is_told_to_use_double_dash(argv: list[str]) -> None:
    out = run(*argv)
    assert out.returncode == 2
    assert "needs `--` before it" in out.stderr and out.stderr.count("\n") == 1


def test_double_dash_passes_a_dash_prompt_through() -> None:
    # With `--` the text parses; dispatching to a pane on a socket with no server is then refused (exit 1).
    out = run("dispatch", "work:0.0", "-L", f"preflight-edge-{uuid.uuid4().hex[:8]}", "--", "-x please")
    assert out.returncode == 1, out.stderr
    assert "needs `--`" not in out.stderr

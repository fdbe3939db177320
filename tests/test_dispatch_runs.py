"""Runs, the launch hook for the checklist gate, and the audit trail."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_tmux import TmuxTestServer

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.dispatch import dispatch, get_run, launch_command, list_audit, list_runs, record_run


def test_record_and_get_run_round_trip() -> None:
    run = record_run("train:0.1", "python train.py", kind="probe", pid=42, log_path="/tmp/x.log",
                     predicted_tokens_per_s=1500.0, cap_seconds=300.0, checklist_id="c1")
    assert get_run(run.run_id) == run
    assert [r.run_id for r in list_runs()] == [run.run_id]
    with pytest.raises(PreflightError):
        get_run("r-nope")
    with pytest.raises(PreflightError):
        record_run("train:0.1", "x", kind="sweep")  # type: ignore[arg-type]


def test_gate_is_called_first_and_a_refusal_types_nothing(tmux_srv: TmuxTestServer, tmp_path: Path) -> None:
    pane = tmux_srv.shell()
    order: list[str] = []

    def gate() -> None:
        order.append("gate")
        raise PreflightError("checklist", "c1", "a checklist with every item evidenced", "2 items missing")

    with pytest.raises(PreflightError, match="2 items missing"):
        launch_command(pane, f"touch {tmp_path / 'no'}", kind="full", gate=gate, socket_name=tmux_srv.socket_name)
    assert order == ["gate"] and list_audit() == [] and list_runs() == []
    assert tmux_srv.capture(pane) == ["$"]


@pytest.mark.parametrize(("command", "log_path", "field"), [
    ("\x1b[201~", None, "command"),  # only a paste marker: nothing left to run
    ("   ", None, "command"),
    ("echo \x1b[31mred", None, "command"),  # a control character, refused by default
    ("python train.py", "train\x00.log", "log_path"),
])
def test_a_bad_command_is_refused_before_the_gate_naming_the_field(
        tmux_srv: TmuxTestServer, command: str, log_path: str | None, field: str) -> None:
    """Regression (the MCP fuzz): launch_run named the command 'text' (dispatch's word for it) and checked
    it only after the gate had recorded a decision."""
    pane = tmux_srv.shell()
    gate_calls: list[str] = []
    with pytest.raises(PreflightError) as info:
        launch_command(pane, command, kind="probe", log_path=log_path, gate=lambda: gate_calls.append("gate"),
                       socket_name=tmux_srv.socket_name)
    assert info.value.field == field
    assert gate_calls == [] and list_audit() == [] and list_runs() == []


def test_launch_records_the_run_with_its_pid_and_job(tmux_srv: TmuxTestServer) -> None:
    pane = tmux_srv.shell()
    calls: list[str] = []
    launched = launch_command(pane, "sleep 5", kind="probe", cap_steps=20, predicted_tokens_per_s=900.0,
                              gate=lambda: calls.append("ok"), socket_name=tmux_srv.socket_name)
    assert calls == ["ok"] and launched.dispatch.status == "submitted" and launched.run is not None
    run = get_run(launched.run.run_id)
    assert (run.pid, run.job_id, run.pane_id) == (launched.dispatch.pid, launched.dispatch.job_id, pane)
    assert run.kind == "probe" and run.cap_steps == 20 and run.audit_id == launched.dispatch.audit_id
    refused = launch_command(pane, "true", kind="full", socket_name=tmux_srv.socket_name)  # the shell is busy
    assert refused.dispatch.status == "refused" and refused.run is None


def test_every_dispatch_is_audited_by_hash_not_text(tmux_srv: TmuxTestServer) -> None:
    pane = tmux_srv.shell()
    secret = "export TOKEN=hunter2-" + "x" * 100 + " && true"
    ok = dispatch(pane, secret, socket_name=tmux_srv.socket_name)
    refused = dispatch("%99999", "true", socket_name=tmux_srv.socket_name)
    rows = list_audit()
    assert [row.status for row in rows] == [refused.status, ok.status] == ["refused", "submitted"]
    assert rows[1].text_sha256 == ok.text_sha256 and rows[1].text_bytes == len(secret)
    assert len(rows[1].text_preview) <= 62 and secret not in rows[1].text_preview
    assert rows[1].enter_count == 1 and rows[1].latency_ms > 0 and rows[1].evidence

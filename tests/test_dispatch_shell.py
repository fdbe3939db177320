"""Shell mode against real bash in a private tmux server: each failure mode fails with a naive send
(shown first in each test) and is handled by the dispatcher."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers_tmux import APPS, TmuxTestServer, naive_libtmux, naive_one_call, retry_until, settle

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.dispatch import dispatch, list_audit, procfs, read_job, wait_for_exit
from gpu_preflight.tools.dispatch.target import make_tmux


def test_job_is_confirmed_by_its_start_record_and_exit_code_is_recorded(tmux_srv: TmuxTestServer) -> None:
    pane = tmux_srv.shell()
    result = dispatch(pane, f"python3 {APPS / 'exit_with.py'} 3", socket_name=tmux_srv.socket_name)
    assert result.status == "submitted", result
    assert result.enter_count == 1 and result.pid and result.job_id
    assert result.confirm_latency_ms is not None and result.latency_ms >= result.confirm_latency_ms
    record = wait_for_exit(result.job_id, make_tmux(tmux_srv.socket_name), timeout_s=5)
    assert record.exit_code == 3
    assert tmux_srv.display(pane, "#{@pf_job}") == f"{result.job_id}:done:3"
    assert [row.status for row in list_audit(pane_id=pane)] == ["submitted"]


def test_trailing_escaped_semicolon_survives(tmux_srv: TmuxTestServer, tmp_path: Path) -> None:
    (tmp_path / "marker").touch()
    command = f"find {tmp_path} -name marker -exec touch {{}}.found \\;"
    naive = tmux_srv.shell()
    tmux_srv.tmux("send-keys", "-t", naive, "-l", "--", command)  # even literal + "--" eats the "\;"
    tmux_srv.tmux("send-keys", "-t", naive, "Enter")
    retry_until(lambda: "missing argument" in tmux_srv.screen(naive), what="find's complaint")
    assert not (tmp_path / "marker.found").exists()

    result = dispatch(tmux_srv.shell(), command, socket_name=tmux_srv.socket_name)
    assert result.status == "submitted"
    retry_until(lambda: (tmp_path / "marker.found").exists(), what="find -exec ran")


def test_tab_in_a_multiline_script_is_not_taken_for_completion(tmux_srv: TmuxTestServer, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    script = f"cat > {out} <<'EOF'\ncol1\tcol2\nEOF"
    naive_libtmux(tmux_srv, tmux_srv.shell(), script, literal=True)
    retry_until(out.exists, what="naive heredoc")
    settle(tmux_srv, "%0")
    assert "\t" not in out.read_text()  # readline ate the TAB as a completion request
    out.unlink()

    result = dispatch(tmux_srv.shell(), script, socket_name=tmux_srv.socket_name)
    assert result.status == "submitted"
    retry_until(lambda: out.exists() and out.read_text() == "col1\tcol2\n", what="exact heredoc")


def test_command_over_16_kb_goes_through(tmux_srv: TmuxTestServer, tmp_path: Path) -> None:
    out = tmp_path / "count"
    command = f"printf %s '{'A' * 20_000}' | wc -c > {out}"
    with pytest.raises(RuntimeError, match="command too long"):
        tmux_srv.tmux("send-keys", "-t", tmux_srv.shell(), "-l", "--", command)
    result = dispatch(tmux_srv.shell(), command, socket_name=tmux_srv.socket_name)
    assert result.status == "submitted"
    retry_until(lambda: out.exists() and out.read_text().strip() == "20000", what="20000 bytes counted")


def test_control_character_rejected_or_stripped(tmux_srv: TmuxTestServer, tmp_path: Path) -> None:
    out = tmp_path / "ctrl"
    command = f"echo a\x03b > {out}"
    naive = tmux_srv.shell()
    naive_libtmux(tmux_srv, naive, command, literal=True)  # ^C cancels "echo a"; then "b > ..." runs
    retry_until(lambda: f"$ b > {out}" in tmux_srv.screen(naive), what="the mangled command")
    retry_until(out.exists)
    assert out.read_text() == ""

    pane = tmux_srv.shell()
    with pytest.raises(PreflightError, match="control character"):
        dispatch(pane, command, socket_name=tmux_srv.socket_name)
    assert dispatch(pane, command, socket_name=tmux_srv.socket_name, controls="strip").status == "submitted"
    retry_until(lambda: out.exists() and out.read_text() == "ab\n", what="stripped command ran")


def test_refuses_an_input_line_holding_someone_elses_draft(tmux_srv: TmuxTestServer, tmp_path: Path) -> None:
    naive = tmux_srv.shell()
    tmux_srv.tmux("send-keys", "-t", naive, "-l", "echo DRAFT")
    naive_one_call(tmux_srv, naive, "echo ours")
    retry_until(lambda: "DRAFTecho ours" in tmux_srv.screen(naive), what="the draft was submitted with ours")

    pane = tmux_srv.shell()
    tmux_srv.tmux("send-keys", "-t", pane, "-l", "echo DRAFT")
    retry_until(lambda: "echo DRAFT" in tmux_srv.screen(pane))
    result = dispatch(pane, f"touch {tmp_path / 'x'}", socket_name=tmux_srv.socket_name)
    assert result.status == "refused" and "input line" in result.reason
    assert result.enter_count == 0 and tmux_srv.capture(pane)[-1] == "$ echo DRAFT"


def test_refuses_a_shell_whose_foreground_is_another_program(tmux_srv: TmuxTestServer, tmp_path: Path) -> None:
    sink, marker = tmp_path / "sink", tmp_path / "marker"
    naive = tmux_srv.shell()
    tmux_srv.tmux("send-keys", "-t", naive, f"cat > {sink}", "Enter")
    retry_until(lambda: tmux_srv.display(naive, "#{pane_current_command}") == "cat")
    naive_libtmux(tmux_srv, naive, f"touch {marker}")
    retry_until(lambda: sink.exists() and "touch" in sink.read_text(), what="command typed into cat")
    assert not marker.exists()

    result = dispatch(naive, f"touch {marker}", socket_name=tmux_srv.socket_name)
    assert result.status == "refused" and "cat runs in the foreground" in result.reason


def test_copy_mode_refused_or_cancelled_on_request(tmux_srv: TmuxTestServer, tmp_path: Path) -> None:
    marker = tmp_path / "m"
    pane = tmux_srv.shell()
    tmux_srv.tmux("copy-mode", "-t", pane)
    naive_libtmux(tmux_srv, pane, f"touch {marker}", literal=True)
    settle(tmux_srv, pane)
    assert not marker.exists() and tmux_srv.display(pane, "#{pane_in_mode}") == "1"

    refused = dispatch(pane, f"touch {marker}", socket_name=tmux_srv.socket_name)
    assert refused.status == "refused" and "copy-mode" in refused.reason
    done = dispatch(pane, f"touch {marker}", socket_name=tmux_srv.socket_name, cancel_mode=True)
    assert done.status == "submitted"
    retry_until(marker.exists)


def test_input_disabled_pane_is_refused(tmux_srv: TmuxTestServer, tmp_path: Path) -> None:
    pane = tmux_srv.shell()
    tmux_srv.tmux("select-pane", "-d", "-t", pane)
    naive_libtmux(tmux_srv, pane, f"touch {tmp_path / 'm'}")
    settle(tmux_srv, pane)
    assert not (tmp_path / "m").exists()
    result = dispatch(pane, "true", socket_name=tmux_srv.socket_name)
    assert result.status == "refused" and "input is disabled" in result.reason


def test_wrapper_records_on_its_own_pane_not_the_active_one(tmux_srv: TmuxTestServer) -> None:
    pane = tmux_srv.shell()  # windows are created detached: the session's active pane is another one
    active = tmux_srv.tmux("display-message", "-p", "-t", "base", "#{pane_id}").strip()
    assert active != pane
    result = dispatch(pane, "tmux set-option -p @naive_mark 1", socket_name=tmux_srv.socket_name)
    assert result.status == "submitted" and result.job_id
    record = wait_for_exit(result.job_id, make_tmux(tmux_srv.socket_name), timeout_s=5)
    assert record.exit_code == 0
    assert tmux_srv.display(active, "#{@naive_mark}") == "1"  # tmux without -t hit the active pane
    assert tmux_srv.display(pane, "#{@naive_mark}") == ""
    assert tmux_srv.display(pane, "#{@pf_job}") == f"{result.job_id}:done:0"  # the wrapper used -t $TMUX_PANE


def test_missing_or_dead_panes_are_refused(tmux_srv: TmuxTestServer) -> None:
    assert dispatch("%9999", "true", socket_name=tmux_srv.socket_name).status == "refused"
    dead = tmux_srv.window("true", remain_on_exit=True)
    retry_until(lambda: tmux_srv.display(dead, "#{pane_dead}") == "1")
    result = dispatch(dead, "true", socket_name=tmux_srv.socket_name)
    assert result.status == "refused" and "dead" in result.reason
    assert read_job("jnotthere").pid is None


def test_ctrl_c_in_a_job_still_leaves_an_exit_record(tmux_srv: TmuxTestServer) -> None:
    pane = tmux_srv.shell()
    result = dispatch(pane, "sleep 30", socket_name=tmux_srv.socket_name)
    assert result.status == "submitted" and result.job_id
    stats = procfs.all_stats
    retry_until(lambda: any(stats()[p].comm == "sleep" for p in procfs.descendants(result.pid or 0, stats())),
                what="sleep under the wrapper")
    subprocess.run(["tmux", "-L", tmux_srv.socket_name, "send-keys", "-t", pane, "C-c"], check=True)
    record = wait_for_exit(result.job_id, make_tmux(tmux_srv.socket_name), timeout_s=5)
    assert record.exit_code == 130 and record.signal == 2

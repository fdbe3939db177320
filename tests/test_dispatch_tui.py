"""TUI mode against fixture apps that read input the way Ink and Codex do. Every test shows the naive
send failing first (scored against the app's own log, never the screen), then the dispatcher."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
from helpers_tmux import (
    TmuxTestServer,
    log_events,
    naive_libtmux,
    naive_one_call,
    naive_paste,
    retry_until,
    settle,
    submitted,
    wait_ready,
)

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.dispatch import DispatchResult, TuiTiming, dispatch


class Apps:
    """Start fixture apps on the module's server, each with its own ground-truth log."""

    def __init__(self, srv: TmuxTestServer, folder: Path) -> None:
        self.srv, self.folder, self.count = srv, folder, 0

    def start(self, name: str, *flags: str, wait: bool = True) -> tuple[str, Path]:
        self.count += 1
        log = self.folder / f"app{self.count}.jsonl"
        pane = self.srv.app(name, log, *flags)
        if wait:
            wait_ready(log)
        return pane, log


@pytest.fixture
def apps(tmux_srv: TmuxTestServer, tmp_path: Path) -> Apps:
    return Apps(tmux_srv, tmp_path)


def tui(srv: TmuxTestServer, pane: str, text: str, **options: object) -> DispatchResult:
    return dispatch(pane, text, "tui", socket_name=srv.socket_name, **options)  # type: ignore[arg-type]


def test_one_call_text_and_enter_is_lost_on_ink(tmux_srv: TmuxTestServer, apps: Apps) -> None:
    pane, log = apps.start("ink_like.py")
    naive_one_call(tmux_srv, pane, "hello ink")
    assert "> hello ink" in settle(tmux_srv, pane)
    assert submitted(log) == []  # "hello ink\r" arrived as one chunk: typed text, no submit
    again = tui(tmux_srv, pane, "second prompt")
    assert again.status == "refused" and "did not type" in again.reason and again.enter_count == 0

    pane, log = apps.start("ink_like.py")
    result = tui(tmux_srv, pane, "hello ink")
    assert result.status == "submitted", result
    assert submitted(log) == ["hello ink"]


def test_libtmux_send_keys_is_lost_when_the_event_loop_stalls(tmux_srv: TmuxTestServer, apps: Apps) -> None:
    pane, log = apps.start("ink_like.py", "--stall-ms", "150-150")
    lost = False
    for attempt in range(3):  # text and Enter 2 ms apart land in one read ~99% of the time
        naive_libtmux(tmux_srv, pane, f"try{attempt}")
        settle(tmux_srv, pane, quiet_s=0.4)
        if len(submitted(log)) <= attempt:  # this attempt's Enter did not submit
            lost = True
            break
    assert lost, submitted(log)

    pane, log = apps.start("ink_like.py", "--stall-ms", "0-300")
    for index in range(3):
        result = tui(tmux_srv, pane, f"stalled prompt {index}")
        assert result.status == "submitted", result
        assert 1 <= result.enter_count <= 4
    assert submitted(log) == ["stalled prompt 0", "stalled prompt 1", "stalled prompt 2"]


def test_codex_turns_a_quick_enter_into_a_newline(tmux_srv: TmuxTestServer, apps: Apps) -> None:
    pane, log = apps.start("codex_like.py")
    before = tmux_srv.capture(pane)
    naive_libtmux(tmux_srv, pane, "fix the bug")
    after = settle(tmux_srv, pane)
    assert after != before  # a "screen changed" check would call this a success...
    assert submitted(log) == []  # ...but the Enter became a newline inside the composer

    pane, log = apps.start("codex_like.py")
    result = tui(tmux_srv, pane, "fix the bug")
    assert result.status == "submitted" and result.enter_count == 1, result
    assert submitted(log) == ["fix the bug"]


def test_input_sent_while_the_app_boots_is_discarded(tmux_srv: TmuxTestServer, apps: Apps) -> None:
    pane, log = apps.start("ink_like.py", "--start-delay-ms", "600", wait=False)
    naive_libtmux(tmux_srv, pane, "too early")
    wait_ready(log)
    assert submitted(log) == []

    pane, log = apps.start("ink_like.py", "--start-delay-ms", "600", wait=False)
    result = tui(tmux_srv, pane, "waited for the composer")
    assert result.status == "submitted", result
    assert submitted(log) == ["waited for the composer"]


def test_trailing_newline_in_a_bracketed_paste_is_not_a_submit(tmux_srv: TmuxTestServer, apps: Apps) -> None:
    pane, log = apps.start("ink_like.py")
    naive_paste(tmux_srv, pane, "pasted prompt\n")
    settle(tmux_srv, pane)
    assert submitted(log) == []

    pane, log = apps.start("ink_like.py")
    assert tui(tmux_srv, pane, "pasted prompt\n", delivery="paste").status == "submitted"
    assert submitted(log) == ["pasted prompt"]


def test_paste_end_sequence_cannot_inject_a_submit(tmux_srv: TmuxTestServer, apps: Apps) -> None:
    payload = "first\x1b[201~\rsecond"
    pane, log = apps.start("codex_like.py")  # reads key by key, like most TUIs outside Ink
    naive_paste(tmux_srv, pane, payload)
    retry_until(lambda: submitted(log) == ["first"], what="the injected submit")  # nobody pressed Enter

    pane, log = apps.start("codex_like.py")
    with pytest.raises(PreflightError, match="bracketed-paste marker"):  # refused with the reason, not stripped
        tui(tmux_srv, pane, payload)
    result = tui(tmux_srv, pane, payload, controls="strip")  # asked for: the marker goes; CR is a line break
    assert result.status == "submitted", result
    assert submitted(log) == ["first\nsecond"]
    crlf = tui(tmux_srv, pane, "line one\r\nline two")  # a prompt's CRLF is its line break, never a submit
    assert crlf.status == "submitted", crlf
    assert submitted(log) == ["first\nsecond", "line one\nline two"]
    with pytest.raises(PreflightError, match="control character"):
        tui(tmux_srv, pane, "\x1b[2Jclear the screen")


def test_key_names_are_typed_not_pressed(tmux_srv: TmuxTestServer, apps: Apps) -> None:
    pane, log = apps.start("ink_like.py")
    naive_libtmux(tmux_srv, pane, "C-c")
    retry_until(lambda: log_events(log, "ctrl-c"), what="the app got ^C instead of text")

    pane, log = apps.start("ink_like.py")
    assert tui(tmux_srv, pane, "C-c").status == "submitted"
    assert submitted(log) == ["C-c"]


def test_trailing_semicolon_and_leading_dash_arrive_intact(tmux_srv: TmuxTestServer, apps: Apps) -> None:
    pane, _ = apps.start("ink_like.py")
    tmux_srv.tmux("send-keys", "-t", pane, "-l", "--", "int x = 1;")
    assert "> int x = 1" in settle(tmux_srv, pane) and "> int x = 1;" not in tmux_srv.screen(pane)
    with pytest.raises(RuntimeError, match="unknown flag"):
        tmux_srv.tmux("send-keys", "-t", pane, "-l", "-n hello")

    pane, log = apps.start("ink_like.py")
    assert tui(tmux_srv, pane, "int x = 1;").status == "submitted"
    assert tui(tmux_srv, pane, "-n hello").status == "submitted"
    assert submitted(log) == ["int x = 1;", "-n hello"]


def test_text_over_16_kb_goes_through_the_paste_buffer(tmux_srv: TmuxTestServer, apps: Apps) -> None:
    big = "word " * 4000
    pane, log = apps.start("ink_like.py")
    with pytest.raises(RuntimeError, match="command too long"):
        tmux_srv.tmux("send-keys", "-t", pane, "-l", "--", big)
    result = tui(tmux_srv, pane, big)
    assert result.status == "submitted", result
    assert submitted(log) == [big]


def test_multiline_prompt_with_paste_placeholder(tmux_srv: TmuxTestServer, apps: Apps) -> None:
    text = "line one\nline two\nline three\nline four"
    pane, log = apps.start("ink_like.py")
    result = tui(tmux_srv, pane, text)
    assert result.status == "submitted", result
    assert submitted(log) == [text]


def test_cooked_reader_would_truncate_a_long_line(tmux_srv: TmuxTestServer, tmp_path: Path) -> None:
    out = tmp_path / "len"
    reader = f"{sys.executable} -c \"open('{out}', 'w').write(str(len(input())))\""
    naive = tmux_srv.window(reader)
    retry_until(lambda: tmux_srv.display(naive, "#{pane_current_command}").startswith("python"))
    naive_paste(tmux_srv, naive, "z" * 6000)
    tmux_srv.tmux("send-keys", "-t", naive, "Enter")
    retry_until(lambda: out.exists() and out.read_text() == "4095", what="the truncated line")

    pane = tmux_srv.window(reader)
    retry_until(lambda: tmux_srv.display(pane, "#{pane_current_command}").startswith("python"))
    result = tui(tmux_srv, pane, "z" * 6000)
    assert result.status == "refused" and "4095" in result.reason


def test_never_presses_enter_on_someone_elses_draft(tmux_srv: TmuxTestServer, apps: Apps) -> None:
    pane, log = apps.start("ink_like.py")
    tmux_srv.tmux("send-keys", "-t", pane, "-l", "human draft")
    retry_until(lambda: "> human draft" in tmux_srv.screen(pane))
    result = tui(tmux_srv, pane, "agent prompt")
    assert result.status == "refused" and result.enter_count == 0
    settle(tmux_srv, pane)
    assert submitted(log) == [] and "> human draft" in tmux_srv.screen(pane)


def test_enter_that_never_submits_is_unconfirmed_not_a_success(tmux_srv: TmuxTestServer, apps: Apps) -> None:
    pane, log = apps.start("ink_like.py", "--ignore-enter")
    result = tui(tmux_srv, pane, "stuck prompt", timing=TuiTiming(confirm_window_s=0.2))
    assert result.status == "unconfirmed" and result.enter_count == 4, result  # 1 press + 3 retries
    assert submitted(log) == []


def test_busy_agent_refused_or_queued(tmux_srv: TmuxTestServer, apps: Apps) -> None:
    pane, log = apps.start("ink_like.py", "--busy-ms", "3000")
    assert tui(tmux_srv, pane, "first").status == "submitted"
    retry_until(lambda: "esc to interrupt" in tmux_srv.screen(pane))
    busy = tui(tmux_srv, pane, "second")
    assert busy.status == "refused" and "busy" in busy.reason
    queued = tui(tmux_srv, pane, "second", on_busy="queue")
    assert queued.status == "queued", queued
    assert [row["queued"] for row in log_events(log, "submit")] == [False, True]


def test_open_dialog_is_refused(tmux_srv: TmuxTestServer) -> None:
    pane = tmux_srv.window("printf 'Do you want to proceed? (y/n)\\n> '; read answer; sleep 100")
    retry_until(lambda: "proceed" in tmux_srv.screen(pane))
    result = tui(tmux_srv, pane, "yes please")
    assert result.status == "refused" and "dialog" in result.reason


def test_one_dispatch_at_a_time_per_pane(tmux_srv: TmuxTestServer, apps: Apps) -> None:
    pane, log = apps.start("ink_like.py", "--stall-ms", "0-30")
    results: list[DispatchResult] = []
    texts = ["alpha alpha alpha", "beta beta beta"]
    threads = [threading.Thread(target=lambda t=t: results.append(tui(tmux_srv, pane, t))) for t in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(result.status for result in results) == ["submitted", "submitted"]
    assert sorted(submitted(log)) == texts
    assert max(result.timings_ms["lock_wait"] for result in results) > 0

"""The dispatcher's injection payloads over SSH (issue 17): each arrives verbatim in a pane on the box, or is
refused naming the field before anything is typed; hostile host names, targets and sockets never reach ssh.

The payloads are the suite's own lists: the tmux key names, escapes and odd strings of the MCP fuzz sweep
(``tests/test_mcp_fuzz.py``) and the prompts the real agent TUIs must take verbatim
(``tests/test_realapps_dispatch.py``). The box is this machine through one real sshd for the module
(tests/sshd.py); its tmux server is driven only through ssh. Ground truth: in shell mode, the bytes a
``printf`` of the payload wrote on the box; in tui mode, the submit log of a stand-in reader that reads
input as Ink does (``tests/tui_apps/ink_whole_paste.py``: what the property needs is a raw-mode reader whose
log says what it got, not a model server; the real app over ssh is tests/test_remote_tui.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
import unicodedata
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers_tmux import APPS, submitted
from sshd import Sshd, close_ssh_masters
from test_mcp_fuzz import ODD_TEXT, TMUX_KEYS
from test_realapps_dispatch import PROMPTS

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.dispatch import dispatch, heartbeat, list_pane_infos, wait_idle
from gpu_preflight.tools.hosts import Host, call

PAYLOADS = list(dict.fromkeys(TMUX_KEYS + ODD_TEXT + PROMPTS))
SHELL = "exec env PS1='$ ' HISTFILE=/dev/null PROMPT_COMMAND= /bin/bash --norc --noprofile"


def _has_control(text: str) -> bool:
    """C0/C1 controls other than TAB and LF: what a dispatch refuses by default (CR included)."""
    return any(unicodedata.category(ch) == "Cc" and ch not in "\t\n" for ch in text)


class Box:
    def __init__(self, sshd: Sshd, socket_name: str) -> None:
        self.sshd, self.socket_name = sshd, socket_name

    def host(self) -> Host:
        return self.sshd.register()

    def tmux(self, *args: str) -> str:
        done = call(self.host(), ["tmux", "-L", self.socket_name, *args], timeout_s=10)
        assert done.rc == 0, done
        return done.stdout

    def window(self, command: str, ready: str) -> str:
        pane = self.tmux("new-window", "-d", "-P", "-F", "#{pane_id}", command).strip()
        deadline = time.monotonic() + 10
        while ready not in self.tmux("capture-pane", "-p", "-t", pane):
            assert time.monotonic() < deadline, self.tmux("capture-pane", "-p", "-t", pane)
            time.sleep(0.05)
        return pane


@pytest.fixture(scope="module")
def module_box(ssh_client_key: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sshd, str]]:
    """One sshd and one tmux server on the box for the whole module (the payloads are many)."""
    srv = Sshd(tmp_path_factory.mktemp("sshd"), ssh_client_key)
    srv.trust()
    srv.start()
    socket_name = f"pfinject-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    started = subprocess.run(["tmux", "-L", socket_name, "-f", "/dev/null", "new-session", "-d", "-s", "box", "-x",
                              "120", "-y", "40", "sleep 100000"], capture_output=True, timeout=10, check=False)
    assert started.returncode == 0, started
    try:
        yield srv, socket_name
    finally:
        subprocess.run(["tmux", "-L", socket_name, "kill-server"], capture_output=True, timeout=10, check=False)
        srv.stop()


@pytest.fixture
def box(module_box: tuple[Sshd, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Box]:
    monkeypatch.setenv("PREFLIGHT_REMOTE_STATE_DIR", str(tmp_path / "box-state"))
    made = Box(*module_box)
    made.host()
    yield made
    close_ssh_masters()


def _wait_file(path: Path, timeout_s: float = 10.0) -> bytes:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never written"
        time.sleep(0.05)
    time.sleep(0.1)  # printf's redirect creates the file before it writes
    return path.read_bytes()


@pytest.mark.parametrize("payload", PAYLOADS, ids=[f"p{i}" for i in range(len(PAYLOADS))])
def test_shell_payload_arrives_verbatim_on_the_box_or_is_refused(box: Box, tmp_path: Path, payload: str) -> None:
    out = tmp_path / "out"
    command = f"printf %s {shlex.quote(payload)} > {shlex.quote(str(out))}"
    pane = box.window(SHELL, "$")
    if _has_control(payload):
        with pytest.raises(PreflightError) as refused:
            dispatch(pane, command, host="box", socket_name=box.socket_name)
        assert refused.value.field == "text"
        assert not (tmp_path / "box-state" / "jobs").exists()  # nothing reached the box
        return
    result = dispatch(pane, command, host="box", socket_name=box.socket_name)
    assert result.status == "submitted", result
    assert _wait_file(out) == payload.encode()


@pytest.mark.parametrize("payload", PAYLOADS, ids=[f"p{i}" for i in range(len(PAYLOADS))])
def test_tui_payload_arrives_verbatim_in_a_stand_in_reader_or_is_refused(box: Box, tmp_path: Path,
                                                                         payload: str) -> None:
    log = tmp_path / "reader.jsonl"
    argv = [sys.executable, str(APPS / "ink_whole_paste.py"), "--log", str(log)]
    pane = box.window("exec " + shlex.join(argv), ">")
    deadline = time.monotonic() + 10
    while not (log.exists() and '"ready"' in log.read_text()):
        assert time.monotonic() < deadline, "the reader never got ready"
        time.sleep(0.05)
    prompt = payload.replace("\r\n", "\n").rstrip("\n")  # a prompt's CRLF is a line break; a trailing LF no submit
    if _has_control(prompt) or not prompt.strip():
        with pytest.raises(PreflightError) as refused:
            dispatch(pane, payload, "tui", host="box", socket_name=box.socket_name, profile="generic")
        assert refused.value.field == "text"
        time.sleep(0.2)
        assert submitted(log) == []
        return
    result = dispatch(pane, payload, "tui", host="box", socket_name=box.socket_name, profile="generic")
    assert result.status == "submitted", result
    assert submitted(log) == [prompt]


HOSTILE_HOSTS = ["", "-oProxyCommand=touch /tmp/pwned", "box;id", "../box", "box\n", "a b", "$(id)", "x" * 300,
                 "nothere"]
HOSTILE_TARGETS = ["-t", "%0;kill-server", "$(id)", "a b", "%0\x1b", "%0\nEnter", "box:0.0 ; kill-server", "-L x"]
HOSTILE_SOCKETS: list[dict[str, Any]] = [{"socket_name": "../etc"}, {"socket_name": "a\nb"},
                                         {"socket_name": ""}, {"socket_path": "/tmp/x\x00y"},
                                         {"socket_name": "a", "socket_path": "/tmp/b"}]


@pytest.fixture
def no_ssh(box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any ssh call from here on fails the test: a refusal must come before the link is touched."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"ssh was called: {args[1] if len(args) > 1 else kwargs}")

    monkeypatch.setattr("gpu_preflight.tools.hosts.ssh.call", refuse)


def _calls(host: str, target: str, sockets: dict[str, Any]) -> list[Any]:
    return [lambda: dispatch(target, "echo hi", host=host, **sockets),
            lambda: dispatch(target, "hello", "tui", host=host, **sockets),
            lambda: heartbeat(target=target, host=host, **sockets),
            lambda: wait_idle(target, 5, host=host, **sockets)]


@pytest.mark.usefixtures("no_ssh")
@pytest.mark.parametrize("host", HOSTILE_HOSTS)
def test_hostile_host_names_are_refused_naming_host(host: str) -> None:
    for run in [*_calls(host, "%0", {"socket_name": "s"}), lambda: list_pane_infos("s", host=host)]:
        with pytest.raises(PreflightError) as refused:
            run()
        assert refused.value.field == "host", refused.value


@pytest.mark.usefixtures("no_ssh")
@pytest.mark.parametrize("target", HOSTILE_TARGETS)
def test_hostile_targets_are_refused_naming_target(target: str) -> None:
    for run in _calls("box", target, {"socket_name": "s"}):
        with pytest.raises(PreflightError) as refused:
            run()
        assert refused.value.field == "target", refused.value


@pytest.mark.usefixtures("no_ssh")
@pytest.mark.parametrize("sockets", HOSTILE_SOCKETS, ids=[f"s{i}" for i in range(len(HOSTILE_SOCKETS))])
def test_hostile_sockets_are_refused_naming_the_socket(sockets: dict[str, Any]) -> None:
    for run in [*_calls("box", "%0", sockets), lambda: list_pane_infos(host="box", **sockets)]:
        with pytest.raises(PreflightError) as refused:
            run()
        assert refused.value.field in set(sockets), refused.value


def test_cli_refuses_a_hostile_host_in_one_line(box: Box) -> None:
    done = subprocess.run([sys.executable, "-m", "gpu_preflight.server", "dispatch", "%0", "hi", "--mode", "tui",
                           "--host", "box;id", "--json"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    message = (done.stdout + done.stderr).strip()
    with contextlib.suppress(ValueError):
        message = json.loads(message).get("error", message)
    assert "host" in message and "box;id" in message, message


def test_tui_link_cut_before_enter_is_unconfirmed_and_a_dead_box_is_refused(sshd: Sshd, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's fault rule in tui mode: cut after the prompt was pasted, before Enter -> ``unconfirmed`` (never
    ``submitted``); a box down before the dispatch -> ``refused``, nothing typed."""
    from gpu_preflight.tools.dispatch.tmuxcmd import Tmux

    monkeypatch.setenv("PREFLIGHT_REMOTE_STATE_DIR", str(tmp_path / "box-state"))
    socket_name = f"pfcut-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "reader.jsonl"
    reader = shlex.join([sys.executable, str(APPS / "ink_whole_paste.py"), "--log", str(log)])
    started = subprocess.run(["tmux", "-L", socket_name, "-f", "/dev/null", "new-session", "-d", "-P", "-F",
                              "#{pane_id}", "-x", "120", "-y", "40", "exec " + reader],
                             capture_output=True, text=True, timeout=10, check=False)
    assert started.returncode == 0, started
    pane = started.stdout.strip()
    try:
        Box(sshd, socket_name).host()
        deadline = time.monotonic() + 10
        while not (log.exists() and '"ready"' in log.read_text()):
            assert time.monotonic() < deadline, "the reader never got ready"
            time.sleep(0.05)
        press = Tmux.send_key

        def cut_then_press(self: Tmux, pane_id: str, key: str) -> None:
            sshd.stop()  # the box drops every session, as a dead box does
            press(self, pane_id, key)

        monkeypatch.setattr(Tmux, "send_key", cut_then_press)
        cut = dispatch(pane, "pasted, then the link died", "tui", host="box", socket_name=socket_name,
                       profile="generic")
        assert cut.status == "unconfirmed", cut
        assert cut.reason.split(":")[0] in {"connection_dropped", "host_unreachable"}, cut.reason
        down = dispatch(pane, "the box is down", "tui", host="box", socket_name=socket_name, profile="generic")
        assert down.status == "refused" and "nothing was typed" in down.reason, down
        screen = subprocess.run(["tmux", "-L", socket_name, "capture-pane", "-p", "-t", pane], capture_output=True,
                                text=True, timeout=10, check=False).stdout
        assert "pasted, then the link died" in screen and "the box is down" not in screen, screen
        assert submitted(log) == []  # the Enter never reached the reader
    finally:
        subprocess.run(["tmux", "-L", socket_name, "kill-server"], capture_output=True, timeout=10, check=False)
        close_ssh_masters()

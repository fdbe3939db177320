"""The persistent remote shell behind ``ssh.call`` (tools/hosts/session.py), against a real ``sshd``.

What a caller relies on, checked on the box's real output: each call's stdout, stderr and exit status come
back byte for byte and never mixed with another call's (payloads with and without a final newline, text
that looks like our markers, a NUL byte); what a command does cannot end or desynchronise the shell (``exit``,
reading stdin, a background job writing later, a timeout); threads on one host get their own shells; and
``PREFLIGHT_SSH_SESSION=0`` gives the same answers through one ssh per command.
"""

from __future__ import annotations

import statistics
import threading
import time

import pytest
from sshd import Sshd

from gpu_preflight.tools.hosts import Host, call, classify, close_master, session


@pytest.fixture
def host(sshd: Sshd) -> Host:
    return sshd.register()


def _open_sessions(host: Host) -> list[session.Session]:
    return list(session._IDLE.get(session._key(host), []))


PAYLOADS = [
    b"line one\nline two\n",
    b"no final newline",
    b"PFINdeadbeef\n@@pf e 0\n\npf0123456789abcdefe 0\n",  # looks like our delimiter and markers
    "caf\u00e9 \u2603 \t tab\r\n".encode(),
    b"x" * 200_000,  # bigger than a pipe buffer
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=["lines", "no-newline", "lookalike", "utf8", "200kb"])
def test_stdin_payload_arrives_byte_for_byte(host: Host, payload: bytes) -> None:
    counted = [call(host, ["wc", "-c"], stdin_text=payload) for _ in range(2)]  # the second on the same shell
    assert [(c.rc, c.stdout.strip()) for c in counted] == [(0, str(len(payload)))] * 2, counted
    echoed = call(host, ["cat"], stdin_text=payload)
    assert echoed.stdout.encode() == payload and echoed.rc == 0


def test_stdout_stderr_and_status_per_call(host: Host) -> None:
    script = 'printf "out no newline"; printf "err 1\\nerr 2" >&2; exit 7'
    for _ in range(3):
        done = call(host, ["sh", "-c", script])
        assert (done.rc, done.stdout, done.stderr) == (7, "out no newline", "err 1\nerr 2")
    assert len(_open_sessions(host)) == 1  # one shell carried all three
    nul = call(host, ["sh", "-c", "tr '\\000' @"], stdin_text=b"a\0b\n")  # a shell cannot carry NUL: one-off ssh
    assert (nul.rc, nul.stdout) == (0, "a@b\n")


def test_what_a_command_does_cannot_end_or_desync_the_shell(host: Host) -> None:
    assert call(host, ["exit", "5"]).rc == 5  # a subshell's exit, as the login shell's was
    first = _open_sessions(host)
    assert call(host, ["cat"]).stdout == ""  # stdin is /dev/null, not the shell's stream
    background = call(host, ["sh", "-c", "(sleep 0.3; echo STRAY; echo STRAY >&2) & echo fg"])
    assert background.stdout == "fg\n"  # not held open until the background job ends
    time.sleep(0.6)  # the stray lines reach the shell's pipes between two calls
    after = call(host, ["echo", "clean"])
    assert (after.rc, after.stdout, after.stderr) == (0, "clean\n", "")
    killed = call(host, ["sh", "-c", "kill -9 $$"])  # a command killed on a live box: its status, not a fault
    assert killed.rc == 137 and classify(killed, host.name) is None, killed
    assert _open_sessions(host) == first  # the same shell all along


def test_a_timed_out_call_kills_its_shell_and_the_next_call_gets_a_fresh_one(host: Host) -> None:
    call(host, ["true"])
    before = _open_sessions(host)
    started = time.monotonic()
    slow = call(host, ["sh", "-c", "echo partial; sleep 30"], timeout_s=1.0)
    assert slow.timed_out and time.monotonic() - started < 3
    assert slow.stdout == "partial\n" and "within 1 s" in slow.stderr
    fault = classify(slow, host.name)
    assert fault is not None and fault.status == "host_unreachable"
    assert before and before[0].proc.poll() is not None  # killed, never reused half-way through a frame
    again = call(host, ["echo", "next"])
    assert (again.rc, again.stdout) == (0, "next\n")
    assert _open_sessions(host) and _open_sessions(host)[0] is not before[0]


def test_threads_on_one_host_run_at_once_in_their_own_shells(host: Host) -> None:
    call(host, ["true"])
    answers: dict[int, str] = {}

    def one(i: int) -> None:
        answers[i] = call(host, ["sh", "-c", f"sleep 1; echo {i}"]).stdout

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=15)
    assert answers == {i: f"{i}\n" for i in range(4)}
    assert time.monotonic() - started < 3.5  # not 4 x 1 s one after another
    assert len(_open_sessions(host)) <= session.MAX_IDLE_PER_HOST


def test_the_switch_off_gives_the_same_answers_one_ssh_each(host: Host, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["sh", "-c", 'printf "%s|" "$@"; echo err >&2; exit 3', "sh", "$(id)", "a b", "it's"]
    warm = call(host, argv)
    timings = {"session": [call(host, ["true"]).elapsed_ms for _ in range(5)]}
    monkeypatch.setenv(session.SESSION_ENV, "0")
    close_master(host)
    off = call(host, argv)
    assert (off.rc, off.stdout, off.stderr) == (warm.rc, warm.stdout, warm.stderr) == (3, "$(id)|a b|it's|",
                                                                                      "err\n")
    timings["one ssh each"] = [call(host, ["true"]).elapsed_ms for _ in range(5)]
    assert _open_sessions(host) == []
    medians = {k: statistics.median(v) for k, v in timings.items()}
    with capsys.disabled():
        print(f"\nwarm `true` round trip, median of 5: {medians}")
    assert medians["session"] < medians["one ssh each"]

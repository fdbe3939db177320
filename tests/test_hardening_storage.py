"""Issue 14, storage faults: a corrupt, truncated, read-only or full state database is one line that says
which file and what to do (exit 2 / a tool error), never a traceback or a bare "Error executing tool X";
the corrupt file is left where it was (it is the audit trail), and the gate keeps failing closed.

Real faults: garbage and truncation are written into the real database file; read-only and full use a
small tmpfs mounted for the test (we run as root, so chmod alone would not stop a write); those two are
skipped, with the reason, where mounting is not permitted.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client

from gpu_preflight.server.app import create_server
from gpu_preflight.server.cli import main


def _start(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["checklist", "start", "--policy", "pre-estimate", "--name", "r1"])
    return code, capsys.readouterr().err.strip()


def _assert_one_line(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


async def _mcp_error() -> str:
    async with Client(create_server()) as client:
        result = await client.call_tool("checklist_start", {"run_name": "r", "policy": "pre-estimate"})
        text = "\n".join(getattr(c, "text", "") for c in result.content)
        assert result.is_error and len(text.splitlines()) == 1, text
        assert text.strip() != "Error executing tool checklist_start", text
        gate = await client.call_tool("gate_check", {"checklist_id": "ck-000000000000", "kind": "full"})
        assert gate.is_error  # fails closed
        return text


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
@pytest.mark.anyio
async def test_corrupt_or_truncated_database_is_named_and_kept(_isolated_state: Path, damage: str,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert _start(capsys)[0] == 0
    capsys.readouterr()
    db = _isolated_state / "preflight.sqlite3"
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    if damage == "garbage":
        db.write_bytes(os.urandom(8192))
    else:
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 3])
    before = db.read_bytes()
    code, err = _start(capsys)
    _assert_one_line(code, err, "preflight.sqlite3", "move it aside", "never delete")
    assert "corrupt" in await _mcp_error()
    assert db.read_bytes() == before  # never repaired or deleted behind the user's back


@pytest.fixture
def small_mount(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True,
                          check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or 'not root'})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_read_only_state_dir(small_mount: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    state = small_mount / "state"
    state.mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_mount)], check=True)
    monkeypatch.setenv("PREFLIGHT_STATE_DIR", str(state))
    code, err = _start(capsys)
    _assert_one_line(code, err, "PREFLIGHT_STATE_DIR", "cannot write")
    import anyio

    assert "cannot write" in anyio.run(_mcp_error)


def test_full_disk(small_mount: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    state = small_mount / "state"
    monkeypatch.setenv("PREFLIGHT_STATE_DIR", str(state))
    state.mkdir()
    fd = os.open(small_mount / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass  # ENOSPC: the file system is full
    finally:
        os.close(fd)
    code, err = _start(capsys)
    _assert_one_line(code, err, "PREFLIGHT_STATE_DIR")
    assert "full" in err or "cannot write" in err, err

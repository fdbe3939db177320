"""The checklist database under real processes: SIGKILL mid-write, and two writers at once.

Why real processes: the promise is "a server killed mid-write leaves a consistent database and
loses nothing it committed" and "two server processes writing to one file lose nothing". Only a
child that is really killed (no cleanup, no atexit) and two interpreters really contending for the
write lock test that. A child prints an evidence id only after ``record_evidence`` returned, that
is after COMMIT, so every printed id must be in the file afterwards.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from gpu_preflight.checklist import checklist_status, start_checklist
from gpu_preflight.checklist.examples import example
from gpu_preflight.checklist.store import MIGRATIONS

RECORDER = r"""
import json, os, sys, time
from gpu_preflight.checklist import record_evidence
checklist_id, item, source, count, go_file = sys.argv[1:6]
evidence = json.loads(sys.stdin.readline())
print("ready", flush=True)
while go_file != "-" and not os.path.exists(go_file):
    time.sleep(0.001)
n = 0
while int(count) == 0 or n < int(count):
    state = record_evidence(checklist_id, item, evidence, source=source)
    print(state.evidence_id, flush=True)
    n += 1
"""

KILL_ROUNDS = 30


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PREFLIGHT_STATE_DIR", str(tmp_path))
    return tmp_path


def _spawn(checklist_id: str, item: str, source: str, count: int, go_file: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", RECORDER, checklist_id, item, source, str(count), go_file],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(example(item)) + "\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _check_db(path: Path) -> dict[int, str]:
    """Integrity and foreign keys are clean; returns evidence id -> source."""
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        return {int(i): s for i, s in conn.execute("SELECT id, source FROM evidence")}


def test_sigkill_mid_write_loses_nothing_committed(state_dir: Path) -> None:
    checklist_id = start_checklist("kill-test", "pre-estimate", spec={"a": 1}).id
    rng = random.Random(20260214)
    reported: list[int] = []
    for _ in range(KILL_ROUNDS):
        proc = _spawn(checklist_id, "memory_fit", "estimate_memory", 0, "-")
        assert proc.stdout is not None
        reported += [int(proc.stdout.readline()) for _ in range(rng.randint(1, 4))]
        time.sleep(rng.uniform(0, 0.004))  # land the kill anywhere in the next write
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        reported += [int(line) for line in out.split()]
    stored = _check_db(state_dir / "preflight.sqlite3")
    assert set(reported) <= set(stored), sorted(set(reported) - set(stored))
    assert len(reported) >= KILL_ROUNDS
    # The engine still reads and writes the file normally.
    assert next(i for i in checklist_status(checklist_id).items if i.id == "memory_fit").state == "done"


def test_two_processes_recording_at_once_lose_nothing(state_dir: Path) -> None:
    checklist_id = start_checklist("concurrent", "pre-estimate", spec={"a": 1}).id
    per_process = 100
    go_file = state_dir / "go"
    writers = [
        _spawn(checklist_id, "memory_fit", "estimate_memory", per_process, str(go_file)),
        _spawn(checklist_id, "validation_gates", "run_check", per_process, str(go_file)),
    ]
    go_file.touch()
    outputs = []
    for proc in writers:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outputs.append([int(line) for line in out.split()])
    stored = _check_db(state_dir / "preflight.sqlite3")
    assert [len(ids) for ids in outputs] == [per_process, per_process]
    assert set(outputs[0]) | set(outputs[1]) == set(stored)
    sources = sorted(stored.values())
    assert sources.count("estimate_memory") == per_process and sources.count("run_check") == per_process
    # The writes really interleaved (each writer's ids are not one contiguous block).
    assert max(outputs[0]) > min(outputs[1]) and max(outputs[1]) > min(outputs[0])


STARTER = r"""
import os, sys, time
from gpu_preflight.checklist import start_checklist
while not os.path.exists(sys.argv[1]):
    time.sleep(0.001)
print(start_checklist("fresh-" + sys.argv[2], "run-calibrated").id, flush=True)
"""


def test_two_processes_creating_a_fresh_database_at_once(state_dir: Path) -> None:
    go_file = state_dir / "go"
    starters = [subprocess.Popen([sys.executable, "-c", STARTER, str(go_file), str(n)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for n in range(2)]
    time.sleep(0.3)  # both interpreters up and polling
    go_file.touch()
    ids = []
    for proc in starters:
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        ids.append(out.strip())
    with closing(sqlite3.connect(state_dir / "preflight.sqlite3")) as conn:
        versions = conn.execute("SELECT version FROM schema_migrations WHERE component = 'checklist'").fetchall()
        assert versions == [(len(MIGRATIONS),)]
        assert sorted(r[0] for r in conn.execute("SELECT id FROM checklists")) == sorted(ids)

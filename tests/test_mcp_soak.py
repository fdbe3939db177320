"""A few thousand mixed calls into one in-process server: its memory must stop growing after warm-up.

Why: an MCP server lives as long as the agent session (hours), and HTTP serves many sessions from one
process; a per-call leak (a retained result, a cached SQLite connection, a session never dropped)
would only show after thousands of calls. The workload is what an agent does: estimates, the option
table, a checklist with evidence and gate checks, and bad calls; sessions are reopened every block,
alternating the two protocol eras, so a leaked session shows too.

How the bound is judged: the first blocks are warm-up (lazy imports, pydantic and regex caches,
SQLite's page cache, the SDK's per-server caches) and are not judged. After that, growth over the
second half of the run is compared with fixed bounds:

* Python heap (tracemalloc, current traced size): < 2 MiB over the second half, i.e. under ~1.5 KB
  per call. One retained ``estimate_run`` result is ~20 KB, so keeping even one answer in ten, or one
  session object per block, would break it; allocator-level noise here is ~0.1-0.3 MiB.
* RSS (/proc/self/statm): < 24 MiB over the second half; this catches C-level leaks tracemalloc cannot
  see (SQLite connections and their caches) while allowing for arena fragmentation.
* open file descriptors: no more than 2 new ones (a leaked SQLite connection holds one).
"""

from __future__ import annotations

import gc
import os
import time
import tracemalloc
from typing import Any

import anyio
import pytest
from helpers_spec import spec
from mcp import Client

from gpu_preflight.server.app import create_server

BLOCKS = 12
ROUNDS_PER_BLOCK = 20
WARMUP_BLOCKS = 2
MAX_HEAP_GROWTH = 2 * 2**20
MAX_RSS_GROWTH = 24 * 2**20
MAX_NEW_FDS = 2


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _round(checklist_id: str | None) -> list[tuple[str, dict[str, Any], bool]]:
    """One round of an agent's calls: (tool, arguments, expected is_error)."""
    good = spec()
    calls: list[tuple[str, dict[str, Any], bool]] = [
        ("estimate_run", {"spec": good, "gpu": "H100 SXM", "dph_total_usd": 2.5}, False),
        ("estimate_memory", {"spec": good, "gpu": "RTX 4090"}, False),
        ("plan_options", {"spec": good, "limit": 5}, False),
        ("estimate_run", {"spec": spec(micro_batch=-1), "gpu": "RTX 4090"}, True),
        ("estimate_run", {"spec": "not an object", "gpu": 4090}, True),
        ("no_such_tool", {}, True),
        ("checklist_status", {"checklist_id": "ck-000000000000"}, True),
    ]
    if checklist_id:
        calls += [
            ("estimate_run", {"spec": good, "gpu": "H100 SXM", "dph_total_usd": 2.5, "checklist_id": checklist_id},
             False),
            ("checklist_status", {"checklist_id": checklist_id}, False),
            ("gate_check", {"checklist_id": checklist_id, "kind": "full"}, False),
            ("checklist_record", {"checklist_id": checklist_id, "item": "memory_fit", "evidence": {"x": "C-c"}}, True),
        ]
    return calls


async def _block(mcp: Any, mode: str, rounds: int) -> int:
    """One session: a checklist, then ``rounds`` rounds of mixed calls. Returns the number of calls."""
    calls = 0
    async with Client(mcp, mode=mode) as client:
        started = await client.call_tool("checklist_start", {"run_name": "soak", "policy": "pre-estimate",
                                                             "spec": spec()})
        assert started.structured_content is not None
        checklist_id: str = started.structured_content["id"]
        calls += 1
        for i in range(rounds):
            for name, arguments, error in _round(checklist_id if i % 2 == 0 else None):
                result = await client.call_tool(name, arguments)
                assert result.is_error is error, (name, result.content)
                calls += 1
    return calls


def test_memory_stops_growing_over_thousands_of_calls() -> None:
    mcp = create_server()
    samples: list[tuple[int, int, int]] = []  # (traced heap, rss, fds) after each block
    calls = 0
    started = time.monotonic()
    tracemalloc.start()
    try:
        for block in range(BLOCKS):
            calls += anyio.run(_block, mcp, ("legacy", "auto")[block % 2], ROUNDS_PER_BLOCK)
            gc.collect()
            samples.append((tracemalloc.get_traced_memory()[0], _rss_bytes(), _open_fds()))
    finally:
        tracemalloc.stop()
    elapsed = time.monotonic() - started
    assert calls >= 2000

    judged = samples[WARMUP_BLOCKS - 1:]  # the sample right after warm-up is the baseline
    mid = len(judged) // 2
    heap_growth = judged[-1][0] - judged[mid][0]
    rss_growth = judged[-1][1] - judged[mid][1]
    new_fds = judged[-1][2] - judged[0][2]
    report = (f"{calls} calls in {elapsed:.1f}s; heap MiB per block "
              f"{[round(s[0] / 2**20, 2) for s in samples]}; RSS MiB {[round(s[1] / 2**20) for s in samples]}; "
              f"fds {[s[2] for s in samples]}")
    print(report)
    assert heap_growth < MAX_HEAP_GROWTH, f"Python heap grew {heap_growth / 2**20:.2f} MiB in the second half: {report}"
    assert rss_growth < MAX_RSS_GROWTH, f"RSS grew {rss_growth / 2**20:.1f} MiB in the second half: {report}"
    assert new_fds <= MAX_NEW_FDS, f"{new_fds} file descriptors leaked: {report}"


@pytest.mark.anyio
async def test_server_still_answers_after_the_soak_pattern() -> None:
    """Cheap companion: the same mix once, in both eras, on a fresh server (fails fast, without tracemalloc)."""
    mcp = create_server()
    for mode in ("auto", "legacy"):
        assert await _block(mcp, mode, 2) > 10

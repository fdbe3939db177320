"""Name the next call in the caller's own interface: an MCP tool through MCP, a CLI command through the CLI.

Why: the same refusal reaches two kinds of caller. Written with one door's names, it sent a model
using MCP to ``preflight gpus`` (a shell command it cannot run) or to ``list_runs`` (a Python function,
no tool), and a person at the shell to ``estimate_memory``. So domain text never spells a call: it
names a *step* symbolically with :func:`call`, and the door that is answering (set with
:func:`speaking` by the MCP server for every request, by the CLI for every command) says how its
callers reach it. Outside any door (library use, doctests) a step reads as its symbolic name.

The vocabulary is data the doors own (``gpu_preflight.server.nextsteps``); this module only knows
which steps exist, so a typo in a step name fails at once instead of printing a call nobody has.

>>> call("gpus")
'the GPU list'
>>> with speaking({"gpus": "`preflight gpus`"}):
...     calls_text(["gpus", "gpus"])
'`preflight gpus`'
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

STEPS: dict[str, str] = {
    # step: what it reads as outside a door (plain words, no call name)
    "estimate_memory": "the memory estimate",
    "estimate_throughput": "the throughput estimate",
    "estimate_run": "the run estimate",
    "plan_options": "the option table",
    "search_offers": "the offer search",
    "live_offers": "a live offer search",
    "offers_file": "a saved offers file",
    "checklist_start": "a new checklist",
    "checklist_record": "recording evidence yourself",
    "checklist_status": "the checklist status",
    "checklist_report": "the checklist report",
    "checklist_update_spec": "the spec update",
    "gate_check": "the gate check",
    "launch_run": "a gated launch",
    "dispatch": "a dispatch",
    "heartbeat": "the run's heartbeat",
    "list_runs": "the list of recorded runs",
    "run_check": "a run check",
    "stop_run": "stopping the run",
    "calibrate": "calibration",
    "ingest": "ingesting the capture",
    "gpus": "the GPU list",
    "models": "the model presets",
    "probe_schema": "the probe measurement fields",
    "gpu_with_host_ram": "giving the GPU with its host RAM (cpu_ram_gb)",
    "override": "an override with a written reason",
}
"""Every step domain text may name; each door's vocabulary must render all of them."""

_VOCABULARY: ContextVar[Mapping[str, str] | None] = ContextVar("preflight_vocabulary", default=None)


def call(step: str) -> str:
    """How the caller now answering reaches ``step`` (its symbolic name outside any door)."""
    if step not in STEPS:
        raise KeyError(f"unknown next step {step!r}; add it to STEPS and to every door's vocabulary")
    vocabulary = _VOCABULARY.get()
    return vocabulary[step] if vocabulary is not None else STEPS[step]


def calls_text(steps: Iterable[str]) -> str:
    """Several steps as one phrase ("a, b or c"), each rendered by :func:`call`, repeats dropped."""
    names = list(dict.fromkeys(call(s) for s in steps))
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


@contextmanager
def speaking(vocabulary: Mapping[str, str]) -> Iterator[None]:
    """Inside: :func:`call` renders with ``vocabulary`` (a door's names for every step)."""
    token = _VOCABULARY.set(vocabulary)
    try:
        yield
    finally:
        _VOCABULARY.reset(token)

"""Markdown for people and for the text beside structured MCP results: the shared table and scenario cells.

Each room renders its own results (:mod:`gpu_preflight.tools.estimator.render`,
:mod:`gpu_preflight.tools.offers.render`, :mod:`gpu_preflight.tools.telemetry.report`) with these two helpers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class ScenarioTriple(Protocol):
    """Anything with optimistic / base / pessimistic figures (the estimator's ``Scenarios``)."""

    @property
    def optimistic(self) -> float | None: ...
    @property
    def base(self) -> float | None: ...
    @property
    def pessimistic(self) -> float | None: ...


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table.

    >>> print(table(["a", "b"], [[1, "x|y"]]))
    | a | b |
    |---|---|
    | 1 | x\\|y |
    """
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_scenarios(s: ScenarioTriple, unit: str = "", digits: int = 1) -> str:
    def one(v: float | None) -> str:
        return "n/a" if v is None else f"{unit}{v:,.{digits}f}"

    return f"{one(s.optimistic)} / {one(s.base)} / {one(s.pessimistic)}"

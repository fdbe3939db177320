"""The examples in docstrings run: every module of the three packages, outside ``__main__``.

Why: a doctest that is never executed rots into a wrong example, which is worse than none.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType

import gpu_preflight.checklist
import gpu_preflight.server
import gpu_preflight.tools


def _modules() -> list[ModuleType]:
    found: list[ModuleType] = []
    for pkg in (gpu_preflight.tools, gpu_preflight.checklist, gpu_preflight.server):
        for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{pkg.__name__}."):
            if info.name.endswith("__main__"):  # importing it runs the CLI
                continue
            found.append(importlib.import_module(info.name))
    return found


def test_every_docstring_example_runs() -> None:
    failed: list[str] = []
    attempted = 0
    for module in _modules():
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        attempted += result.attempted
        if result.failed:
            failed.append(module.__name__)
    assert failed == []
    assert attempted >= 30  # telemetry alone has more than 10; the estimator modules add theirs

"""Which Python can run the real training programs (torch is not a project dependency)."""

from __future__ import annotations

import os
import subprocess
import sys


def torch_python(modules: str = "torch, transformers") -> tuple[str | None, str]:
    """``PREFLIGHT_TORCH_PYTHON`` (the throwaway venv ``.ci/run`` makes), else this interpreter, if it imports
    ``modules``; else ``None`` and the reason to skip with."""
    named = os.environ.get("PREFLIGHT_TORCH_PYTHON")
    for python in ([named] if named else []) + [sys.executable]:
        probe = subprocess.run([python, "-c", f"import {modules}"], capture_output=True, timeout=120)
        if probe.returncode == 0:
            return python, ""
    return None, f"no Python with {modules} (set PREFLIGHT_TORCH_PYTHON to a throwaway venv; .ci/run makes one)"

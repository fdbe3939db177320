"""``preflight calibrate --help`` ends with the probe JSON's fields (see tools/telemetry/probe_schema.py).

Why a formatter: the field list is built from the Probe model, whose import costs ~0.3 s; a formatter
runs only when help is printed, so ``preflight`` itself starts no slower.
"""

from __future__ import annotations

import argparse


class ProbeHelpFormatter(argparse.HelpFormatter):
    """The usual help, then one line per probe field."""

    def format_help(self) -> str:
        from gpu_preflight.tools.telemetry.probe_schema import probe_fields_help

        return super().format_help() + "\n" + probe_fields_help() + "\n"

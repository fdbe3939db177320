"""The ``preflight`` command line: argparse front door, one module per capability in ``server/cli/``.

Each command module exposes ``add_parser(subparsers)`` and sets ``func(args) -> int`` on its parser.
Bad input anywhere raises :class:`~gpu_preflight.tools.common.errors.PreflightError`; this module prints its
one line to stderr and exits 2, never a traceback. A storage fault (read-only state dir, full disk,
corrupt database) is turned into the same kind of line by :mod:`gpu_preflight.tools.common.storage`.
"""

from __future__ import annotations

import argparse
import importlib
import sqlite3
import sys
from collections.abc import Sequence

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.common.storage import storage_error

COMMAND_MODULES = (
    "gpu_preflight.server.cli.estimate",
    "gpu_preflight.server.cli.serve",
    "gpu_preflight.server.cli.offers",
    "gpu_preflight.server.cli.checklist",
    "gpu_preflight.server.cli.dispatch",
    "gpu_preflight.server.cli.telemetry",
    "gpu_preflight.server.cli.hosts",
)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 2 like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]  # argparse declares NoReturn
        sys.stderr.write(f"preflight: error: {message}{dash_hint(self.prog, message)}\n")
        raise SystemExit(2)


def dash_hint(prog: str, message: str) -> str:
    """argparse reads a prompt such as ``-v`` or ``--fix`` as an option; say how to pass it.

    >>> "needs `--` before it" in dash_hint("preflight dispatch", "the following arguments are required: text")
    True
    >>> dash_hint("preflight plan", "the following arguments are required: spec")
    ''
    """
    command = prog.rsplit(" ", 1)[-1]
    positional = {"dispatch": "text", "launch": "command"}.get(command)
    if positional is None or not (f"required: {positional}" in message or "unrecognized arguments: -" in message):
        return ""
    return (f"; a prompt or command starting with '-' needs `--` before it, after the options: "
            f"preflight {command} TARGET [OPTIONS] -- '-...'")


def build_parser() -> argparse.ArgumentParser:
    from gpu_preflight.server import __version__

    parser = _Parser(prog="preflight", description="Estimate, gate, watch and dispatch GPU training runs.")
    parser.add_argument("--version", action="version", version=f"preflight {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # what parse_args does, plus the `--` hint for a dispatch/launch text that starts with '-'
        message = f"unrecognized arguments: {' '.join(extra)}"
        sys.stderr.write(f"preflight: error: {message}{dash_hint(f'preflight {args.command}', message)}\n")
        return 2
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    from gpu_preflight.server.nextsteps import CLI
    from gpu_preflight.tools.common.nextstep import speaking

    try:
        with speaking(CLI):  # refusals and next steps name `preflight` commands (see server/nextsteps.py)
            code: int = func(args)
    except PreflightError as exc:
        sys.stderr.write(f"preflight: error: {exc.one_line()}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    except (sqlite3.Error, OSError) as exc:  # a storage fault: one line saying what to do, not a traceback
        fault = storage_error(exc)
        if fault is None:
            raise
        sys.stderr.write(f"preflight: error: {fault.one_line()}\n")
        return 2
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

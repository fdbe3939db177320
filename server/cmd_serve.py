"""``preflight serve``: run the MCP server (stdio by default)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("serve", help="run the MCP server over stdio")
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Client logging is deprecated in the 2026 protocol; hosts capture stderr, so log there.
    logging.basicConfig(stream=sys.stderr, level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    from gpu_preflight.server.app import create_server

    create_server().run("stdio")
    return 0

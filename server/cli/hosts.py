"""``preflight hosts add|list|remove|check|import-vast``: the remote boxes reached over SSH (issue 17)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gpu_preflight.tools.common.limits import quantity


def add_parser(sub: Any) -> None:
    hosts: argparse.ArgumentParser = sub.add_parser("hosts", help="remote boxes reached over SSH: add, list, "
                                                    "remove, check, import-vast")
    cmds = hosts.add_subparsers(dest="hosts_command", metavar="ACTION", parser_class=type(hosts))

    add = cmds.add_parser("add", help="register a host (adding a name again replaces it)")
    add.add_argument("name", help="your name for it (letters, digits, . _ -)")
    add.add_argument("destination", help="[user@]host, or a Host alias of your ssh config")
    add.add_argument("--port", type=int, default=None, metavar="N")
    add.add_argument("--identity", default=None, metavar="FILE", help="private key file (ssh -i)")
    add.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                     help="extra ssh -o, repeatable (e.g. StrictHostKeyChecking=accept-new, ProxyJump=...)")
    add.add_argument("--json", action="store_true")
    add.set_defaults(func=run_add)

    ls = cmds.add_parser("list", help="the registered hosts")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=run_list)

    rm = cmds.add_parser("remove", help="forget a host (and close its ssh master connection)")
    rm.add_argument("name")
    rm.set_defaults(func=run_remove)

    check = cmds.add_parser("check", help="reachable? latency, tmux version, GPUs (one ssh round trip)")
    check.add_argument("name")
    check.add_argument("--timeout-s", type=quantity(0, 600, "seconds"), default=10.0)
    check.add_argument("--json", action="store_true")
    check.set_defaults(func=run_check)

    vast = cmds.add_parser("import-vast", help="register every running instance of `vastai show instances --raw`")
    vast.add_argument("file", help="the saved --raw output (JSON)")
    vast.add_argument("--json", action="store_true")
    vast.set_defaults(func=run_import_vast)

    def usage(args: argparse.Namespace) -> int:
        hosts.print_help(sys.stderr)
        return 2

    hosts.set_defaults(func=usage)


def _line(host: Any) -> str:
    port = f" -p {host.port}" if host.port else ""
    ident = f" -i {host.identity}" if host.identity else ""
    opts = "".join(f" -o {k}={v}" for k, v in host.options.items())
    return f"{host.name}: ssh{port}{ident}{opts} {host.destination}\n"


def run_add(args: argparse.Namespace) -> int:
    from gpu_preflight.tools.hosts import add_host, make_host

    host = add_host(make_host(args.name, args.destination, port=args.port, identity=args.identity,
                              options=args.option))
    sys.stdout.write(host.model_dump_json() + "\n" if args.json else "added " + _line(host))
    return 0


def run_list(args: argparse.Namespace) -> int:
    from gpu_preflight.tools.hosts import list_hosts

    hosts = list_hosts()
    if args.json:
        sys.stdout.write(json.dumps([h.model_dump(mode="json") for h in hosts]) + "\n")
    else:
        sys.stdout.write("".join(_line(h) for h in hosts) or "no hosts (preflight hosts add NAME DESTINATION)\n")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from gpu_preflight.tools.hosts import close_master, get_host, remove_host

    host = get_host(args.name)  # an unknown name is refused (exit 2), naming the hosts there are
    close_master(host)
    remove_host(host.name)
    sys.stdout.write(f"removed {host.name}\n")
    return 0


def run_check(args: argparse.Namespace) -> int:
    """Exit 0 when the host answered (whatever it lacks: see ``status``), 1 when it did not."""
    from gpu_preflight.tools.hosts import check_host

    result = check_host(args.name, args.timeout_s)
    if args.json:
        sys.stdout.write(result.model_dump_json() + "\n")
    else:
        gpus = ", ".join(f"{g.index}: {g.name} ({g.memory_total_mib} MiB)" for g in result.gpus) or "none"
        latency = f"{result.latency_ms:.0f} ms" if result.latency_ms is not None else "-"
        sys.stdout.write(f"{result.name}: {result.status}; latency {latency}; tmux {result.tmux_version or '-'}; "
                         f"GPUs {gpus}\n" + (f"  {result.error}\n" if result.error else ""))
    return 0 if result.reachable else 1


def run_import_vast(args: argparse.Namespace) -> int:
    from gpu_preflight.tools.hosts import import_vast_file

    found = import_vast_file(args.file)
    if args.json:
        sys.stdout.write(found.model_dump_json() + "\n")
    else:
        sys.stdout.write("".join("added " + _line(h) for h in found.added)
                         + "".join(f"skipped {why}\n" for why in found.skipped)
                         + ("" if found.added else "no running instance with an SSH address\n"))
    return 0

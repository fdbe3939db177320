"""``preflight checklist start|status|report|record|update-spec|gate``: the checklist from a shell.

Why a CLI beside the MCP tools: the dispatcher, CI and people run the same checks without an MCP
client, and checks outside the test suite read these JSON keys (``id``; ``gate.probe``,
``gate.full``, ``items[].id``, ``items[].state``), so they are a contract. A closed gate exits 3
(the launch must not go ahead) with the missing items on stderr; bad input exits 2 with one line.

The two helpers at the top are shared with ``server.mcp.checklist`` (kept here so the CLI never imports
the MCP SDK): :func:`checklist_spec` gives the spec the exact shape the estimator bridge stamps its
evidence with, so a checklist started with a spec is not stale against its own estimates, and
:func:`decide` returns the recorded decision for a closed gate instead of only an error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.common.files import read_text_file
from gpu_preflight.tools.common.limits import loads_json

if TYPE_CHECKING:
    from gpu_preflight.checklist.views import ChecklistStatus, GateDecision
    from gpu_preflight.tools.estimator.spec import RunSpec

EXIT_GATE_CLOSED = 3


def checklist_spec(spec: RunSpec | dict[str, Any] | None) -> dict[str, Any] | None:
    """The spec as the checklist stores it: validated, defaults filled, ``None`` fields dropped.

    The estimator bridge hashes ``RunSpec.model_dump(mode="json", exclude_none=True)``; hashing the
    raw dict an agent sent instead would make every estimate stale on arrival.
    """
    if spec is None:
        return None
    from gpu_preflight.tools.estimator.spec import parse_spec

    dumped: dict[str, Any] = parse_spec(spec).model_dump(mode="json", exclude_none=True)
    return dumped


def decide(checklist_id: str, kind: Literal["probe", "full"], override_reason: str | None = None,
           offer: str | None = None) -> GateDecision:
    """``gate.check``, but a closed gate comes back as its recorded decision (``allowed`` false).

    The engine raises after recording a refusal; a caller that wants the numbers (the MCP tool, the
    CLI's ``--json``) reads that row back from the audit. Other refusals (unknown id, a blank
    override reason) still raise.
    """
    from gpu_preflight.checklist import gate

    try:
        return gate.check(checklist_id, kind, override_reason, offer=offer)
    except PreflightError as exc:
        if exc.field != f"gate.{kind}":
            raise
        refused = [d for d in gate.audit(checklist_id) if d.kind == kind and not d.allowed]
        if not refused:  # pragma: no cover - the engine records every refusal before raising
            raise
        return refused[-1].model_copy(update={"next_step": f"{exc.hint}." if exc.hint else ""})


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "checklist", help="the pre-run checklist and the launch gate",
        description="Start a checklist, record evidence, read its status and report, ask the launch gate.")
    cmds = p.add_subparsers(dest="checklist_command", metavar="SUBCOMMAND", parser_class=type(p))
    p.set_defaults(func=lambda _args: _usage(p))

    start = cmds.add_parser("start", help="start a checklist; prints its id and items")
    start.add_argument("--policy", required=True, choices=["pre-estimate", "run-calibrated"])
    start.add_argument("--name", required=True, help="run name, shown in the report")
    start.add_argument("--spec", default=None, metavar="FILE", help="run spec file (.json or .toml)")
    start.add_argument("--json", action="store_true", help="print one JSON object (has `id`)")
    start.set_defaults(func=run_start)

    status = cmds.add_parser("status", help="item states, gate booleans, what is missing, next step")
    status.add_argument("id", metavar="ID")
    status.add_argument("--json", action="store_true", help="print one JSON object (`gate`, `items`)")
    status.set_defaults(func=run_status)

    report = cmds.add_parser("report", help="the whole pre-estimate as markdown")
    report.add_argument("id", metavar="ID")
    report.set_defaults(func=run_report)

    record = cmds.add_parser("record", help="record evidence for one item")
    record.add_argument("id", metavar="ID")
    record.add_argument("item", metavar="ITEM", help="item id, e.g. memory_fit (see `checklist start`)")
    source = record.add_mutually_exclusive_group(required=True)
    source.add_argument("--evidence", metavar="JSON", help="the evidence as a JSON object")
    source.add_argument("--evidence-file", metavar="FILE", help="a file holding the evidence JSON object")
    record.add_argument("--json", action="store_true", help="print one JSON object")
    record.set_defaults(func=run_record)

    spec = cmds.add_parser("update-spec", help="change the spec; evidence for the old spec becomes stale")
    spec.add_argument("id", metavar="ID")
    spec.add_argument("spec", metavar="FILE", help="run spec file (.json or .toml)")
    spec.add_argument("--json", action="store_true", help="print the status as one JSON object")
    spec.set_defaults(func=run_update_spec)

    check = cmds.add_parser("gate", help="may a probe or full run launch? exit 0 yes, 3 no")
    check.add_argument("id", metavar="ID")
    check.add_argument("--kind", required=True, choices=["probe", "full"])
    check.add_argument("--override", default=None, metavar="REASON",
                       help="launch anyway; the written reason is recorded in the audit")
    check.add_argument("--offer", default=None, help="the offer the run will use (checked after a switch)")
    check.add_argument("--json", action="store_true", help="print the recorded decision as one JSON object")
    check.set_defaults(func=run_gate)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _load_spec(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    from gpu_preflight.tools.estimator.spec import load_spec_file

    return checklist_spec(load_spec_file(path))


def status_markdown(status: ChecklistStatus) -> str:
    """Item states and gates in a few lines (shared with the MCP tools' text)."""
    gates = ", ".join(f"{k} {'open' if v else 'closed'}" for k, v in status.gate.model_dump().items())
    lines = [f"{status.checklist_id} ({status.policy}, {status.run_name}): gate {gates}", "",
             "| item | state | reason |", "|---|---|---|"]
    lines += [f"| {i.id} | {i.state} | {i.reason.replace('|', '/')} |" for i in status.items]
    if status.full_only_for_offer:
        lines += ["", f"Full run on offer {status.full_only_for_offer} only."]
    return "\n".join([*lines, "", f"Next step: {status.next_step}"])


def run_start(args: argparse.Namespace) -> int:
    from gpu_preflight.checklist import start_checklist

    view = start_checklist(args.name, args.policy, _load_spec(args.spec))
    if args.json:
        _out(view.model_dump_json())
        return 0
    lines = [f"{view.id}  {view.title}: {view.run_name}", ""]
    lines += [f"- {i.id}: {i.title} (from {', '.join(i.supplied_by)})" for i in view.items]
    _out("\n".join([*lines, "", f"Next step: {view.next_step}"]))
    return 0


def run_status(args: argparse.Namespace) -> int:
    from gpu_preflight.checklist import checklist_status

    status = checklist_status(args.id)
    _out(status.model_dump_json() if args.json else status_markdown(status))
    return 0


def run_report(args: argparse.Namespace) -> int:
    from gpu_preflight.checklist import checklist_report

    _out(checklist_report(args.id))
    return 0


def _evidence(args: argparse.Namespace) -> object:
    """The evidence JSON from ``--evidence`` or ``--evidence-file`` (a regular file, <= 1 MB, UTF-8)."""
    if args.evidence is not None:
        flag, text = "--evidence", str(args.evidence)
        source = text  # the caller's own text: a preview of it helps, and leaks nothing
    else:
        flag = "--evidence-file"
        text = read_text_file(args.evidence_file, field=flag, kind="evidence")
        source = Path(args.evidence_file).name
    return loads_json(text, field=flag, source=source, allowed="a JSON object")


def run_record(args: argparse.Namespace) -> int:
    from gpu_preflight.checklist import checklist_status, record_evidence

    state = record_evidence(args.id, args.item, _evidence(args))  # type: ignore[arg-type]  # engine checks it
    status = checklist_status(args.id)
    if args.json:
        _out(json.dumps({"item": state.model_dump(mode="json"), "gate": status.gate.model_dump(),
                         "missing": status.missing, "next_step": status.next_step}))
        return 0
    _out(f"{state.id}: {state.state} ({state.reason})\n\n{status_markdown(status)}")
    return 0


def run_update_spec(args: argparse.Namespace) -> int:
    from gpu_preflight.checklist import update_spec

    spec = _load_spec(args.spec)
    assert spec is not None
    status = update_spec(args.id, spec)
    _out(status.model_dump_json() if args.json else status_markdown(status))
    return 0


def gate_markdown(decision: GateDecision) -> str:
    """One decision in a few lines (shared with the MCP tool's text)."""
    if decision.overridden:
        head = f"{decision.kind} gate OVERRIDDEN (recorded): {decision.override_reason}"
    elif decision.allowed:
        head = f"{decision.kind} gate open: launch may go ahead"
    else:
        head = f"{decision.kind} gate CLOSED: do not launch; missing {', '.join(decision.missing)}"
    lines = [head]
    if decision.kind == "probe" and decision.allowed:
        lines.append(f"Probe caps: {decision.probe_min_steps}-{decision.probe_max_steps} steps or "
                     f"{decision.probe_max_minutes:g} min.")
    if decision.offer:
        lines.append(f"Full run on offer {decision.offer} only.")
    if decision.next_step:
        lines.append(f"Next step: {decision.next_step}")
    return "\n".join(lines)


def run_gate(args: argparse.Namespace) -> int:
    decision = decide(args.id, args.kind, args.override, args.offer)
    if args.json:
        _out(decision.model_dump_json())
    elif decision.allowed:
        _out(gate_markdown(decision))
    if decision.allowed:
        return 0
    next_step = decision.next_step.replace("pass override_reason", "pass --override REASON")
    sys.stderr.write(f"preflight: {args.kind} gate closed for {decision.checklist_id}; missing: "
                     f"{', '.join(decision.missing)}. {next_step}\n")
    return EXIT_GATE_CLOSED

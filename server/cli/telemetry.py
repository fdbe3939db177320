"""``preflight ingest``, ``check``, ``watch``, ``calibrate`` and ``plot``: the telemetry loop on the command line.

``ingest --json`` is a contract used outside the test suite: one object with ``format``,
``samples`` (GPU or log samples, nulls where absent) and ``skipped_lines``.
``check`` exits 0 unless the decision is ``kill`` (exit 3), so a script can stop paying on it.

Probe caps: ``check`` and ``watch`` on a ``kind=probe`` run stop it at its step/time cap by default
(Ctrl-C into its pane, on its host over ssh for a remote run, proven by the job's exit record;
``--no-enforce-caps`` only reports). Why the
CLI and not the MCP ``run_check``: a person or script running ``check``/``watch`` on a probe is the
one watching it, and a probe past its cap is the long run the gate holds back, billing; the MCP tool
is annotated read-only (hosts call it without asking), so it reports ``probe_cap.reached`` and names
the command (or the dispatcher's ``interrupt_run``) in its decision instead of sending keys.

Numbers are :func:`~gpu_preflight.tools.common.limits.quantity` types (a 400-digit value or ``inf`` is one
line naming the flag, not a traceback) and files go through the one reader
(:mod:`gpu_preflight.tools.common.files`) or :func:`~gpu_preflight.tools.telemetry.tail.open_log`: a typo
in ``--log``/``--nvsmi`` is an error naming the flag, never "no training record yet".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.common.limits import quantity

if TYPE_CHECKING:  # imported inside the commands, so `preflight --help` stays fast
    from gpu_preflight.tools.dispatch import InterruptResult
    from gpu_preflight.tools.telemetry.runcheck import RunCheck

KILL_EXIT = 3
_TPS = quantity(0, 1e12, "tokens/s")
_STEP_S = quantity(1e-6, 1e6, "seconds", lo_open=False)
_GPUS = quantity(1, 4096, "GPUs", integer=True, lo_open=False)
_DPH = quantity(0, 9999.99, "USD per hour")
_STEPS = quantity(1, 10**12, "steps", integer=True, lo_open=False)
_WINDOW_S = quantity(1, 86_400, "seconds", lo_open=False)
_GPU_INTERVAL_S = quantity(0.01, 86_400, "seconds", lo_open=False)
_REFRESH_S = quantity(0, 86_400, "seconds")
_TOKENS = quantity(1, 10**12, "tokens", integer=True, lo_open=False)


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", default=None, metavar="RUN", help="run id recorded by the dispatcher")
    p.add_argument("--log", default=None, metavar="FILE", help="training log (default: the run record's)")
    p.add_argument("--nvsmi", default=None, metavar="FILE", help="nvidia-smi capture (--query-gpu CSV, dmon or table)")
    p.add_argument("--predicted-tps", type=_TPS, default=None, help="predicted tokens/s of the whole job")
    p.add_argument("--predicted-step-s", type=_STEP_S, default=None, help="predicted seconds per step")
    p.add_argument("--num-gpus", type=_GPUS, default=None, help="GPUs of the job (per-device tokens/s logs)")


def add_parser(sub: Any) -> None:
    i = sub.add_parser("ingest", help="parse an nvidia-smi capture or a training log (format detected)")
    i.add_argument("file", metavar="FILE")
    i.add_argument("--format", default=None, metavar="F", help="force a format (nvidia_smi_query, nanogpt, ...)")
    i.add_argument("--regex", default=None, metavar="R", help="a regex with named groups (step, loss, ...)")
    i.add_argument("--columns", default=None, metavar="A,B", help="field order of a --format=csv,noheader capture")
    i.add_argument("--host", default=None, metavar="NAME", help="FILE is on this registered host (read over ssh)")
    i.add_argument("--json", action="store_true", help="print one JSON object: format, samples, skipped_lines")
    i.set_defaults(func=run_ingest)

    g = sub.add_parser("gpu-snapshot", help="one reading of the GPUs here (NVML) or on --host (nvidia-smi)")
    g.add_argument("--host", default=None, metavar="NAME", help="a registered host (see: preflight hosts list)")
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=run_gpu_snapshot)

    for name, helptext in (("check", "one check of a run: triggers, ETA, cost, keep/kill (exit 3 on kill)"),
                           ("watch", "a live, refreshing view of a run's check (Ctrl-C to leave)")):
        c = sub.add_parser(name, help=helptext)
        _run_options(c)
        c.add_argument("--dph", type=_DPH, default=None, metavar="USD_PER_HOUR", help="price per hour (dph_total)")
        c.add_argument("--total-steps", type=_STEPS, default=None, help="total steps, when the log prints none")
        c.add_argument("--window-s", type=_WINDOW_S, default=600.0, help="window length, seconds (default 600)")
        c.add_argument("--gpu-interval-s", type=_GPU_INTERVAL_S, default=None,
                       help="seconds between untimed dmon rows")
        c.add_argument("--enforce-caps", action=argparse.BooleanOptionalAction, default=None,
                       help="stop a probe at its step/time cap (Ctrl-C into its pane, exit record checked); "
                       "default: on for kind=probe runs")
        c.add_argument("--live-gpu", action="store_true",
                       help="read the GPUs the run is on: its box's nvidia-smi over ssh, else NVML here")
        if name == "check":
            c.add_argument("--json", action="store_true")
            c.set_defaults(func=run_check_cmd)
        else:
            c.add_argument("--interval", type=_REFRESH_S, default=10.0, metavar="S", help="refresh every S seconds")
            c.add_argument("--once", action="store_true", help="draw once and exit")
            c.set_defaults(func=run_watch)

    from gpu_preflight.server.cli.probe_help import ProbeHelpFormatter

    k = sub.add_parser("calibrate", help="probe -> live estimate, tax, offers, keep/switch/kill",
                       formatter_class=ProbeHelpFormatter)
    k.add_argument("spec", help="run spec file (.json or .toml)")
    k.add_argument("--probe", default=None, metavar="JSON|FILE", help="probe measurements (JSON text or file)")
    k.add_argument("--run", default=None, metavar="RUN", help="measure the probe from this run's log")
    k.add_argument("--log", default=None, metavar="FILE", help="measure the probe from this training log")
    k.add_argument("--nvsmi", default=None, metavar="FILE", help="nvidia-smi capture of the probe")
    k.add_argument("--offers", default=None, metavar="FILE", help="recorded offers JSON (default: the snapshot)")
    k.add_argument("--dph", type=_DPH, default=None, metavar="USD_PER_HOUR", help="price of the probe machine")
    k.add_argument("--priority", choices=["balanced", "cost", "time"], default="balanced")
    k.add_argument("--checklist", default=None, metavar="ID", help="record the run-calibrated items")
    k.add_argument("--json", action="store_true")
    k.set_defaults(func=run_calibrate)

    p = sub.add_parser("plot", help="PNG of predicted vs measured throughput and GPU utilization")
    _run_options(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT.png")
    p.add_argument("--tokens-per-step", type=_TOKENS, default=None,
                   help="turns step times into tokens/s (default for a run: its checklist spec's)")
    p.add_argument("--gpu-interval-s", type=_GPU_INTERVAL_S, default=None, help="seconds between untimed dmon rows")
    p.add_argument("--title", default=None)
    p.set_defaults(func=run_plot)


def run_ingest(args: argparse.Namespace) -> int:
    from gpu_preflight.tools.telemetry.ingest import ingest
    from gpu_preflight.tools.telemetry.nvsmi_pmon import processes_markdown
    from gpu_preflight.tools.telemetry.report import ingest_markdown, summarize

    try:
        if args.host is not None:
            from gpu_preflight.tools.telemetry.remote_nvsmi import ingest_remote

            got = ingest_remote(args.host, args.file, fmt=args.format, regex=args.regex, columns=args.columns,
                                field="FILE")
        else:
            got = ingest(Path(args.file), fmt=args.format, regex=args.regex, columns=args.columns, field="FILE")
    except PreflightError as exc:
        if exc.field != "columns":
            raise
        hint = exc.hint.replace("pass columns=...", "pass --columns A,B,...")  # the flag, not the argument
        raise PreflightError("--columns", exc.got, exc.allowed, hint) from None
    if args.json:
        sys.stdout.write(got.model_dump_json() + "\n")
    else:
        sys.stdout.write(ingest_markdown(got, summarize(got)) + processes_markdown(got.process_samples()) + "\n")
    return 0


def run_gpu_snapshot(args: argparse.Namespace) -> int:
    from gpu_preflight.tools.telemetry.nvml import gpu_snapshot
    from gpu_preflight.tools.telemetry.remote_nvsmi import remote_gpu_snapshot
    from gpu_preflight.tools.telemetry.report import snapshot_markdown

    snap = remote_gpu_snapshot(args.host) if args.host is not None else gpu_snapshot()
    sys.stdout.write((snap.model_dump_json(exclude_none=True) if args.json else snapshot_markdown(snap)) + "\n")
    return 0


def _given_files(args: argparse.Namespace) -> None:
    """A ``--log``/``--nvsmi`` the caller typed must be a readable regular file now (named by its flag).

    Why here: a run record's log may not exist yet (the run has not written it), so the check itself
    waits on a missing one; a path typed on the command line that is missing is a typo.
    """
    from gpu_preflight.tools.telemetry.tail import open_log

    for flag, path in (("--log", args.log), ("--nvsmi", args.nvsmi)):
        if path is not None:
            handle = open_log(path, field=flag, must_exist=True)
            if handle is not None:
                handle.close()


def _inputs(args: argparse.Namespace) -> dict[str, Any]:
    _given_files(args)
    fields = {"log_path": args.log, "nvsmi_path": args.nvsmi, "predicted_tokens_per_s": args.predicted_tps,
              "predicted_step_time_s": args.predicted_step_s, "num_gpus": args.num_gpus,
              "dph_total_usd": getattr(args, "dph", None), "total_steps": getattr(args, "total_steps", None),
              "window_s": getattr(args, "window_s", None), "gpu_interval_s": getattr(args, "gpu_interval_s", None)}
    return {k: v for k, v in fields.items() if v is not None}


def _check(args: argparse.Namespace, gpu_samples: Any = (), gpu_now: Any = None, notes: Any = ()) -> Any:
    from gpu_preflight.tools.telemetry.runcheck import check_run, make_inputs, run_check

    fields = _inputs(args)
    if args.run:
        return run_check(args.run, gpu_samples=gpu_samples, gpu_now=gpu_now, notes=notes, **fields)
    if not args.log:
        raise PreflightError("RUN", None, "a run id, or --log FILE")
    return check_run(make_inputs(fields), gpu_samples=gpu_samples, gpu_now=gpu_now, notes=notes)


def _live(host: str | None, readings: list[Any]) -> tuple[Any, list[str]]:
    """One ``--live-gpu`` reading (``host``'s nvidia-smi, None: NVML here) added to ``readings``, and its notes."""
    from gpu_preflight.tools.telemetry.livegpu import live_reading

    notes: list[str] = []
    snap, taken = live_reading(host, notes)
    readings.extend(taken)
    return snap, notes


def _run_host(args: argparse.Namespace) -> str | None:
    from gpu_preflight.tools.telemetry.livegpu import run_host

    return run_host(args.run) if args.run else None


def _enforcing(args: argparse.Namespace, c: RunCheck) -> bool:
    """Whether caps are enforced: ``--enforce-caps`` (needs a run id), by default only for a probe run."""
    if args.enforce_caps and not args.run:
        raise PreflightError("--enforce-caps", None, "a run id (RUN): caps are recorded on dispatched probe runs")
    return bool(args.enforce_caps) or (args.enforce_caps is None and bool(args.run) and c.kind == "probe")


def _enforce(args: argparse.Namespace, c: RunCheck) -> InterruptResult | None:
    """Stop a probe that reached its cap (see the module doc); None when there is nothing to stop."""
    if not _enforcing(args, c) or c.probe_cap is None or not c.probe_cap.reached:
        return None
    if c.heartbeat is not None and c.heartbeat.get("state") in ("exited", "pane_gone", "host_unreachable"):
        return None
    from gpu_preflight.tools.dispatch import interrupt_run

    return interrupt_run(args.run)


def run_check_cmd(args: argparse.Namespace) -> int:
    from gpu_preflight.tools.telemetry.report import check_markdown

    readings: list[Any] = []
    snap, notes = _live(_run_host(args), readings) if args.live_gpu else (None, [])
    c = _check(args, readings, snap, notes)
    stop = _enforce(args, c)
    if args.json and _enforcing(args, c):
        payload = c.model_dump(mode="json", exclude_none=True)
        payload["enforced"] = stop.model_dump() if stop is not None else None
        sys.stdout.write(json.dumps(payload) + "\n")
    elif args.json:
        sys.stdout.write(c.model_dump_json(exclude_none=True) + "\n")
    else:
        sys.stdout.write(check_markdown(c) + (f"\nenforced: {stop.reason}" if stop is not None else "") + "\n")
    return KILL_EXIT if c.decision.decision == "kill" else 0


def run_watch(args: argparse.Namespace) -> int:
    from gpu_preflight.tools.telemetry.nvml_errors import NvmlUnavailable
    from gpu_preflight.tools.telemetry.report import check_markdown
    from gpu_preflight.tools.telemetry.sampler import NvmlSampler

    sampler = None
    note = ""
    host = _run_host(args) if args.live_gpu else None  # a run on a box: one nvidia-smi there per refresh
    readings: list[Any] = []
    if args.live_gpu and host is None:
        sampler = NvmlSampler(interval_s=max(args.interval, 1.0))
        try:
            sampler.start()
        except NvmlUnavailable as exc:
            sampler, note = None, f"live GPU: {exc.answer.message}\n"
    clear = sys.stdout.isatty() and not args.once
    try:
        while True:
            if host is not None:
                snap, live_notes = _live(host, readings)
                c = _check(args, readings, snap, live_notes)
            else:
                c = _check(args, gpu_samples=sampler.readings() if sampler else ())
            stop = _enforce(args, c)
            if stop is not None:
                note += f"enforced at {time.strftime('%H:%M:%S')}: {stop.reason}\n"
            stamp = time.strftime("%H:%M:%S")
            head = f"preflight watch {args.run or args.log}  {stamp}  (Ctrl-C to leave)\n"
            sys.stdout.write(("\x1b[H\x1b[2J" if clear else "") + head + note + check_markdown(c) + "\n")
            sys.stdout.flush()
            if args.once:
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
    finally:
        if sampler is not None:
            sampler.stop()


def _json_arg(value: str, name: str) -> dict[str, Any]:
    """Inline JSON (starts with ``{``) or a JSON file read by the one reader (1 MB cap, like config files).

    Errors name ``name`` and the file (or "inline"), never the text: a wrong file must not be quoted.
    """
    from gpu_preflight.tools.common.files import read_text_file
    from gpu_preflight.tools.common.limits import loads_json

    text = value.strip()
    source = "inline"
    if not text.startswith("{"):
        text, source = read_text_file(value, field=name, kind="evidence"), value
    data = loads_json(text, field=name, source=source, allowed="a JSON object")
    if not isinstance(data, dict):
        raise PreflightError(name, f"{source}: a JSON {type(data).__name__}", "a JSON object")
    return data


def run_calibrate(args: argparse.Namespace) -> int:
    from gpu_preflight.tools.estimator.spec import load_spec_file
    from gpu_preflight.tools.offers.planning import offers_for
    from gpu_preflight.tools.telemetry.calibrate import calibrate, parse_probe
    from gpu_preflight.tools.telemetry.calibrate_run import calibrate_files, calibrate_recorded_run
    from gpu_preflight.tools.telemetry.report import calibration_markdown
    from gpu_preflight.tools.telemetry.runcheck import RunInputs

    spec = load_spec_file(args.spec)
    probe = _json_arg(args.probe, "--probe") if args.probe else None
    if probe is None and not (args.run or args.log):
        raise PreflightError("--probe", None, "probe measurements (JSON or file), --run RUN or --log FILE")
    offers = offers_for(spec, offers_file=args.offers)
    notes: list[str] = []
    if args.run:
        cal, p, notes = calibrate_recorded_run(args.run, spec, probe=probe, offers=offers, dph_total_usd=args.dph,
                                               priority=args.priority, log_path=args.log, nvsmi_path=args.nvsmi)
    elif args.log:
        cal, p, notes = calibrate_files(spec, RunInputs(log_path=args.log, nvsmi_path=args.nvsmi), probe=probe,
                                        offers=offers, dph_total_usd=args.dph, priority=args.priority)
    else:
        p = parse_probe(probe or {})
        cal = calibrate(spec, p, offers=offers, dph_total_usd=args.dph, priority=args.priority)
    attached = None
    if args.checklist:
        from gpu_preflight.server.mcp.telemetry import attach_calibration

        attached = attach_calibration(args.checklist, spec, cal, p)
    if args.json:
        out = {"calibration": cal.model_dump(mode="json"), "notes": notes,
               "checklist": attached.model_dump() if attached else None}
        sys.stdout.write(json.dumps(out) + "\n")
    else:
        text = calibration_markdown(cal) + "".join(f"\n- {n}" for n in notes)
        if attached is not None:
            text += f"\nchecklist: attached {', '.join(attached.attached) or 'nothing'}; skipped {attached.skipped}"
        sys.stdout.write(text + "\n")
    return 0


def run_plot(args: argparse.Namespace) -> int:
    from gpu_preflight.tools.telemetry.plot_inputs import plot_inputs, render

    fields = _inputs(args)
    if not (args.run or args.log or args.nvsmi):
        raise PreflightError("RUN", None, "a run id, or --log FILE / --nvsmi FILE")
    png = render(plot_inputs(args.run, fields, tokens_per_step=args.tokens_per_step), title=args.title)
    out = Path(args.output)
    try:
        out.write_bytes(png)
    except OSError as exc:
        raise PreflightError("--output", args.output, "a writable file path", exc.strerror or str(exc)) from None
    sys.stdout.write(f"wrote {out} ({len(png):,} bytes)\n")
    return 0

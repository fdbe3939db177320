"""Benchmark of the tmux dispatcher on the REAL Claude Code, Codex and Gemini CLI, run offline.

Per app, in one run, scored ONLY against the model server's record of the prompts it received:

1. idle delivery: prompts cycling seven categories (plain, shell metacharacters, a leading ``-``, a
   trailing ``;``, unicode, a ~3,000-character 40-line text, escape-sequence spellings), each unique;
   exactly-once verbatim count, false confirmations, false refusals, latency;
2. busy: a slow reply holds the app busy, then a prompt goes in under ``on_busy`` refuse / wait / queue;
3. naive baselines on the same app: ``send-keys -l``, 0.5 s, ``Enter`` (a); one ``send-keys text Enter``
   without ``-l``, as libtmux sends (b); an app left with junk in its composer or stuck is restarted;
4. heartbeat: idle, busy before the first token, busy while streaming, a dialog open, exited.

Usage: ``python bench/dispatch_real.py [--quick] [--apps claude,codex,gemini] [--json]``. Apps come from
``tests/realapps`` (``.ci/install-agents``); one that can't be installed is reported with the reason.
A private tmux server (``-L pfreal-bench-<pid>``) and a temporary state folder are used.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispatch_real_table import print_table  # bench/ is on sys.path: run as a script or from dispatch.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from realapps.apps import RunningApp, start_app  # noqa: E402
from realapps.install import APPS, PACKAGES, ensure_installed, installed_version, why_missing  # noqa: E402
from realapps.model_server import ModelServer  # noqa: E402

from gpu_preflight.tools.dispatch import DispatchResult, Heartbeat, dispatch, heartbeat  # noqa: E402

# Distinct words on several lines: a repetitive reply trips Gemini CLI's loop detector.
PAIRS = [("amber", "basalt"), ("cobalt", "dune"), ("ember", "fjord"), ("garnet", "harbor"),
         ("indigo", "juniper"), ("kelp", "lagoon"), ("marble", "nectar"), ("onyx", "pumice")]
SLOW_REPLY = "\n\n".join(f"{a} {b} is line {i}." for i, (a, b) in enumerate(PAIRS))
LONG_LINE = "of a long multi-line prompt, with some padding text to make it wide"
CATEGORIES: list[tuple[str, Callable[[str], str]]] = [
    ("plain", lambda n: f"plain words, nothing special {n}"),
    ("shell", lambda n: f"echo $HOME && ls | wc -l > x; `id` $(id) 'q' \"dq\" \\ {n}"),
    ("dash", lambda n: f"-n --help: a leading dash is text, not a flag {n}"),
    ("semicolon", lambda n: f"ends with a semicolon {n};"),
    ("unicode", lambda n: f"unicode: naïve café, 日本語のテキスト, emoji 🚀, arrows → ⇒ {n}"),
    ("multiline", lambda n: "\n".join(f"line {i:03d} {LONG_LINE}" + (f" {n}" if i == 0 else "") for i in range(40))),
    ("escapes", lambda n: f"text about escapes: \\x1b[31m red \\e[0m and \\033[2J stay literal {n}"),
]
OK = {"submitted", "queued"}
NOT_OK = {"refused", "lost", "unconfirmed"}


def make_prompt(index: int, tag: str = "") -> tuple[str, str]:
    category, build = CATEGORIES[index % len(CATEGORIES)]
    return category, build(f"#{tag}{index}")


def pct(values: list[float], q: float = 0.5) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return round(statistics.median(ordered) if q == 0.5 else ordered[round(q * (len(ordered) - 1))], 1)


@dataclass
class Bench:
    """One app under test, restartable (a fresh model server each time; earlier records are kept)."""

    name: str
    socket: str
    folder: Path
    server: ModelServer = field(init=False)
    app: RunningApp = field(init=False)
    archived: list[str] = field(default_factory=list)
    restarts: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.server = ModelServer()
        workdir = self.folder / f"{self.name}-work-{self.restarts}"
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            self.app = start_app(self.name, self.server, self.socket, workdir)
        except BaseException:
            self.server.close()
            raise

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.app.stop()
        self.archived.extend(self.server.received_texts())
        self.server.close()

    def restart(self, why: str) -> None:
        self.errors.append(f"restarted: {why}")
        self.stop()
        self.restarts += 1
        self.start()

    def received(self) -> list[str]:
        return [*self.archived, *self.server.received_texts()]

    def screen(self) -> list[str]:
        try:
            return [line for line in self.app.capture() if line.strip()][-14:]
        except Exception as exc:
            return [f"(capture failed: {exc})"]

    def tui(self, text: str, **kwargs: Any) -> DispatchResult:
        return dispatch(self.app.pane_id, text, "tui", socket_name=self.socket, profile="auto", **kwargs)

    def beat(self) -> Heartbeat:
        return heartbeat(target=self.app.pane_id, socket_name=self.socket)

    def idle(self, timeout_s: float = 30.0) -> bool:
        """Wait for the idle composer (then 0.3 s more for stray requests); False on timeout."""
        try:
            self.app.wait_idle(timeout_s)
        except AssertionError:
            return False
        time.sleep(0.3)
        return True

    def ready(self, timeout_s: float = 30.0) -> None:
        """Idle, or restarted when it does not get there."""
        if not self.idle(timeout_s):
            self.restart(f"not idle within {timeout_s:g} s; screen: {' | '.join(self.screen()[-6:])}")
            self.idle()

    def problem(self, phase: str, category: str, text: str, result: DispatchResult | None, received: int,
                screen: list[str], note: str = "", since: int | None = None) -> None:
        got = [t[:120] for t in self.received()[since:]] if since is not None else None
        self.problems.append({
            "phase": phase, "category": category, "text": text[:120], "received_times": received, "got": got,
            "status": result.status if result else None, "reason": result.reason if result else None,
            "enter_count": result.enter_count if result else None, "timings_ms": result.timings_ms if result else None,
            "evidence": result.evidence if result else None, "screen": screen, "note": note})


def phase_idle(b: Bench, count: int, hb: list[dict[str, Any]]) -> dict[str, Any]:
    sent: list[tuple[str, str, DispatchResult, list[str] | None, list[str]]] = []
    beat_at = {count * k // 4 for k in (1, 2, 3)} | ({count - 1} if count >= 12 else set())
    for index in range(count):
        category, text = make_prompt(index)
        b.ready()
        if index in beat_at:
            beat = b.beat()
            hb.append({"check": "idle", "expected": "idle", "got": beat.state, "reason": beat.reason,
                       **({"screen": b.screen()} if beat.state != "idle" else {})})
        before = len(b.received())
        result = b.tui(text)
        got = b.server.wait_for(before - len(b.archived) + 1, 15 if result.status in OK else 4)
        new = got[before - len(b.archived):]
        screen = None if result.status == "submitted" and new == [text] else b.screen()
        sent.append((category, text, result, screen, new))
    b.idle()
    seen = Counter(b.received())
    texts = {text for _, text, *_ in sent}
    exactly = false_ok = false_refused = 0
    for category, text, result, screen, new in sent:
        times = seen[text]
        exactly += times == 1
        false_ok += result.status in OK and times != 1
        false_refused += result.status in NOT_OK
        if times != 1 or result.status != "submitted":
            b.problem("idle", category, text, result, times, screen or [], f"received in its window: {new}")
    latencies = [r.latency_ms for _, _, r, *_ in sent]
    single = [r.latency_ms for _, t, r, *_ in sent if "\n" not in t]
    return {"prompts": count, "exactly_once": exactly, "exactly_once_pct": round(100.0 * exactly / count, 1),
            "false_confirmations": false_ok, "false_refusals": false_refused,
            "stray_received": sum(1 for t in seen if t not in texts and not t.startswith(("busy ", "heartbeat "))),
            "median_ms": pct(latencies), "p90_ms": pct(latencies, 0.9), "median_single_line_ms": pct(single),
            "median_multiline_ms": pct([r.latency_ms for _, t, r, *_ in sent if "\n" in t]),
            "enters_max": max((r.enter_count for _, _, r, *_ in sent), default=0),
            "timings_median_ms": {k: pct([r.timings_ms[k] for _, _, r, *_ in sent if k in r.timings_ms])
                                  for k in sent[0][2].timings_ms} if sent else {},
            "statuses": dict(Counter(r.status for _, _, r, *_ in sent))}


def phase_busy(b: Bench, tries: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in ("refuse", "wait", "queue"):
        right = 0
        for t in range(tries):
            b.ready()
            before = len(b.received())
            text = f"busy test on_busy={mode} try {t}"
            b.server.script(reply_text=SLOW_REPLY, first_token_delay_s=0.8, stream_s=1.5, chunks=5)
            try:
                starter = b.tui(f"busy starter for {mode} try {t}")
                if starter.status != "submitted":
                    b.problem(f"busy-{mode} starter", "plain", "busy starter", starter, -1, b.screen())
                    continue
                try:
                    b.app.wait(b.app.spec.is_busy, 5.0, "the starter's turn")
                except AssertionError:
                    b.problem(f"busy-{mode}", "plain", text, None, -1, b.screen(), "never saw the app busy")
                    continue
                result = b.tui(text, on_busy=mode, busy_timeout_s=30)
                screen = b.screen()
                b.server.wait_for(before - len(b.archived) + (1 if mode == "refuse" else 2), 30)
            finally:
                b.server.script()
            b.idle()
            times = Counter(b.received()[before:])[text]
            if mode == "refuse":
                good = result.status == "refused" and times == 0
            elif mode == "wait":
                good = result.status == "submitted" and times == 1
            elif b.name == "codex":
                good = result.status == "submitted" and "running turn" in result.reason and times == 1
            else:
                good = result.status == "queued" and times == 1
            right += good
            if not good:
                b.problem(f"busy-{mode}", "plain", text, result, times, screen, since=before)
        out[mode] = f"{right}/{tries}"
    return out


def phase_heartbeat(b: Bench, rounds: int, hb: list[dict[str, Any]]) -> None:
    for r in range(rounds):
        first = f"zephyr{r}quartz"  # this round's own first word: earlier replies stay on screen
        b.ready()
        b.server.script(reply_text=f"{first} opens round {r}.\n\n{SLOW_REPLY}", first_token_delay_s=2.0,
                        stream_s=3.0, chunks=5)
        try:
            starter = b.tui(f"heartbeat starter {r}")
            if starter.status != "submitted":
                b.problem("heartbeat", "plain", "heartbeat starter", starter, -1, b.screen())
                continue
            t0 = time.monotonic()
            beat = b.beat()
            early = not any(first in line for line in b.app.capture())
            hb.append({"check": "busy before first token", "expected": "working", "got": beat.state,
                       "reason": beat.reason, "after_ms": round((time.monotonic() - t0) * 1000),
                       "no_token_yet_after": early})
            try:
                b.app.wait(lambda ls, w=first: any(w in line for line in ls), 8.0, "the first streamed line")
            except AssertionError:
                b.errors.append("heartbeat: the first streamed line never showed")
                continue
            beat = b.beat()
            hb.append({"check": "busy streaming", "expected": "working", "got": beat.state, "reason": beat.reason,
                       "still_busy_on_screen": b.app.is_busy()})
        finally:
            b.server.script()
    for _ in range(rounds):
        b.ready()
        b.app.tmux("send-keys", "-t", b.app.pane_id, "-l", "/model")
        time.sleep(0.6)
        b.app.tmux("send-keys", "-t", b.app.pane_id, "Enter")
        time.sleep(1.5)  # the dialog is drawn by then; one heartbeat is scored
        beat = b.beat()
        check = {"check": "dialog open", "expected": "waiting_for_input", "got": beat.state, "dialog": beat.dialog,
                 "reason": beat.reason}
        if beat.state != "waiting_for_input":
            check["screen"] = b.screen()
        hb.append(check)
        for _ in range(3):
            b.app.tmux("send-keys", "-t", b.app.pane_id, "Escape")
            if b.idle(4.0):
                break


def phase_naive(b: Bench, style: str, count: int) -> dict[str, Any]:
    right = 0
    for index in range(count):
        category, text = make_prompt(index, tag=style)
        b.ready()
        before = len(b.received())
        pane = b.app.pane_id
        try:
            if style == "a":
                b.app.tmux("send-keys", "-t", pane, "-l", "--", text)
                time.sleep(0.5)
                b.app.tmux("send-keys", "-t", pane, "Enter")
            else:
                b.app.tmux("send-keys", "-t", pane, text, "Enter")
        except RuntimeError as exc:
            b.problem(f"naive-{style}", category, text, None, 0, b.screen(), f"tmux refused: {exc}")
            continue
        deadline = time.monotonic() + 8.0
        b.server.wait_for(before - len(b.archived) + 1, 8.0)
        screen = b.screen()
        times = Counter(b.received()[before:])[text]
        settled = b.idle(max(1.5, deadline - time.monotonic()))
        if times == 1 and settled:
            right += 1
            continue
        b.problem(f"naive-{style}", category, text, None, times, screen,
                  "" if settled else "app not idle after 8 s: restarted", since=before)
        if not settled:
            b.restart(f"naive {style} left {category!r} junk or a stuck app")
    return {"tries": count, "right": right, "pct": round(100.0 * right / count, 1)}


def phase_exited(b: Bench, hb: list[dict[str, Any]]) -> None:
    b.app.tmux("set-option", "-p", "-t", b.app.pane_id, "remain-on-exit", "on")
    b.app.stop_process()
    t0, seen = time.monotonic(), []
    while True:
        beat = b.beat()
        seen.append(beat.state)
        if beat.state == "exited" or time.monotonic() - t0 > 10:
            break
        time.sleep(0.2)
    hb.append({"check": "exited", "expected": "exited", "got": beat.state, "reason": beat.reason,
               "after_ms": round((time.monotonic() - t0) * 1000), "states_seen": sorted(set(seen))})


def bench_app(name: str, socket: str, folder: Path, tries: int) -> dict[str, Any]:
    row: dict[str, Any] = {"app": name, "version": PACKAGES[name][1], "installed": installed_version(name)}
    if ensure_installed(name) is None:
        row["skipped"] = why_missing(name)
        return row
    busy_tries, naive_tries = max(2, min(5, tries // 10)), max(6, min(20, tries * 20 // 56))
    b = Bench(name, socket, folder)
    hb: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        b.start()
        row["boot_s"] = round(b.app.boot_s, 1)
        phases: list[tuple[str, Callable[[], Any]]] = [
            ("idle", lambda: phase_idle(b, tries, hb)), ("busy", lambda: phase_busy(b, busy_tries)),
            ("heartbeat", lambda: phase_heartbeat(b, 3, hb)), ("naive_a", lambda: phase_naive(b, "a", naive_tries)),
            ("naive_b", lambda: phase_naive(b, "b", naive_tries)), ("exited", lambda: phase_exited(b, hb))]
        for phase, run in phases:
            t0 = time.monotonic()
            try:
                value = run()
                if value is not None:
                    row[phase] = value
            except Exception as exc:
                b.errors.append(f"{phase}: {type(exc).__name__}: {exc}"[:2000])
                traceback.print_exc(file=sys.stderr)
                with contextlib.suppress(Exception):
                    b.ready()
            row.setdefault("phase_s", {})[phase] = round(time.monotonic() - t0, 1)
    except Exception as exc:
        b.errors.append(f"start: {type(exc).__name__}: {exc}"[:2000])
    finally:
        with contextlib.suppress(Exception):
            b.stop()
    states = {c["check"]: [0, 0] for c in hb}
    for check in hb:
        states[check["check"]][0] += check["got"] == check["expected"]
        states[check["check"]][1] += 1
    row.update(heartbeat={k: f"{v[0]}/{v[1]}" for k, v in states.items()}, heartbeat_checks=hb,
               restarts=b.restarts, problems=b.problems, errors=b.errors, wall_s=round(time.monotonic() - started, 1))
    return row


def run_real(tries: int, apps: list[str]) -> list[dict[str, Any]]:
    """Bench each app (``tries`` idle prompts; busy, naive and heartbeat tries scale with it)."""
    folder = Path(tempfile.mkdtemp(prefix="pfrealbench-"))
    old_state = os.environ.get("PREFLIGHT_STATE_DIR")
    os.environ["PREFLIGHT_STATE_DIR"] = str(folder / "state")
    socket = f"pfreal-bench-{os.getpid()}"
    rows: list[dict[str, Any]] = []
    try:
        for name in apps:
            print(f"real-app bench: {name} ...", file=sys.stderr, flush=True)
            rows.append(bench_app(name, socket, folder, tries))
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=20, check=False)
        Path(f"/tmp/tmux-{os.getuid()}/{socket}").unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop("PREFLIGHT_STATE_DIR", None)
        if old_state is not None:
            os.environ["PREFLIGHT_STATE_DIR"] = old_state
    return rows



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="15 idle prompts, 2 busy tries, 6 naive tries per app")
    parser.add_argument("--apps", default=",".join(APPS), help="comma-separated: claude,codex,gemini")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    apps = [a.strip() for a in args.apps.split(",") if a.strip()]
    unknown = [a for a in apps if a not in APPS]
    if unknown:
        parser.error(f"unknown app(s) {unknown}; choose from {', '.join(APPS)}")
    started = time.monotonic()
    rows = run_real(15 if args.quick else 56, apps)
    if args.json:
        print(json.dumps({"real_apps": rows, "wall_s": round(time.monotonic() - started, 1)}, indent=1,
                         ensure_ascii=False))
    else:
        print_table(rows)
        print(f"wall time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

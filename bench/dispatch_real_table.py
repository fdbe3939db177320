"""The real-app dispatch benchmark's table for people (``bench/dispatch_real.py`` measures; this prints)."""

from __future__ import annotations

from typing import Any


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'app':7} {'version':8} {'prompts':>7} {'once%':>6} {'falseOK':>7} {'falseRef':>8} {'med ms':>7}"
          f" {'1-line':>7} {'p90':>7} {'busy r/w/q':>11} {'naiveA%':>7} {'naiveB%':>7} {'hb right':>8}")
    for row in rows:
        if "skipped" in row:
            print(f"{row['app']:7} skipped: {row['skipped']}")
            continue
        idle, busy = row.get("idle", {}), row.get("busy", {})
        beats = row.get("heartbeat", {})
        right = sum(int(v.split("/")[0]) for v in beats.values())
        total = sum(int(v.split("/")[1]) for v in beats.values())
        busy_cell = "/".join(busy.get(m, "?").split("/")[0] for m in ("refuse", "wait", "queue"))
        busy_cell += f" of {busy.get('refuse', '?/?').split('/')[1]}"
        print(f"{row['app']:7} {row['version']:8} {idle.get('prompts', '-')!s:>7} {idle.get('exactly_once_pct')!s:>6}"
              f" {idle.get('false_confirmations')!s:>7} {idle.get('false_refusals')!s:>8}"
              f" {idle.get('median_ms')!s:>7} {idle.get('median_single_line_ms')!s:>7} {idle.get('p90_ms')!s:>7}"
              f" {busy_cell:>11} {row.get('naive_a', {}).get('pct')!s:>7} {row.get('naive_b', {}).get('pct')!s:>7}"
              f" {f'{right}/{total}':>8}")
    for row in rows:
        if "skipped" in row:
            continue
        print(f"  {row['app']}: heartbeat {row.get('heartbeat')}; statuses {row.get('idle', {}).get('statuses')};"
              f" multi-line median {row.get('idle', {}).get('median_multiline_ms')} ms; restarts {row['restarts']};"
              f" {row['wall_s']} s")
        for p in row["problems"]:
            why = p["reason"] or p["note"] or f"received instead: {p['got']}"
            print(f"    {p['phase']} [{p['category']}] {p['status']} x{p['received_times']}: {why}")
        for err in row["errors"]:
            print(f"    error: {err.splitlines()[0][:200]}")
    print("(once% = idle prompts the model server got exactly once, verbatim; falseOK = submitted/queued but not"
          " received once; falseRef = refused/lost/unconfirmed while idle; ms = dispatch call to answer;"
          " busy = right outcomes under on_busy refuse/wait/queue; naive A = send-keys -l, 0.5 s, Enter;"
          " naive B = one send-keys text Enter, no -l)")

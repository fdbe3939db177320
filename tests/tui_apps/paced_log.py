"""A training-like program that prints a log line every ``--every`` steps of exactly ``--step-s`` seconds.

Why paced by deadline (step k ends at start + k x step_s) rather than by sleep: the true cadence is then
``step_s`` however late a sleep wakes on a loaded machine, so a test can hold a measured step time to it.
Printed to stdout with plain ``print``: run it with ``python -u`` for line-by-line arrival, without
``-u`` (and without PYTHONUNBUFFERED) for a block-buffered log that lands at exit.

Layouts (our own lines, written from each documented format):
- ``hf``: a Trainer log dict as transformers 5 prints it (values as quoted strings) plus ``step``, the
  key every ``state.log_history`` entry carries, as a callback printing the history shows it;
- ``nano``: nanoGPT's ``iter N: loss X, time Yms`` with the step's measured time;
- ``custom``: ``[train] step=N loss=X`` (a layout no built-in format detects: needs a regex).
"""

from __future__ import annotations

import argparse
import time

parser = argparse.ArgumentParser()
parser.add_argument("--layout", choices=["hf", "nano", "custom"], default="hf")
parser.add_argument("--steps", type=int, default=40)
parser.add_argument("--every", type=int, default=4)
parser.add_argument("--step-s", type=float, default=0.1)
args = parser.parse_args()

start = last = time.monotonic()
for step in range(1, args.steps + 1):
    time.sleep(max(0.0, start + step * args.step_s - time.monotonic()))
    now = time.monotonic()
    took_ms, last = (now - last) * 1000, now
    if step % args.every:
        continue
    loss = 8.5 - step / 1000
    if args.layout == "hf":
        print({"loss": f"{loss:.4g}", "learning_rate": "0.001", "epoch": f"{step / args.steps:.4g}", "step": step})
    elif args.layout == "nano":
        print(f"iter {step}: loss {loss:.4f}, time {took_ms:.2f}ms, mfu -100.00%")
    else:
        print(f"[train] step={step} loss={loss:.4f}")

"""A small training-like program: prints nanoGPT-style log lines for a few seconds, then exits.

    fake_train.py --log train.log [--steps 30] [--step-s 0.1] [--tokens-per-step 4096] [--exit-code 0]

Each step writes ``iter N: loss X, time Yms, mfu Z%`` (nanoGPT's format) to stdout and the log, so the
dispatcher, heartbeat and run_check see a real process with real output and a growing log.
"""

from __future__ import annotations

import argparse
import math
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--step-s", type=float, default=0.1)
    parser.add_argument("--exit-code", type=int, default=0)
    args = parser.parse_args()
    with open(args.log, "a", buffering=1, encoding="utf-8") as log:
        for step in range(args.steps):
            started = time.monotonic()
            time.sleep(args.step_s)
            loss = 4.0 * math.exp(-step / 20) + 1.0
            ms = (time.monotonic() - started) * 1000
            line = f"iter {step}: loss {loss:.4f}, time {ms:.2f}ms, mfu 31.20%"
            print(line, flush=True)
            log.write(line + "\n")
    return args.exit_code


if __name__ == "__main__":
    sys.exit(main())

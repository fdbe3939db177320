"""Print a few lines, then go silent: sleep (no CPU), burn CPU (--burn), or wait for input (--ask).

Heartbeat fixtures: a hung job looks exactly like the first mode; the other two must NOT be
called hung.
"""

from __future__ import annotations

import sys
import time

if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "--sleep"
    for step in range(3):
        print(f"step {step} loss 2.{9 - step}", flush=True)
    if mode == "--burn":
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            pass
    elif mode == "--ask":
        input("continue? ")
    else:
        time.sleep(100_000)

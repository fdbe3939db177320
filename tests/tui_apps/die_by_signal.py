"""Print a line, wait, then die by the chosen signal (default SIGTERM) with its default action."""

from __future__ import annotations

import os
import signal
import sys
import time

if __name__ == "__main__":
    signum = int(sys.argv[1]) if len(sys.argv) > 1 else signal.SIGTERM
    delay_s = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    print(f"die_by_signal: will die by signal {signum}", flush=True)
    time.sleep(delay_s)
    if signum not in (signal.SIGKILL, signal.SIGSTOP):
        signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    time.sleep(5)

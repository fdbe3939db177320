"""Print a line, wait, exit with the chosen code (exit-code bookkeeping tests)."""

from __future__ import annotations

import sys
import time

if __name__ == "__main__":
    code = int(sys.argv[1])
    delay_s = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    print(f"exit_with: will exit {code}", flush=True)
    time.sleep(delay_s)
    sys.exit(code)

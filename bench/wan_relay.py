"""A network distance for the remote bench: an ssh ``ProxyCommand`` that forwards one TCP stream with a delay.

Why: bench/remote.py's boxes are sshd's on 127.0.0.1, a round trip of ~0.05 ms, while a rented box is
typically 20-100 ms away; what a remote tool costs there is dominated by round trips, which loopback
hides. ssh runs ``python3 bench/wan_relay.py DELAY_MS HOST PORT`` as its ``ProxyCommand`` and talks to
it over stdin/stdout; the relay connects to HOST:PORT and holds every chunk, each direction, for
DELAY_MS before passing it on (25 ms each way = 50 ms RTT). Order is kept and nothing is throttled: a
constant latency, no bandwidth limit and no loss. No root is needed (unlike ``tc netem``).

End of stream is delayed like data: stdin closing shuts the socket's write side after DELAY_MS, the
socket closing ends the relay after DELAY_MS.
"""

from __future__ import annotations

import os
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable

CHUNK_BYTES = 65536


def _pump(read: Callable[[int], bytes], write: Callable[[bytes], object], delay_s: float,
          at_end: Callable[[], None]) -> list[threading.Thread]:
    """Two threads: one reads chunks and stamps when they are due, one writes each at its time."""
    due: queue.Queue[tuple[float, bytes]] = queue.Queue()

    def reader() -> None:
        while True:
            try:
                data = read(CHUNK_BYTES)
            except OSError:
                data = b""
            due.put((time.monotonic() + delay_s, data))
            if not data:
                return

    def writer() -> None:
        while True:
            when, data = due.get()
            wait_s = when - time.monotonic()
            if wait_s > 0:
                time.sleep(wait_s)
            if not data:
                at_end()
                return
            try:
                write(data)
            except OSError:
                at_end()
                return

    threads = [threading.Thread(target=reader, daemon=True), threading.Thread(target=writer, daemon=True)]
    for t in threads:
        t.start()
    return threads


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        sys.stderr.write("usage: wan_relay.py DELAY_MS HOST PORT\n")
        return 2
    delay_s = float(argv[0]) / 1000
    sock = socket.create_connection((argv[1], int(argv[2])), timeout=10)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    done = threading.Event()

    def shut_write() -> None:
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            done.set()

    _pump(lambda n: os.read(0, n), sock.sendall, delay_s, shut_write)
    _pump(sock.recv, lambda data: _write_all(1, data), delay_s, done.set)
    done.wait()
    sock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

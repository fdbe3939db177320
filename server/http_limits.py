"""Slow HTTP clients for ``preflight serve --http``: header and body deadlines, and a per-client connection cap.

Why: uvicorn's h11 protocol has a keep-alive timeout between requests but no deadline for a request
itself. A client that sends its headers one byte a second (slowloris), or announces a body and never
finishes it, held a connection and a worker for as long as it liked; a few hundred of them from one
client exhausted the server while the agent's own calls waited. Here, per connection:

* the request head (request line and headers) must arrive within ``header_timeout_s`` of the
  connection (or of the first byte of a later request on a kept-alive connection);
* a request body must arrive within ``body_timeout_s`` of its headers;
* one client address holds at most ``max_per_client`` connections at once; the next is answered 503
  and closed before any of it is read.

A request that misses a deadline is answered ``408 Request Timeout`` when no response has started, and
the connection is closed; the application sees a disconnect. Deadlines are totals, not idle times: a
trickle of bytes does not extend them. Streams the server sends (SSE) are not limited: once the request
is complete nothing here runs. Through an SSH tunnel every client is 127.0.0.1, so the cap then bounds
all tunnelled clients together.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("gpu_preflight.http")

_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\nretry-after: 1\r\n\r\n"


@dataclass(frozen=True)
class SlowClientLimits:
    """The limits ``serve --http`` applies (defaults generous for an agent behind an SSH tunnel)."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_per_client: int = 32


def guarded_protocol(limits: SlowClientLimits) -> type[H11Protocol]:
    """An h11 protocol class with ``limits``; each server gets its own class (and its own counter)."""
    open_by_client: Counter[str] = Counter()

    class GuardedH11Protocol(H11Protocol):
        """uvicorn's h11 protocol plus the deadlines and the cap described in the module docstring."""

        _timer: asyncio.TimerHandle | None = None
        _phase: str = ""
        _counted: str | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            host = self.client[0] if self.client else "?"
            if open_by_client[host] >= limits.max_per_client:
                log.warning("refused a connection from %s: %d open (cap %d)", host, open_by_client[host],
                            limits.max_per_client)
                transport.write(_BUSY)
                transport.close()
                return
            open_by_client[host] += 1
            self._counted = host
            self._arm("headers", limits.header_timeout_s)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._counted is not None:
                open_by_client[self._counted] -= 1
                if open_by_client[self._counted] <= 0:
                    del open_by_client[self._counted]
                self._counted = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._follow()

        def _follow(self) -> None:
            """Re-arm after what the client has sent: head pending, body pending, or request complete."""
            state = self.conn.their_state
            if state is h11.IDLE and self.conn.trailing_data[0]:  # a later request's head is arriving
                if self._phase != "headers":
                    self._arm("headers", limits.header_timeout_s)
            elif state is h11.SEND_BODY:
                if self._phase != "body":
                    self._arm("body", limits.body_timeout_s)
            elif state is not h11.IDLE:
                self._disarm()

        def _arm(self, phase: str, seconds: float) -> None:
            self._disarm()
            self._phase = phase
            self._timer = self.loop.call_later(seconds, self._expired, phase, seconds)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._phase = None, ""

        def _expired(self, phase: str, seconds: float) -> None:
            self._timer, self._phase = None, ""
            if self.transport is None or self.transport.is_closing():
                return
            host = self.client[0] if self.client else "?"
            log.warning("dropped a slow client %s: request %s not complete after %g s", host, phase, seconds)
            if self.cycle is None or not self.cycle.response_started:
                self.transport.write(_TIMEOUT)
            self.transport.close()

    return GuardedH11Protocol


def uvicorn_options(limits: SlowClientLimits) -> dict[str, Any]:
    """``uvicorn.Config`` keyword arguments for ``limits``: the guarded protocol, a global concurrency
    cap (503 above it) and a short keep-alive, so idle connections do not count against the cap for long."""
    return {"http": guarded_protocol(limits), "limit_concurrency": max(4 * limits.max_per_client, 64),
            "timeout_keep_alive": 5}

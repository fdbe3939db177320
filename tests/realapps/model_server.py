"""A scripted model server on 127.0.0.1 for the real agent TUIs; its record is the delivery ground truth.

It speaks just enough of three wire protocols for the apps to run a plain chat turn:

* Anthropic Messages (Claude Code): ``POST /v1/messages`` (SSE when ``stream`` is true, JSON otherwise),
  ``POST /v1/messages/count_tokens``; every other path gets ``{}`` and is logged in ``unknown_paths``.
* OpenAI Responses (Codex): ``POST /v1/responses`` (SSE), ``GET /v1/models``.
* Gemini (Gemini CLI): ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``, ``:generateContent``,
  ``:countTokens``.

``received`` holds each prompt the user submitted EXACTLY ONCE. A request carries the whole conversation,
and the apps send side requests that repeat the user's text, so only *main conversation* requests are
read, and of those only the user texts not already seen in that API's previous main-request history.
What tells main turns from side requests (observed with the pinned versions, see ``apps.py``):

* Claude Code 2.1.332 (with ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1``): one ``POST /v1/messages?beta=true``
  per turn, streaming, with 13 ``tools``; no side requests and no other path was seen. Side requests of
  other set-ups (quota probe ``max_tokens: 1``, title/topic prompts) carry no tools, so main = has tools.
  The last user message holds a ``<system-reminder>`` text block and then the typed text (stripped: reminder
  blocks, also reminders inside a block). ``messages`` also holds a ``role: system`` entry (ignored).
* Codex 0.171.0: main turns are ``POST /v1/responses`` with 13 ``tools``; right after the first turn comes a
  title request with no tools and ``text.format`` a JSON schema ``{title}`` whose user text embeds the
  prompt (``Generate a concise, single-line task title ... User prompt:\n<text>``): it gets ``{"title":
  "ok"}`` and is not counted. Codex adds a user message ``<environment_context>…</environment_context>``
  (wholly tag-wrapped, skipped); developer messages are ignored. No ``/v1/models`` call was seen.
* Gemini CLI 0.61.0: each turn is a routing request (``gemini-3.5-flash-lite:generateContent``, no tools,
  ``responseJsonSchema`` with a complexity score) then the main ``<model>:streamGenerateContent?alt=sse``
  with ``tools``; main = streamGenerateContent with tools. Gemini prepends a user content
  ``<session_context>This is the Gemini CLI…`` (skipped). A repetitive reply trips its loop detection,
  which injects a user turn ``System: Potential loop detected…`` (skipped) and opens a dialog.

Replies are scriptable (``script``) so a test can hold an app busy before its first token and while
its reply streams; every SSE event is flushed as it is written, so the trickle is real.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import wire

JSON = dict[str, Any]
_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.S)
_INJECTED = ("This is the Gemini CLI", "System: Potential loop detected")
_PASTE_FRAME = re.compile(r'<pasted_content id="([^"]+)">\n(.*?)\n</pasted_content id="\1">', re.S)
"""Claude Code 2.1.332 sends a multi-line paste framed so; the text inside is the paste, verbatim."""
_WRAPPED = re.compile(r"^\s*(?:#[^\n]*\n)?\s*(?:<([A-Za-z_][\w-]*)[^>]*>.*?</\1>\s*)+$", re.S)
"""A part made only of tagged blocks is the app's own: context, or Claude Code's record of a slash command
(``<command-name>/model</command-name><command-message>…``) sent with the next turn."""


@dataclass(frozen=True)
class Received:
    app_api: str  # "anthropic" | "openai" | "gemini"
    text: str
    t_monotonic: float


@dataclass(frozen=True)
class Script:
    reply_text: str = "ok"
    first_token_delay_s: float = 0.0
    stream_s: float = 0.0
    chunks: int = 1


@dataclass(frozen=True)
class Request:
    """Every request the server saw (for debugging and for reports)."""

    method: str
    path: str
    api: str
    main: bool
    body: JSON | None
    t_monotonic: float = field(default_factory=time.monotonic)


def _typed(text: str) -> str | None:
    """The user's own text from one content part, or None for an app-added part."""
    text = _REMINDER.sub("", text)
    framed = _PASTE_FRAME.fullmatch(text.strip())
    if framed is not None:
        return framed.group(2)
    text = text.strip()
    if not text or _WRAPPED.match(text) or text.startswith(_INJECTED):
        return None
    return text


def anthropic_user_texts(body: JSON) -> list[str]:
    out: list[str] = []
    for msg in body.get("messages", []):
        if msg.get("role") != "user":
            continue
        content = msg.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        texts = [t for p in parts if p.get("type") == "text" and (t := _typed(str(p.get("text", ""))))]
        out.extend(texts)
    return out


def openai_user_texts(body: JSON) -> list[str]:
    out: list[str] = []
    items = body.get("input", [])
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    for item in items:
        if item.get("role") != "user" or item.get("type", "message") != "message":
            continue
        content = item.get("content")
        parts = [{"type": "input_text", "text": content}] if isinstance(content, str) else content or []
        out.extend(t for p in parts if p.get("type") == "input_text" and (t := _typed(str(p.get("text", "")))))
    return out


def gemini_user_texts(body: JSON) -> list[str]:
    out: list[str] = []
    for msg in body.get("contents", []):
        if msg.get("role", "user") != "user":
            continue
        texts = [t for p in msg.get("parts", []) if "text" in p and (t := _typed(str(p["text"])))]
        out.extend(texts)
    return out


class ModelServer:
    """``with ModelServer() as srv: ...``; ``srv.port``, ``srv.received``, ``srv.script(...)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._script = Script()
        self._seen: dict[str, list[str]] = {}
        self._conns: set[socket.socket] = set()
        self.received: list[Received] = []
        self.requests: list[Request] = []
        self.unknown_paths: list[str] = []
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.model = self
        self.port: int = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"model-server-{self.port}", daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ModelServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def script(self, reply_text: str = "ok", first_token_delay_s: float = 0.0, stream_s: float = 0.0,
               chunks: int = 1) -> None:
        """How the next main-conversation replies behave (until scripted again)."""
        with self._lock:
            self._script = Script(reply_text, first_token_delay_s, stream_s, max(1, chunks))

    def current_script(self, main: bool, body: JSON) -> Script:
        """The scripted reply for main turns; side requests get an instant reply (JSON if they demand it)."""
        if not main:
            return Script(reply_text=wire.json_reply(body) or "ok")
        with self._lock:
            return self._script

    def received_texts(self) -> list[str]:
        with self._lock:
            return [r.text for r in self.received]

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[str]:
        """Wait until at least ``count`` prompts arrived; return the texts (possibly fewer on timeout)."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self.received) < count and not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            return [r.text for r in self.received]

    def record(self, method: str, path: str, api: str, main: bool, body: JSON | None, texts: list[str]) -> None:
        now = time.monotonic()
        with self._changed:
            self.requests.append(Request(method, path, api, main, body, now))
            if not main:
                return
            seen = self._seen.get(api, [])
            common = 0
            while common < min(len(seen), len(texts)) and seen[common] == texts[common]:
                common += 1
            self._seen[api] = list(texts)
            self.received.extend(Received(api, t, now) for t in texts[common:])
            self._changed.notify_all()

    def sleep(self, seconds: float) -> bool:
        """Sleep unless the server is closing; False means stop streaming now."""
        return not self._stop.wait(seconds) if seconds > 0 else not self._stop.is_set()

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def close(self) -> None:
        """Stop at once, also in the middle of a slow stream; idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        self.httpd.shutdown()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.httpd.server_close()
        self._thread.join(5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True  # server_close joins the handlers; close() first shuts their sockets down
    model: ModelServer


def _chunks(text: str, n: int) -> list[str]:
    """``text`` in ``n`` pieces: whole lines when it has at least ``n`` lines (Claude Code draws a streamed
    reply line by line, so a one-line reply shows nothing until it ends), else equal slices."""
    lines = text.splitlines(keepends=True)
    if len(lines) >= n > 1:
        per = -(-len(lines) // n)
        return ["".join(lines[i:i + per]) for i in range(0, len(lines), per)]
    size = max(1, -(-len(text) // n))
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.model.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.model.track(self.connection, False)

    # -- plumbing ---------------------------------------------------------------------------------

    def _body(self) -> JSON | None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def _json(self, value: object, status: int = 200) -> None:
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: Iterator[tuple[str | None, JSON] | None]) -> None:
        """Chunked ``text/event-stream``; ``None`` items are pauses already slept by the generator."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for item in events:
                if item is None:
                    continue
                name, data = item
                text = (f"event: {name}\n" if name else "") + f"data: {json.dumps(data)}\n\n"
                raw = text.encode()
                self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _paced(self, script: Script) -> Iterator[str | None]:
        """The reply's pieces at the scripted pace; stops early (yields nothing more) when closing."""
        model = self.server.model
        if not model.sleep(script.first_token_delay_s):
            return
        pieces = _chunks(script.reply_text, script.chunks)
        gap = script.stream_s / max(1, len(pieces) - 1) if len(pieces) > 1 else script.stream_s
        for i, piece in enumerate(pieces):
            if i and not model.sleep(gap):
                return
            yield piece
        if len(pieces) == 1 and script.stream_s and not model.sleep(script.stream_s):
            return

    # -- routes -----------------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        model = self.server.model
        if path.endswith("/models"):
            model.record("GET", self.path, "openai", False, None, [])
            self._json({"object": "list", "data": [{"id": "fake-model", "object": "model", "owned_by": "local"}],
                        "models": []})
            return
        model.record("GET", self.path, "unknown", False, None, [])
        model.unknown_paths.append(f"GET {self.path}")
        self._json({})

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        body = self._body() or {}
        path = self.path.split("?", 1)[0]
        model = self.server.model
        if path == "/v1/messages":
            main = bool(body.get("tools"))
            model.record("POST", self.path, "anthropic", main, body, anthropic_user_texts(body))
            script = model.current_script(main, body)
            if body.get("stream"):
                self._sse(wire.anthropic_stream(body, script, self._paced(script)))
            else:
                self._json(wire.anthropic_message(body, script.reply_text))
        elif path == "/v1/messages/count_tokens":
            model.record("POST", self.path, "anthropic", False, body, [])
            self._json({"input_tokens": 42})
        elif path.endswith("/responses"):
            main = bool(body.get("tools"))
            model.record("POST", self.path, "openai", main, body, openai_user_texts(body))
            script = model.current_script(main, body)
            self._sse(wire.openai_stream(body, script, self._paced(script)))
        elif ":" in path and "/models/" in path:
            method = path.rsplit(":", 1)[1]
            main = method == "streamGenerateContent" and bool(body.get("tools"))
            texts = gemini_user_texts(body) if method != "countTokens" else []
            model.record("POST", self.path, "gemini", main, body, texts)
            script = model.current_script(main, body)
            if method == "countTokens":
                self._json({"totalTokens": 42})
            elif method == "streamGenerateContent":
                self._sse(wire.gemini_stream(body, script, self._paced(script)))
            else:
                self._json(wire.gemini_response(script.reply_text, final=True))
        else:
            model.record("POST", self.path, "unknown", False, body, [])
            model.unknown_paths.append(f"POST {self.path}")
            self._json({})

"""The real-app harness itself: each real agent TUI boots offline, a naive send reaches the scripted model
server exactly once, and a slow scripted reply shows on screen as busy (before the first token and while
streaming) and then idle again. Each app skips with the reason when it is not installed and can't be."""

from __future__ import annotations

import contextlib
import http.client
import json
import time
import urllib.request
from collections.abc import Mapping

from realapps.apps import RunningApp
from realapps.fixtures import Harness
from realapps.model_server import ModelServer

# Distinct words on several lines: a repetitive reply trips Gemini CLI's loop detection (a dialog and an
# injected turn), and Claude Code draws a streamed reply only line by line.
PAIRS = [("amber", "basalt"), ("cobalt", "dune"), ("ember", "fjord"), ("garnet", "harbor"),
         ("indigo", "juniper"), ("kelp", "lagoon"), ("marble", "nectar"), ("onyx", "pumice")]
SLOW_REPLY = "\n\n".join(f"{a} {b} is line {i}." for i, (a, b) in enumerate(PAIRS))


def naive_send(app: RunningApp, text: str) -> None:
    """Literal text, half a second, then Enter in a separate tmux call."""
    app.tmux("send-keys", "-t", app.pane_id, "-l", text)
    time.sleep(0.5)
    app.tmux("send-keys", "-t", app.pane_id, "Enter")


def test_naive_send_is_received_exactly_once(harness: Harness) -> None:
    app, server = harness.app, harness.server
    assert harness.boot_s < 30
    assert server.received_texts() == []
    prompt = f"say hello to the {app.spec.name} harness"
    naive_send(app, prompt)
    assert server.wait_for(1, timeout_s=15) == [prompt], app.screen()
    app.wait_idle(timeout_s=15)
    time.sleep(0.5)  # side requests (titles, routing) arrive around the turn: none may count twice
    assert server.received_texts() == [prompt]
    assert all(r.app_api == app.spec.api for r in server.received)


def test_slow_reply_shows_busy_then_idle(harness: Harness) -> None:
    app, server = harness.app, harness.server
    app.wait_idle(timeout_s=15)
    before = server.received_texts()
    server.script(reply_text=SLOW_REPLY, first_token_delay_s=3.0, stream_s=4.0, chunks=8)
    try:
        prompt = f"take your time, {app.spec.name}"
        naive_send(app, prompt)
        sent = time.monotonic()
        assert server.wait_for(len(before) + 1, timeout_s=10)[len(before):] == [prompt]
        first_word = SLOW_REPLY.split()[0]
        # Busy before the first token: the marker is up, no reply text yet.
        lines = app.wait(app.spec.is_busy, timeout_s=2.0, what="busy before the first token")
        assert time.monotonic() - sent < 3.0
        assert not any(first_word in line for line in lines)
        # Busy while streaming: reply text on screen and still busy.
        lines = app.wait(lambda ls: any(first_word in line for line in ls), timeout_s=6.0, what="the first token")
        assert app.spec.is_busy(lines), "\n".join(lines)
        # Then idle again, with the whole reply drawn.
        lines = app.wait_idle(timeout_s=15)
        assert time.monotonic() - sent >= 6.5
        assert any(SLOW_REPLY.split()[-1] in line for line in lines)
        assert server.received_texts() == [*before, prompt]
    finally:
        server.script()


# -- the model server alone (no app needed, so these also run where the apps can't be installed) -----------


def _post(server: ModelServer, path: str, body: Mapping[str, object]) -> bytes:
    req = urllib.request.Request(server.base_url + path, json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        data: bytes = resp.read()
        return data


def test_model_server_counts_each_prompt_once() -> None:
    reminder = {"type": "text", "text": "<system-reminder>\nctx\n</system-reminder>"}
    with ModelServer() as server:
        first = [{"role": "user", "content": [reminder, {"type": "text", "text": "one"}]}]
        _post(server, "/v1/messages?beta=true", {"stream": True, "tools": [{"name": "Bash"}], "messages": first})
        # A side request (no tools) repeating the text, then the next main turn carrying the history.
        _post(server, "/v1/messages", {"max_tokens": 1, "messages": [{"role": "user", "content": "one"}]})
        second = [*first, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "two"}]
        out = _post(server, "/v1/messages", {"stream": True, "tools": [{"name": "Bash"}], "messages": second})
        assert b"event: message_stop" in out and b'"text": "ok"' in out
        env_text = "<environment_context>x</environment_context>"
        env = {"role": "user", "content": [{"type": "input_text", "text": env_text}]}
        typed = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "three"}]}
        _post(server, "/v1/responses", {"tools": [{"type": "function"}], "input": [env, typed]})
        title = {"text": {"format": {"type": "json_schema", "schema": {"type": "object", "properties": {
            "title": {"type": "string"}}}}}, "input": [typed]}
        assert b'\\"title\\": \\"ok\\"' in _post(server, "/v1/responses", title)
        ctx = {"text": "<session_context>\nThis is the Gemini CLI.\n</session_context>"}
        contents = [{"role": "user", "parts": [ctx]}, {"role": "user", "parts": [{"text": "four"}]}]
        _post(server, "/v1beta/models/m:generateContent", {"contents": contents})
        _post(server, "/v1beta/models/m:streamGenerateContent?alt=sse", {"contents": contents, "tools": [{}]})
        assert server.received_texts() == ["one", "two", "three", "four"]
        assert [r.app_api for r in server.received] == ["anthropic", "anthropic", "openai", "gemini"]


def test_model_server_trickles_and_closes_mid_stream() -> None:
    server = ModelServer()
    server.script(reply_text="a\nb\nc\n", first_token_delay_s=0.3, stream_s=0.4, chunks=3)
    body = json.dumps({"stream": True, "tools": [{}], "messages": [{"role": "user", "content": "x"}]}).encode()
    req = urllib.request.Request(server.base_url + "/v1/messages", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        t0 = time.monotonic()
        assert b"message_start" in resp.readline() + resp.readline()  # before the first token
        assert time.monotonic() - t0 < 0.25
        seen = b""
        while b"text_delta" not in seen:
            seen += resp.readline()
        assert time.monotonic() - t0 >= 0.25
        server.script(first_token_delay_s=30)  # for later turns only: this stream keeps its script
        closing = time.monotonic()
        server.close()  # mid-stream
        assert time.monotonic() - closing < 3.0
        with contextlib.suppress(http.client.HTTPException, OSError):
            resp.read()  # the connection was cut: the rest of the stream may be gone

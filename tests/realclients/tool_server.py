"""A scripted model that calls tools: the real agent runs each call on our MCP server and sends the result
back, and this server records exactly what the model would have read.

It extends :class:`realapps.model_server.ModelServer` (same loopback server, same side-request handling)
with a *turn script*: a function that gets the tool results so far and returns the next tool call, or
None to end with a plain text reply. Each main request's tool results are read from the wire:

* OpenAI Responses (Codex): ``function_call_output`` items in ``input``, matched by ``call_id``; the
  ``output`` is a string or a list of ``input_text`` / ``input_image`` parts.
* Anthropic Messages (Claude Code): ``tool_result`` blocks in user messages, matched by ``tool_use_id``;
  the ``content`` is a string or a list of ``text`` / ``image`` blocks.

Codex 0.171.0 sends the MCP server's tools as one ``{"type": "namespace", "name": "mcp__preflight",
"tools": [...]}`` entry, so a call names the namespace and the tool separately (``namespace`` and
``name`` on the ``function_call`` item); observed here, see :func:`openai_tool_names`.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from realapps.model_server import ModelServer, Script, _Handler, anthropic_user_texts, openai_user_texts
from realapps.wire import anthropic_message, anthropic_stream, openai_stream

JSON = dict[str, Any]
Event = tuple[str | None, JSON]
_ids = itertools.count(1)


@dataclass(frozen=True)
class ToolCall:
    """One call the scripted model makes: ``tool`` as our server names it (or, with ``builtin``, one of
    the agent's own tools by its own name, e.g. Claude Code's ``ToolSearch``), with ``arguments``."""

    tool: str
    arguments: JSON
    builtin: bool = False


@dataclass
class ToolResult:
    """What the agent sent back for one call: the text the model reads (``text``: every text part joined,
    the way a model sees it) and the raw parts, plus whether the agent marked it an error."""

    call: ToolCall
    call_id: str
    text: str
    raw: Any
    is_error: bool | None
    t_monotonic: float = field(default_factory=time.monotonic)

    @property
    def size_bytes(self) -> int:
        return len(self.text.encode())

    def json(self) -> Any:
        """The result parsed as JSON (the structured content the agent forwards), or None if it is not JSON."""
        try:
            return json.loads(self.text)
        except ValueError:
            return None


TurnScript = Callable[[list[ToolResult]], ToolCall | str]
"""Given the results so far (oldest first), the next call, or a final text that ends the turn."""


def _text_of(value: Any) -> str:
    """The text a model reads from a tool output: a string, or the text parts of a content list."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(_text_of(part.get("text", "")) if isinstance(part, dict) else str(part) for part in value)
    return json.dumps(value)


def openai_tool_names(body: JSON) -> dict[str, str]:
    """Tool name -> namespace ("" when top level) for the tools a Responses request offers."""
    names: dict[str, str] = {}
    for tool in body.get("tools", []):
        if tool.get("type") == "namespace":
            names.update({str(t.get("name")): str(tool.get("name")) for t in tool.get("tools", [])})
        elif tool.get("name"):
            names[str(tool["name"])] = ""
    return names


class ToolCallServer(ModelServer):
    """``with ToolCallServer(script) as srv: ...``; after the agent's turn, ``srv.results`` holds every tool
    result in order and ``srv.final_text`` the text the script ended with (None if it never ended)."""

    def __init__(self, script: TurnScript, server_name: str = "preflight") -> None:
        super().__init__()
        self.turn_script = script
        self.server_name = server_name
        self.results: list[ToolResult] = []
        self.final_text: str | None = None
        self.offered_tools: list[str] = []
        self.tool_specs: list[JSON] = []  # the ``tools`` of the last main request, as the agent sent them
        self.problems: list[str] = []
        self._calls: dict[str, ToolCall] = {}
        self._done_calls: set[str] = set()
        self._turn_lock = threading.Lock()
        self.httpd.RequestHandlerClass = _ToolHandler

    def __enter__(self) -> ToolCallServer:
        return self

    def next_step(self, outputs: list[tuple[str, Any, bool | None]]) -> tuple[str, ToolCall | str]:
        """Record the outputs of our calls not seen before; return (call_id, the next call or final text)."""
        with self._turn_lock:
            for call_id, raw, is_error in outputs:
                call = self._calls.get(call_id)
                if call is None or call_id in self._done_calls:
                    continue
                self._done_calls.add(call_id)
                self.results.append(ToolResult(call, call_id, _text_of(raw), raw, is_error))
            if self.final_text is not None:
                return "", self.final_text
            step = self.turn_script(list(self.results))
            if isinstance(step, str):
                self.final_text = step
                return "", step
            call_id = f"call_{next(_ids):06d}"
            self._calls[call_id] = step
            return call_id, step


def _openai_outputs(body: JSON) -> list[tuple[str, Any, bool | None]]:
    return [(str(item.get("call_id")), item.get("output"), None) for item in body.get("input", [])
            if isinstance(item, dict) and item.get("type") == "function_call_output"]


def _anthropic_outputs(body: JSON) -> list[tuple[str, Any, bool | None]]:
    out: list[tuple[str, Any, bool | None]] = []
    for msg in body.get("messages", []):
        content = msg.get("content")
        if msg.get("role") != "user" or not isinstance(content, list):
            continue
        out.extend((str(b.get("tool_use_id")), b.get("content"), b.get("is_error"))
                   for b in content if isinstance(b, dict) and b.get("type") == "tool_result")
    return out


def openai_call_stream(body: JSON, call_id: str, name: str, namespace: str, arguments: JSON) -> Iterator[Event]:
    """A Responses stream whose only output is one ``function_call`` item."""
    n = next(_ids)
    seq = itertools.count()
    base = {"id": f"resp_t{n:06d}", "object": "response", "created_at": int(time.time()),
            "model": body.get("model", "fake-model"), "output": []}

    def ev(kind: str, **data: Any) -> Event:
        return kind, {"type": kind, "sequence_number": next(seq), **data}

    args = json.dumps(arguments)
    item: JSON = {"type": "function_call", "id": f"fc_{n:06d}", "call_id": call_id, "name": name,
                  "arguments": "", "status": "in_progress"}
    if namespace:
        item["namespace"] = namespace
    yield ev("response.created", response={**base, "status": "in_progress"})
    yield ev("response.output_item.added", output_index=0, item=item)
    yield ev("response.function_call_arguments.delta", item_id=item["id"], output_index=0, delta=args)
    yield ev("response.function_call_arguments.done", item_id=item["id"], output_index=0, arguments=args)
    done = {**item, "arguments": args, "status": "completed"}
    yield ev("response.output_item.done", output_index=0, item=done)
    usage = {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 10,
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 20}
    yield ev("response.completed", response={**base, "status": "completed", "output": [done], "usage": usage})


def anthropic_call_stream(body: JSON, call_id: str, name: str, arguments: JSON) -> Iterator[Event]:
    """A Messages stream whose only content block is one ``tool_use``."""
    start = anthropic_message(body, "")
    start.update(content=[], stop_reason=None)
    yield "message_start", {"type": "message_start", "message": start}
    yield "content_block_start", {"type": "content_block_start", "index": 0,
                                  "content_block": {"type": "tool_use", "id": call_id, "name": name, "input": {}}}
    yield "content_block_delta", {"type": "content_block_delta", "index": 0,
                                  "delta": {"type": "input_json_delta", "partial_json": json.dumps(arguments)}}
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield "message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                            "usage": {"output_tokens": 10}}
    yield "message_stop", {"type": "message_stop"}


class _ToolHandler(_Handler):
    """Main turns get the script's next call; side requests and everything else go to the base handler."""

    server: Any

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        is_openai, is_anthropic = path.endswith("/responses"), path == "/v1/messages"
        if not (is_openai or is_anthropic):
            super().do_POST()
            return
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        if not isinstance(body, dict) or not body.get("tools"):
            self._replay(raw)
            return
        model: ToolCallServer = self.server.model
        api = "openai" if is_openai else "anthropic"
        model.record("POST", self.path, api, True, body,
                     openai_user_texts(body) if is_openai else anthropic_user_texts(body))
        model.tool_specs = list(body.get("tools", []))
        outputs = _openai_outputs(body) if is_openai else _anthropic_outputs(body)
        call_id, step = model.next_step(outputs)
        if isinstance(step, str):
            script = Script(step)
            self._sse(openai_stream(body, script, iter([step])) if is_openai
                      else anthropic_stream(body, script, iter([step])))
            return
        if is_openai:
            names = openai_tool_names(body)
            model.offered_tools = sorted(names)
            wanted = f"mcp__{model.server_name}__{step.tool}"
            if step.tool in names:
                name, namespace = step.tool, names[step.tool]
            elif wanted in names:
                name, namespace = wanted, names[wanted]
            else:
                model.problems.append(f"{step.tool} not offered (tools: {sorted(names)})")
                name, namespace = step.tool, f"mcp__{model.server_name}"
            self._sse(openai_call_stream(body, call_id, name, namespace, step.arguments))
        else:
            model.offered_tools = sorted(str(t.get("name")) for t in body.get("tools", []))
            name = step.tool if step.builtin else f"mcp__{model.server_name}__{step.tool}"
            self._sse(anthropic_call_stream(body, call_id, name, step.arguments))

    def _replay(self, raw: bytes) -> None:
        """A side request (no tools): the base handler answers it, reading the same bytes again."""
        import io

        keep = self.rfile
        self.rfile = io.BufferedReader(io.BytesIO(raw))
        del self.headers["Content-Length"]
        self.headers["Content-Length"] = str(len(raw))
        try:
            super().do_POST()
        finally:
            self.rfile = keep

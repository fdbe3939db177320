"""Reply bodies and SSE event sequences for the three wire protocols the model server speaks.

Each ``*_stream`` generator takes the request body, the active script and an iterator of reply pieces
that already sleeps at the scripted pace (``pieces``); it yields ``(event_name | None, data)`` pairs.
The opening events go out at once (so the app sees a live stream but no token yet), then one delta per
piece, then the closing events. When the server closes mid-stream, ``pieces`` ends early and the
closing events still go out, so the app is never left with a half-open turn.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .model_server import Script

JSON = dict[str, Any]
Event = tuple[str | None, JSON]
_ids = itertools.count(1)


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


# -- Anthropic Messages --------------------------------------------------------------------------


def anthropic_message(body: JSON, text: str) -> JSON:
    return {
        "id": f"msg_{next(_ids):06d}", "type": "message", "role": "assistant",
        "model": body.get("model", "fake-model"), "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": _tokens(text),
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    }


def anthropic_stream(body: JSON, script: Script, pieces: Iterator[str | None]) -> Iterator[Event]:
    start = anthropic_message(body, "")
    start.update(content=[], stop_reason=None)
    start["usage"]["output_tokens"] = 1
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    opened = False
    sent = ""
    for piece in pieces:
        if piece is None:
            continue
        if not opened:
            yield "content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": {"type": "text", "text": ""}}
            opened = True
        sent += piece
        yield "content_block_delta", {"type": "content_block_delta", "index": 0,
                                      "delta": {"type": "text_delta", "text": piece}}
    if not opened:
        yield "content_block_start", {"type": "content_block_start", "index": 0,
                                      "content_block": {"type": "text", "text": ""}}
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield "message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                            "usage": {"output_tokens": _tokens(sent)}}
    yield "message_stop", {"type": "message_stop"}


# -- OpenAI Responses ----------------------------------------------------------------------------


def openai_stream(body: JSON, script: Script, pieces: Iterator[str | None]) -> Iterator[Event]:
    n = next(_ids)
    resp_id, item_id = f"resp_{n:06d}", f"msg_{n:06d}"
    seq = itertools.count()
    base = {"id": resp_id, "object": "response", "created_at": int(time.time()),
            "model": body.get("model", "fake-model"), "output": []}

    def ev(name: str, **data: Any) -> Event:
        return name, {"type": name, "sequence_number": next(seq), **data}

    yield ev("response.created", response={**base, "status": "in_progress"})
    yield ev("response.in_progress", response={**base, "status": "in_progress"})
    item = {"type": "message", "id": item_id, "status": "in_progress", "role": "assistant", "content": []}
    yield ev("response.output_item.added", output_index=0, item=item)
    yield ev("response.content_part.added", item_id=item_id, output_index=0, content_index=0,
             part={"type": "output_text", "text": "", "annotations": []})
    sent = ""
    for piece in pieces:
        if piece is None:
            continue
        sent += piece
        yield ev("response.output_text.delta", item_id=item_id, output_index=0, content_index=0, delta=piece)
    part = {"type": "output_text", "text": sent, "annotations": []}
    yield ev("response.output_text.done", item_id=item_id, output_index=0, content_index=0, text=sent)
    yield ev("response.content_part.done", item_id=item_id, output_index=0, content_index=0, part=part)
    done = {**item, "status": "completed", "content": [part]}
    yield ev("response.output_item.done", output_index=0, item=done)
    usage = {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": _tokens(sent),
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 10 + _tokens(sent)}
    yield ev("response.completed", response={**base, "status": "completed", "output": [done], "usage": usage})


# -- Gemini ----------------------------------------------------------------------------------------


def _schema_value(schema: JSON) -> Any:
    """A value fitting a (Gemini/OpenAPI) response schema: for side requests that want JSON back."""
    kind = str(schema.get("type", "object")).lower()
    if schema.get("enum"):
        return schema["enum"][0]
    if kind == "object":
        props: JSON = schema.get("properties", {})
        return {k: _schema_value(v) for k, v in props.items()}
    if kind == "array":
        return []
    if kind in ("number", "integer"):
        return 0
    if kind == "boolean":
        return False
    return "ok"


def json_reply(body: JSON) -> str | None:
    """For side requests that demand JSON (a response schema), a JSON text fitting the schema; else None.

    Codex's title request: ``text.format = {type: json_schema, schema: {title}}``; Gemini's model router:
    ``generationConfig.responseJsonSchema`` (complexity score); its next-speaker check: ``next_speaker``.
    """
    import json

    fmt = (body.get("text") or {}).get("format") or {}
    config: JSON = body.get("generationConfig") or {}
    schema = fmt.get("schema") or config.get("responseJsonSchema") or config.get("responseSchema")
    if isinstance(schema, dict):
        value = _schema_value(schema)
        if isinstance(value, dict) and "next_speaker" in value:
            value["next_speaker"] = "user"
        return json.dumps(value)
    if config.get("responseMimeType") == "application/json":
        return "{}"
    return None


def gemini_response(text: str, *, final: bool, model: str = "fake-model") -> JSON:
    cand: JSON = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    if final:
        cand["finishReason"] = "STOP"
    return {"candidates": [cand], "modelVersion": model,
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": _tokens(text),
                              "totalTokenCount": 10 + _tokens(text)}}


def gemini_stream(body: JSON, script: Script, pieces: Iterator[str | None]) -> Iterator[Event]:
    last: str | None = None
    for piece in pieces:
        if piece is None:
            continue
        if last is not None:
            yield None, gemini_response(last, final=False)
        last = piece
    yield None, gemini_response(last or "", final=True)

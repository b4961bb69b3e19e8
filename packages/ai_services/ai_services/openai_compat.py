"""OpenAI-compatible `/v1/chat/completions` and `/v1/models` for the Ollama-API server.

Real Ollama serves these too, and OpenAI-style clients (e.g. Pipecat's `OLLamaLLMService`) use
them; adding them keeps this server a drop-in for both kinds of Ollama client. Generation goes
through the same serialized, cancellable engine as `/api/chat`. Errors here are in OpenAI's shape
(the app's own are Ollama's), so the routes render them themselves.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ai_services.errors import QueueFullError, ServiceError, error_message, openai_error_body
from ai_services.llm_engine import (
    GenerationParams,
    GenerationStats,
    ToolCallFilter,
    check_messages,
    check_tools,
    tool_names,
)
from ai_services.request_body import read_json
from ai_services.served_model import Served

router = APIRouter()
Piece = tuple[str, list[dict[str, Any]], GenerationStats | None]

PARAMS = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty", "stop")


def openai_params(body: dict[str, Any]) -> GenerationParams:
    """OpenAI request fields -> sampling parameters."""
    options = {key: body.get(key) for key in PARAMS}
    options["max_tokens"] = body.get("max_completion_tokens", body.get("max_tokens"))
    return GenerationParams.from_options(options)


def openai_format(value: object) -> dict[str, Any] | None:
    """OpenAI `response_format` -> llama.cpp's (JSON mode or a JSON schema)."""
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") not in (
        "text",
        "json_object",
        "json_schema",
    ):
        raise ServiceError(400, "response_format.type must be text, json_object or json_schema")
    if value["type"] == "json_object":
        return {"type": "json_object"}
    if value["type"] == "json_schema":
        schema = (value.get("json_schema") or {}).get("schema")
        return {"type": "json_object", "schema": schema} if schema else {"type": "json_object"}
    return None


def openai_tool_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parsed tool calls in OpenAI's shape (arguments as a JSON string)."""
    return [
        {
            "index": i,
            "id": f"call_{uuid.uuid4().hex[:8]}",
            "type": "function",
            "function": {
                "name": call["function"]["name"],
                "arguments": json.dumps(call["function"]["arguments"]),
            },
        }
        for i, call in enumerate(calls)
    ]


def usage(stats: GenerationStats) -> dict[str, int]:
    return {
        "prompt_tokens": stats.prompt_eval_count,
        "completion_tokens": stats.eval_count,
        "total_tokens": stats.prompt_eval_count + stats.eval_count,
    }


def sse(obj: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode()


def refuse(exc: ServiceError) -> JSONResponse:
    return JSONResponse(openai_error_body(exc), status_code=exc.status)


class Completion:
    """One chat completion's answer in OpenAI's shapes: a JSON object or SSE chunks."""

    def __init__(self, model: str, tools: list[Any] | None) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        self.created = int(time.time())
        self.model = model
        self.filt = ToolCallFilter(tool_names(tools)) if tools else None

    def envelope(self, kind: str, choice: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_ollama",
            "choices": [{"index": 0, **choice}],
        }

    async def pieces(self, tokens: AsyncIterator[str | GenerationStats]) -> AsyncIterator[Piece]:
        """(text, tool calls, final stats or None) as the model produces them."""
        async with aclosing(tokens):
            async for item in tokens:
                if isinstance(item, GenerationStats):
                    rest, calls = self.filt.finish() if self.filt is not None else ("", [])
                    yield rest, openai_tool_calls(calls), item
                    return
                text = self.filt.feed(item) if self.filt is not None else item
                if text:
                    yield text, [], None

    async def events(
        self, tokens: AsyncIterator[str | GenerationStats], include_usage: bool
    ) -> AsyncIterator[bytes]:
        """SSE chunks, the finish chunk, usage if asked for, then `[DONE]` (even after errors)."""
        kind = "chat.completion.chunk"
        try:
            async for text, calls, stats in self.pieces(tokens):
                delta: dict[str, Any] = {"role": "assistant", "content": text}
                if calls:
                    delta["tool_calls"] = calls
                if text or calls:
                    yield sse(self.envelope(kind, {"delta": delta, "finish_reason": None}))
                if stats is not None:
                    finish = "tool_calls" if calls else stats.done_reason
                    yield sse(self.envelope(kind, {"delta": {}, "finish_reason": finish}))
                    if include_usage:
                        yield sse({**self.envelope(kind, {}), "choices": [], "usage": usage(stats)})
        except Exception as exc:  # mid-stream: report in the stream
            yield sse(openai_error_body(ServiceError(500, error_message(exc))))
        yield b"data: [DONE]\n\n"

    async def whole(self, tokens: AsyncIterator[str | GenerationStats]) -> JSONResponse:
        """The non-streaming answer, with all the text, tool calls and usage."""
        text, calls, last = "", [], None
        try:
            async for piece, piece_calls, stats in self.pieces(tokens):
                text, calls, last = text + piece, calls + piece_calls, stats or last
        except ServiceError as exc:
            return refuse(exc)
        assert last is not None
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if calls:
            message["tool_calls"] = calls
        finish = "tool_calls" if calls else last.done_reason
        result = self.envelope("chat.completion", {"message": message, "finish_reason": finish})
        return JSONResponse({**result, "usage": usage(last)})


@router.get("/v1/models")
async def models(served: Served) -> dict[str, Any]:
    await served.engine.model.get()
    created = int(served.engine.gguf.stat().st_mtime)
    entry = {"id": served.name, "object": "model", "created": created, "owned_by": "library"}
    return {"object": "list", "data": [entry]}


@router.post("/v1/chat/completions")
async def completions(request: Request, served: Served) -> Response:
    try:
        body = await read_json(request)
        name = served.resolve(body)
        messages = check_messages(body.get("messages"))
        if not messages:
            raise ServiceError(400, "messages must not be empty")
        tools = check_tools(body.get("tools"))
        tokens = await served.engine.stream_chat(
            messages, openai_params(body), tools, openai_format(body.get("response_format"))
        )
    except QueueFullError:
        return refuse(QueueFullError("server busy, please try again"))
    except ServiceError as exc:
        return refuse(exc)
    completion = Completion(name, tools)
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events = completion.events(tokens, include_usage)
        return StreamingResponse(events, media_type="text/event-stream")
    return await completion.whole(tokens)

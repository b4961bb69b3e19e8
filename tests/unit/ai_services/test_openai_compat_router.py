"""`openai_compat.router` alone: OpenAI chat completions and models over a scripted engine."""

from __future__ import annotations

import json
from typing import Any

from ai_services import openai_compat
from tests.unit.ai_services.llm_double import GGUF_MTIME, MODEL, ScriptedEngine

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
CALL_TEXT = ['{"name": "get_weather", "arguments": {"city": "Paris"}}']


def events(text: str) -> list[Any]:
    data = [line.removeprefix("data: ") for line in text.split("\n\n") if line]
    return [item if item == "[DONE]" else json.loads(item) for item in data]


async def test_models_lists_the_served_model_dated_by_its_file(client) -> None:
    async with client(openai_compat.router) as http:
        resp = await http.get("/v1/models")
    assert resp.json() == {
        "object": "list",
        "data": [{"id": MODEL, "object": "model", "created": GGUF_MTIME, "owned_by": "library"}],
    }


async def test_completion_carries_text_finish_reason_and_usage(client, engine) -> None:
    body = {"model": MODEL, "messages": QUESTION, "max_completion_tokens": 3, "seed": 7}
    async with client(openai_compat.router) as http:
        resp = await http.post("/v1/chat/completions", json=body)
    answer = resp.json()
    assert answer["object"] == "chat.completion" and answer["id"].startswith("chatcmpl-")
    assert answer["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Paris is the capital."},
            "finish_reason": "stop",
        }
    ]
    assert answer["usage"] == {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
    assert (engine.calls[0].params.max_tokens, engine.calls[0].params.seed) == (3, 7)


async def test_streamed_completion_ends_with_finish_usage_and_done(client, engine) -> None:
    body = {
        "model": MODEL,
        "messages": QUESTION,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with client(openai_compat.router) as http:
        resp = await http.post("/v1/chat/completions", json=body)
    assert resp.headers["content-type"].startswith("text/event-stream")
    *chunks, finish, usage, done = events(resp.text)
    assert [c["choices"][0]["delta"]["content"] for c in chunks] == engine.pieces
    assert finish["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 3
    assert done == "[DONE]"
    assert len({c["id"] for c in [*chunks, finish, usage]}) == 1


async def test_tool_call_comes_back_in_openai_shape(client, gguf) -> None:
    engine = ScriptedEngine(gguf, pieces=CALL_TEXT)
    body = {"model": MODEL, "messages": QUESTION, "tools": WEATHER}
    async with client(openai_compat.router, served_by=engine) as http:
        resp = await http.post("/v1/chat/completions", json=body)
    (choice,) = resp.json()["choices"]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}


async def test_refusals_use_openai_error_shape(client, engine) -> None:
    async with client(openai_compat.router) as http:
        unknown = await http.post("/v1/chat/completions", json={"model": "x", "messages": QUESTION})
        empty = await http.post("/v1/chat/completions", json={"model": MODEL, "messages": []})
        engine.busy = True
        busy = await http.post("/v1/chat/completions", json={"model": MODEL, "messages": QUESTION})
    assert unknown.status_code == 404
    assert unknown.json() == {
        "error": {"message": "model 'x' not found", "type": "invalid_request_error", "code": 404}
    }
    assert empty.json()["error"]["message"] == "messages must not be empty"
    assert busy.status_code == 503
    assert busy.json()["error"] == {
        "message": "server busy, please try again",
        "type": "server_busy",
        "code": 503,
    }


async def test_a_stream_failing_midway_reports_the_error_then_done(client, engine) -> None:
    engine.fail_after = 1
    body = {"model": MODEL, "messages": QUESTION, "stream": True}
    async with client(openai_compat.router) as http:
        resp = await http.post("/v1/chat/completions", json=body)
    *_, error, done = events(resp.text)
    assert error["error"]["code"] == 500 and "RuntimeError" in error["error"]["message"]
    assert done == "[DONE]"

"""`ollama_generation.router` alone: `/api/chat` and `/api/generate` over a scripted engine."""

from __future__ import annotations

import json
from typing import Any

from ai_services import ollama_generation
from ai_services.ollama_generation import BUSY
from tests.unit.ai_services.llm_double import MODEL, ScriptedEngine

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
CALL_TEXT = ['<tool_call>{"name": "get_weather", ', '"arguments": {"city": "Paris"}}</tool_call>']


def ndjson(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


async def test_chat_streams_a_line_per_piece_then_the_stats(client, engine) -> None:
    async with client(ollama_generation.router) as http:
        resp = await http.post("/api/chat", json={"model": MODEL, "messages": QUESTION})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/x-ndjson"
    *pieces, last = ndjson(resp.text)
    assert [p["message"] for p in pieces] == [
        {"role": "assistant", "content": text} for text in engine.pieces
    ]
    assert all(list(p) == ["model", "created_at", "message", "done"] for p in pieces)
    assert last["done"] is True and last["done_reason"] == "stop"
    assert last["message"] == {"role": "assistant", "content": ""}
    assert (last["eval_count"], last["prompt_eval_count"], last["total_duration"]) == (3, 11, 5000)
    assert last["load_duration"] >= 0
    assert engine.calls[0].messages == QUESTION


async def test_chat_without_streaming_answers_one_object_with_all_the_text(client, engine) -> None:
    body = {"model": MODEL, "messages": QUESTION, "stream": False, "format": "json"}
    async with client(ollama_generation.router) as http:
        resp = await http.post("/api/chat", json=body)
    answer = resp.json()
    assert answer["message"]["content"] == "Paris is the capital."
    assert answer["done"] is True and answer["eval_count"] == 3
    assert engine.calls[0].response_format == {"type": "json_object"}


async def test_chat_returns_the_model_s_tool_call_parsed(client, gguf) -> None:
    engine = ScriptedEngine(gguf, pieces=CALL_TEXT)
    body = {"model": MODEL, "messages": QUESTION, "tools": WEATHER, "stream": False}
    async with client(ollama_generation.router, served_by=engine) as http:
        resp = await http.post("/api/chat", json=body)
    message = resp.json()["message"]
    assert message["content"] == ""
    assert message["tool_calls"] == [
        {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    ]
    assert engine.calls[0].tools == WEATHER


async def test_chat_refusals_say_why(client, engine) -> None:
    async with client(ollama_generation.router) as http:
        unknown = await http.post("/api/chat", json={"model": "llama3", "messages": QUESTION})
        bad_format = await http.post(
            "/api/chat", json={"model": MODEL, "messages": QUESTION, "format": "yaml"}
        )
        engine.busy = True
        busy = await http.post("/api/chat", json={"model": MODEL, "messages": QUESTION})
    assert (unknown.status_code, unknown.json()) == (404, {"error": "model 'llama3' not found"})
    assert bad_format.status_code == 400 and "format must be" in bad_format.json()["error"]
    assert (busy.status_code, busy.json()) == (503, {"error": BUSY})
    assert engine.calls == []


async def test_a_generation_failing_mid_stream_ends_with_an_error_line(client, engine) -> None:
    engine.fail_after = 1
    async with client(ollama_generation.router) as http:
        resp = await http.post("/api/chat", json={"model": MODEL, "messages": QUESTION})
    lines = ndjson(resp.text)
    assert lines[0]["message"]["content"] == "Paris"
    assert lines[-1] == {"error": "llama_decode returned -1"}


async def test_empty_chat_or_prompt_only_loads_the_model(client, engine) -> None:
    async with client(ollama_generation.router) as http:
        chat = await http.post("/api/chat", json={"model": MODEL, "messages": []})
        generate = await http.post("/api/generate", json={"model": MODEL})
    for resp in (chat, generate):
        assert resp.json()["done_reason"] == "load" and resp.json()["done"] is True
    assert engine.calls == []


async def test_generate_chats_with_system_and_prompt_unless_raw(client, engine) -> None:
    body = {"model": MODEL, "prompt": "Hi", "system": "Be brief.", "stream": False}
    async with client(ollama_generation.router) as http:
        templated = await http.post("/api/generate", json=body)
        raw = await http.post("/api/generate", json={**body, "raw": True})
    assert templated.json()["response"] == raw.json()["response"] == "Paris is the capital."
    assert engine.calls[0].messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert (engine.calls[1].messages, engine.calls[1].prompt) == (None, "Hi")

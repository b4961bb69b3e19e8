"""The Ollama-API server, driven by the real `ollama.AsyncClient` (what the connector uses)."""

from __future__ import annotations

import asyncio
import json

import httpx
import ollama
import pytest

from ai_services.llm_engine import ToolCallFilter
from ai_services.served_model import normalize_name

SMOL = "smollm2:135m"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


async def test_chat_streams_ollama_lines_with_real_client(smollm_ollama):
    client = ollama.AsyncClient(host=smollm_ollama.http)
    parts = [
        part
        async for part in await client.chat(
            model=SMOL,
            messages=QUESTION,
            stream=True,
            options={"temperature": 0, "num_predict": 24, "seed": 7},
        )
    ]
    assert len(parts) >= 2
    assert all(p.done is False and p.message.role == "assistant" for p in parts[:-1])
    text = "".join(p.message.content for p in parts[:-1])
    assert text.strip()
    last = parts[-1]
    assert last.done is True and last.done_reason in ("stop", "length")
    assert last.message.content == ""
    assert 0 < last.eval_count <= 24
    assert last.prompt_eval_count > 0
    assert last.total_duration >= last.eval_duration > 0
    assert last.prompt_eval_duration > 0 and last.load_duration >= 0


async def test_chat_line_shapes_on_the_wire(smollm_ollama):
    body = {"model": SMOL, "messages": QUESTION, "options": {"num_predict": 5}}
    async with httpx.AsyncClient(base_url=smollm_ollama.http) as http:
        resp = await http.post("/api/chat", json=body)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in resp.text.splitlines()]
    assert list(lines[0]) == ["model", "created_at", "message", "done"]
    assert lines[0]["message"]["role"] == "assistant" and lines[0]["done"] is False
    assert list(lines[-1]) == [
        "model",
        "created_at",
        "message",
        "done_reason",
        "done",
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    ]
    assert lines[-1]["done_reason"] == "length" and lines[-1]["eval_count"] == 5


async def test_chat_without_stream_returns_one_object(smollm_ollama):
    client = ollama.AsyncClient(host=smollm_ollama.http)
    resp = await client.chat(
        model=SMOL, messages=QUESTION, stream=False, options={"num_predict": 12, "seed": 1}
    )
    assert resp.done is True and resp.message.content.strip()
    assert resp.eval_count == 12 and resp.done_reason == "length"


async def test_seeded_greedy_generation_is_repeatable(smollm_ollama):
    client = ollama.AsyncClient(host=smollm_ollama.http)
    options = {"temperature": 0, "num_predict": 16, "seed": 42}
    first = await client.chat(model=SMOL, messages=QUESTION, options=options)
    second = await client.chat(model=SMOL, messages=QUESTION, options=options)
    assert first.message.content == second.message.content


async def test_stop_option_ends_generation(smollm_ollama):
    client = ollama.AsyncClient(host=smollm_ollama.http)
    prompt = [{"role": "user", "content": "Count from 1 to 20, separated by commas."}]
    resp = await client.chat(
        model=SMOL, messages=prompt, options={"temperature": 0, "num_predict": 60, "stop": ["5"]}
    )
    assert "5" not in resp.message.content
    assert resp.done_reason == "stop"


async def test_generate_streams_response_lines(smollm_ollama):
    client = ollama.AsyncClient(host=smollm_ollama.http)
    parts = [
        p
        async for p in await client.generate(
            model=SMOL, prompt="Say hello.", stream=True, options={"num_predict": 8}
        )
    ]
    assert "".join(p.response for p in parts).strip()
    assert parts[-1].done is True and parts[-1].eval_count == 8


async def test_empty_messages_only_load_the_model(smollm_ollama):
    client = ollama.AsyncClient(host=smollm_ollama.http)
    resp = await client.chat(model=SMOL, messages=[])
    assert resp.done is True and resp.done_reason == "load"


async def test_model_management_endpoints(smollm_ollama):
    client = ollama.AsyncClient(host=smollm_ollama.http)
    listed = (await client.list()).models
    assert [m.model for m in listed] == [SMOL]
    assert listed[0].size > 50_000_000 and listed[0].digest
    assert listed[0].details.format == "gguf" and listed[0].details.quantization_level == "Q4_1"
    shown = await client.show(SMOL)
    assert shown.details.family == "llama" and shown.modelinfo["general.architecture"] == "llama"
    assert "completion" in shown.capabilities and shown.template
    running = (await client.ps()).models
    assert running[0].model == SMOL and running[0].context_length == 2048
    progress = [p async for p in await client.pull(SMOL, stream=True)]
    assert progress[0].status == "pulling manifest" and progress[-1].status == "success"
    assert any(p.total and p.completed == p.total for p in progress)
    assert (await client.pull(SMOL)).status == "success"
    async with httpx.AsyncClient(base_url=smollm_ollama.http) as http:
        assert (await http.get("/")).text == "Ollama is running"
        assert (await http.get("/api/version")).json()["version"]
        # Ollama resolves registry prefixes and tags the same way.
        ok = await http.post("/api/show", json={"model": f"registry.ollama.ai/library/{SMOL}"})
        assert ok.status_code == 200


async def test_unknown_model_errors_like_ollama(smollm_ollama):
    client = ollama.AsyncClient(host=smollm_ollama.http)
    with pytest.raises(ollama.ResponseError) as chat_err:
        await client.chat(model="llama3:8b", messages=QUESTION)
    assert chat_err.value.status_code == 404
    assert chat_err.value.error == "model 'llama3:8b' not found"
    with pytest.raises(ollama.ResponseError) as show_err:
        await client.show("llama3:8b")
    assert show_err.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as pull_err:
        async for _ in await client.pull("llama3:8b", stream=True):
            pass
    assert pull_err.value.error == "pull model manifest: file does not exist"
    with pytest.raises(ollama.ResponseError) as pull_once:
        await client.pull("llama3:8b")
    assert pull_once.value.error == "pull model manifest: file does not exist"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "invalid JSON"),
        (b"", 400, "missing request body"),
        (b"[1, 2]", 400, "JSON object"),
        (json.dumps({"messages": QUESTION}).encode(), 400, "model is required"),
        (json.dumps({"model": SMOL, "messages": "hi"}).encode(), 400, "messages must be a list"),
        (
            json.dumps({"model": SMOL, "messages": [{"role": "wizard", "content": "x"}]}).encode(),
            400,
            "role",
        ),
        (
            json.dumps(
                {"model": SMOL, "messages": QUESTION, "options": {"temperature": "hot"}}
            ).encode(),
            400,
            "temperature",
        ),
    ],
)
async def test_bad_requests_get_json_errors_and_server_keeps_serving(
    smollm_ollama, body, status, fragment
):
    async with httpx.AsyncClient(base_url=smollm_ollama.http) as http:
        resp = await http.post("/api/chat", content=body)
        assert resp.status_code == status
        assert fragment in resp.json()["error"]
    client = ollama.AsyncClient(host=smollm_ollama.http)
    ok = await client.chat(model=SMOL, messages=QUESTION, options={"num_predict": 3})
    assert ok.done and ok.eval_count == 3


async def test_requests_are_serialized_and_all_answered(smollm_ollama):
    client = ollama.AsyncClient(host=smollm_ollama.http)
    answers = await asyncio.gather(
        *[client.chat(model=SMOL, messages=QUESTION, options={"num_predict": 6}) for _ in range(3)]
    )
    assert all(a.done and a.eval_count == 6 for a in answers)


async def test_full_queue_answers_busy(smollm_ollama):
    """The fixture allows 1 running + 2 waiting; the rest are refused with Ollama's 503."""
    client = ollama.AsyncClient(host=smollm_ollama.http)
    results = await asyncio.gather(
        *[
            client.chat(model=SMOL, messages=QUESTION, options={"num_predict": 40})
            for _ in range(6)
        ],
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, ollama.ResponseError)]
    answered = [r for r in results if not isinstance(r, BaseException)]
    assert refused and all(r.status_code == 503 and "server busy" in r.error for r in refused)
    assert len(answered) >= 3
    ok = await client.chat(model=SMOL, messages=QUESTION, options={"num_predict": 2})
    assert ok.done


async def _metric(http: httpx.AsyncClient, line_start: str) -> float:
    text = (await http.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.slow
async def test_client_disconnect_stops_generation(smollm_ollama):
    cancelled = (
        'ai_service_requests_total{endpoint="generation",service="ollama",status="cancelled"}'
    )
    tokens = 'ai_service_generated_tokens_total{service="ollama"}'
    body = {
        "model": SMOL,
        "options": {"num_predict": 1500, "temperature": 1.0},
        "messages": [{"role": "user", "content": "Write a very long story about a dragon."}],
    }
    async with httpx.AsyncClient(base_url=smollm_ollama.http, timeout=60) as http:
        before = await _metric(http, cancelled)
        tokens_before = await _metric(http, tokens)
        async with http.stream("POST", "/api/chat", json=body) as resp:
            seen = 0
            async for _line in resp.aiter_lines():
                seen += 1
                if seen == 3:
                    break
        # The server notices the closed socket and stops at the next token.
        for _ in range(600):
            if await _metric(http, cancelled) > before:
                break
            await asyncio.sleep(0.05)
        assert await _metric(http, cancelled) == before + 1
        assert await _metric(http, tokens) - tokens_before < 1500
    client = ollama.AsyncClient(host=smollm_ollama.http)
    ok = await client.chat(model=SMOL, messages=QUESTION, options={"num_predict": 2})
    assert ok.done and ok.eval_count == 2


async def test_call_id_is_echoed(smollm_ollama):
    async with httpx.AsyncClient(base_url=smollm_ollama.http) as http:
        resp = await http.get("/api/tags", headers={"X-Call-Id": "call-123"})
    assert resp.headers["x-call-id"] == "call-123"


def test_tool_call_filter_parses_calls_out_of_the_stream():
    filt = ToolCallFilter({"hangup"})
    out = "".join(
        filt.feed(p)
        for p in [
            "Sure. <to",
            'ol_call>\n{"name": "hang',
            'up", ',
            '"arguments": {"reason": "bye"}}\n</tool_call>',
        ]
    )
    rest, calls = filt.finish()
    assert out == "Sure. " and rest == ""
    assert calls == [{"function": {"name": "hangup", "arguments": {"reason": "bye"}}}]
    bare = ToolCallFilter({"hangup"})
    out = "".join(bare.feed(p) for p in [' {"name": "hangup",', ' "arguments": {}}'])
    assert out == "" and bare.finish() == ("", [{"function": {"name": "hangup", "arguments": {}}}])
    plain = ToolCallFilter({"hangup"})
    assert plain.feed("a < b") + plain.finish()[0] == "a < b"
    unknown = ToolCallFilter({"hangup"})
    text = '{"name": "other", "arguments": {}}'
    assert unknown.feed(text) == "" and unknown.finish() == (text, [])


def test_model_names_match_like_ollama():
    full = "registry.ollama.ai/library/qwen2.5-coder:0.5b"
    assert normalize_name("Qwen2.5-Coder:0.5b") == normalize_name(full)
    assert normalize_name("qwen2.5") == "qwen2.5:latest"


@pytest.mark.slow
async def test_qwen_answers_through_the_real_client(qwen_ollama):
    client = ollama.AsyncClient(host=qwen_ollama.http)
    messages = [
        {"role": "system", "content": "You are a phone assistant. Answer in one short sentence."},
        *QUESTION,
    ]
    parts = [
        p
        async for p in await client.chat(
            model="qwen2.5-coder:0.5b",
            messages=messages,
            stream=True,
            options={"temperature": 0, "num_predict": 40},
        )
    ]
    text = "".join(p.message.content for p in parts)
    assert "paris" in text.lower()
    last = parts[-1]
    assert last.done and last.eval_count > 0 and last.prompt_eval_count > 10
    listed = (await client.list()).models
    assert listed[0].model == "qwen2.5-coder:0.5b"
    assert listed[0].details.family == "qwen2" and listed[0].details.quantization_level == "Q4_K_M"


@pytest.mark.slow
async def test_qwen_tools_come_back_as_tool_calls(qwen_ollama):
    client = ollama.AsyncClient(host=qwen_ollama.http)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "transfer_call",
                "description": "Transfer the caller to a department.",
                "parameters": {
                    "type": "object",
                    "properties": {"department": {"type": "string", "description": "department"}},
                    "required": ["department"],
                },
            },
        }
    ]
    resp = await client.chat(
        model="qwen2.5-coder:0.5b",
        tools=tools,
        options={"temperature": 0, "num_predict": 80},
        messages=[{"role": "user", "content": "Transfer me to the billing department."}],
    )
    assert "<tool_call>" not in (resp.message.content or "")
    assert resp.message.tool_calls, resp.message.content
    call = resp.message.tool_calls[0].function
    assert call.name == "transfer_call"
    assert "billing" in json.dumps(call.arguments).lower()


async def test_prompt_longer_than_the_context_is_an_error_not_a_crash(smollm_ollama):
    client = ollama.AsyncClient(host=smollm_ollama.http)
    huge = [{"role": "user", "content": "word " * 3000}]  # n_ctx is 2048 in the fixture
    with pytest.raises(ollama.ResponseError) as streamed:
        async for _ in await client.chat(model=SMOL, messages=huge, stream=True):
            pass
    assert "context" in streamed.value.error
    with pytest.raises(ollama.ResponseError) as whole:
        await client.chat(model=SMOL, messages=huge)
    assert whole.value.status_code == 400 and "context" in whole.value.error
    ok = await client.chat(model=SMOL, messages=QUESTION, options={"num_predict": 2})
    assert ok.done

"""The Ollama-API server's OpenAI-compatible routes, driven by the real `openai` client."""

from __future__ import annotations

import openai
import pytest

SMOL = "smollm2:135m"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def client(server) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server.http}/v1", api_key="ollama", max_retries=0)


async def test_streaming_chat_completion(smollm_ollama):
    stream = await client(smollm_ollama).chat.completions.create(
        model=SMOL,
        messages=QUESTION,
        stream=True,
        max_tokens=10,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length" and all(f is None for f in finishes[:-1])
    assert chunks[-1].usage.completion_tokens == 10 and chunks[-1].usage.prompt_tokens > 0


async def test_chat_completion_and_models(smollm_ollama):
    api = client(smollm_ollama)
    resp = await api.chat.completions.create(model=SMOL, messages=QUESTION, max_tokens=8, seed=3)
    assert resp.object == "chat.completion" and resp.choices[0].message.content.strip()
    assert resp.choices[0].finish_reason == "length" and resp.usage.completion_tokens == 8
    models = await api.models.list()
    assert [m.id for m in models.data] == [SMOL]


async def test_errors_in_openai_shape(smollm_ollama):
    api = client(smollm_ollama)
    with pytest.raises(openai.NotFoundError) as missing:
        await api.chat.completions.create(model="gpt-4o", messages=QUESTION)
    assert "not found" in missing.value.message
    with pytest.raises(openai.BadRequestError) as empty:
        await api.chat.completions.create(model=SMOL, messages=[])
    assert "empty" in empty.value.message
    ok = await api.chat.completions.create(model=SMOL, messages=QUESTION, max_tokens=2)
    assert ok.usage.completion_tokens == 2


@pytest.mark.slow
async def test_qwen_tool_call_in_openai_shape(qwen_ollama):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "transfer_call",
                "description": "Transfer the caller to a department.",
                "parameters": {
                    "type": "object",
                    "properties": {"department": {"type": "string"}},
                    "required": ["department"],
                },
            },
        }
    ]
    resp = await client(qwen_ollama).chat.completions.create(
        model="qwen2.5-coder:0.5b",
        tools=tools,
        temperature=0,
        max_tokens=80,
        messages=[{"role": "user", "content": "Transfer me to the billing department."}],
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "transfer_call" and "billing" in call.function.arguments.lower()

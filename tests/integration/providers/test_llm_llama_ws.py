"""Llama WS LLM client against the real legacy server (SmolLM2 GGUF through llama.cpp)."""

from __future__ import annotations

from typing import Any

import pytest
from pipecat.frames.frames import (
    EndWorkerFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSSpeakFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext

from tests.integration.providers.harness import Harness
from voice_connector.services.llm.llama_ws import LlamaWSLLMService
from voice_connector.services.outage import APOLOGY
from voice_connector.services.ws_client import Backoff

pytestmark = pytest.mark.slow
FAST_GIVE_UP = Backoff(attempts=2, first_delay=0.05)


def ask(*turns: str) -> LLMContextFrame:
    messages: list[Any] = []
    for i, text in enumerate(turns):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    return LLMContextFrame(context=LLMContext(messages=messages))


def answers(h: Harness) -> list[str]:
    """The text of each finished answer, in order."""
    out, current = [], ""
    for frame in h.down:
        if isinstance(frame, LLMTextFrame):
            current += frame.text
        elif isinstance(frame, LLMFullResponseEndFrame):
            out.append(current)
            current = ""
    return out


def service(url: str, **kwargs: Any) -> LlamaWSLLMService:
    # temperature 0: the same conversation always gets the same answer, so answers can be compared.
    return LlamaWSLLMService(url=url, temperature=0.0, max_tokens=24, call_id="call-l1", **kwargs)


async def wait_answers(h: Harness, n: int) -> list[str]:
    await h.wait_for(lambda _: len(h.of(LLMFullResponseEndFrame)) >= n)
    return answers(h)


async def test_streams_answers_over_one_connection(llama_ws_server: Any) -> None:
    llm = service(llama_ws_server.ws, system_prompt="You are a helpful assistant.")
    async with Harness(llm) as h:
        await h.push(ask("What is the capital of France?"))
        first = (await wait_answers(h, 1))[0]
        await h.push(ask("What is the capital of France?", first, "And of Italy?"))
        replies = await wait_answers(h, 2)
    assert all(text.strip() for text in replies)
    assert len(h.of(LLMTextFrame)) > 2, "tokens should stream as several chunks"
    assert llm.channel.socket.connects == 1
    assert not h.errors


async def test_error_reply_is_reported_and_the_call_goes_on(llama_ws_server: Any) -> None:
    llm = service(llama_ws_server.ws)
    async with Harness(llm) as h:
        await h.push(ask(""))  # no system prompt, empty user turn: the server answers {"error"}
        await wait_answers(h, 1)
        await h.push(ask("Say hello."))
        replies = await wait_answers(h, 2)
    assert replies[0] == ""
    assert replies[1].strip()
    assert any("Llama service error" in e.error for e in h.errors)
    assert not h.finished or not h.of(EndWorkerFrame)


async def test_stale_tokens_after_barge_in_are_discarded(llama_ws_server: Any) -> None:
    question = "Name three colors."
    async with Harness(service(llama_ws_server.ws)) as alone:
        await alone.push(ask(question))
        expected = (await wait_answers(alone, 1))[0]

    llm = LlamaWSLLMService(url=llama_ws_server.ws, temperature=0.0, max_tokens=24)
    async with Harness(llm) as h:
        await h.push(ask("Write a long story about a dragon who loves the sea."))
        await h.wait_for(lambda f: isinstance(f, LLMTextFrame))
        await h.push(InterruptionFrame())  # barge-in: the server goes on generating until done
        await h.push(ask(question))
        await h.wait_for(lambda _: len(h.of(LLMFullResponseStartFrame)) >= 2)
        second_start = h.down.index(h.of(LLMFullResponseStartFrame)[1])
        await h.wait_for(
            lambda f: isinstance(f, LLMFullResponseEndFrame) and h.down.index(f) > second_start
        )
    end = next(
        i
        for i, f in enumerate(h.down)
        if i > second_start and isinstance(f, LLMFullResponseEndFrame)
    )
    second = "".join(f.text for f in h.down[second_start:end] if isinstance(f, LLMTextFrame))
    assert llm.channel.discarded > 0, "the interrupted answer's tail was drained"
    assert second == expected


async def test_server_down_at_start_apologizes_and_ends() -> None:
    llm = service("ws://127.0.0.1:9", backoff=FAST_GIVE_UP)
    async with Harness(llm) as h:
        await h.wait_finished()
    assert [f.text for f in h.of(TTSSpeakFrame)] == [APOLOGY]
    assert h.of(EndWorkerFrame)


async def test_connection_dropped_mid_answer_then_reconnects(
    llama_ws_server: Any, gate: Any
) -> None:
    await gate.open(llama_ws_server.port)
    llm = LlamaWSLLMService(url=gate.ws, temperature=0.0, max_tokens=200)
    async with Harness(llm) as h:
        await h.push(ask("Write a long story about a dragon who loves the sea."))
        await h.wait_for(lambda f: isinstance(f, LLMTextFrame))
        gate.drop()
        await wait_answers(h, 1)
        await h.push(ask("Say hello."))
        replies = await wait_answers(h, 2)
    assert any("connection lost" in e.error for e in h.errors)
    assert replies[1].strip()
    assert llm.channel.socket.connects == 2


async def test_server_down_mid_call_apologizes_and_ends(llama_ws_server: Any, gate: Any) -> None:
    await gate.open(llama_ws_server.port)
    llm = service(gate.ws, backoff=FAST_GIVE_UP)
    async with Harness(llm) as h:
        await h.push(ask("Say hello."))
        await wait_answers(h, 1)
        await gate.shut()
        await h.push(ask("Say hello."))
        await h.wait_finished()
    assert [f.text for f in h.of(TTSSpeakFrame)] == [APOLOGY]

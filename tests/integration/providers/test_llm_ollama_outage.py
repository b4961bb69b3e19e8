"""An Ollama that is down or dies mid-call: the caller hears the apology and the call ends.

Real Ollama-API server (the bundled one, SmolLM2) behind a TCP gate that plays the outage.
"""

from __future__ import annotations

from typing import Any

import pytest
from pipecat.frames.frames import (
    EndWorkerFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMTextFrame,
    TTSSpeakFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext

from tests.integration.providers.harness import Harness
from voice_connector.services.llm.ollama import OllamaLLMService
from voice_connector.services.outage import APOLOGY

pytestmark = pytest.mark.slow


def ask(text: str) -> LLMContextFrame:
    return LLMContextFrame(context=LLMContext(messages=[{"role": "user", "content": text}]))


def service(host: str) -> OllamaLLMService:
    return OllamaLLMService(
        host=host, model="smollm2:135m", temperature=0.0, max_tokens=16, retry_delay=0.05
    )


async def test_answers_through_the_gate(smollm_ollama: Any, gate: Any) -> None:
    """The control: with the server up, the same service answers and the call goes on."""
    await gate.open(smollm_ollama.port)
    async with Harness(service(gate.http)) as h:
        await h.push(ask("Say hello."))
        await h.wait_for(lambda _: bool(h.of(LLMFullResponseEndFrame)))
    assert "".join(f.text for f in h.of(LLMTextFrame)).strip()
    assert not h.of(TTSSpeakFrame) and not h.of(EndWorkerFrame)


async def test_server_down_at_the_first_turn_apologizes_and_ends() -> None:
    async with Harness(service("http://127.0.0.1:9")) as h:
        await h.push(ask("Say hello."))
        await h.wait_finished()
    assert [f.text for f in h.of(TTSSpeakFrame)] == [APOLOGY]
    assert h.of(EndWorkerFrame)
    assert any("unavailable" in e.error for e in h.errors)


async def test_server_gone_mid_call_apologizes_and_ends(smollm_ollama: Any, gate: Any) -> None:
    await gate.open(smollm_ollama.port)
    async with Harness(service(gate.http)) as h:
        await h.push(ask("Say hello."))
        await h.wait_for(lambda _: bool(h.of(LLMFullResponseEndFrame)))
        await gate.shut()
        await h.push(ask("Say hello again."))
        await h.wait_finished()
    assert [f.text for f in h.of(TTSSpeakFrame)] == [APOLOGY]
    assert h.of(EndWorkerFrame)


async def test_connection_cut_mid_answer_apologizes_once(smollm_ollama: Any, gate: Any) -> None:
    await gate.open(smollm_ollama.port)
    llm = OllamaLLMService(
        host=gate.http, model="smollm2:135m", temperature=0.0, max_tokens=300, retry_delay=0.05
    )
    async with Harness(llm) as h:
        await h.push(ask("Write a long story about a dragon who loves the sea."))
        await h.wait_for(lambda f: isinstance(f, LLMTextFrame))
        await gate.shut()
        await h.wait_finished()
    assert [f.text for f in h.of(TTSSpeakFrame)] == [APOLOGY]

"""Warm the LLM's prompt cache before the first call, so the first turn is not the slow one.

A call's first LLM request carries the whole system prompt and the call-control tool schemas
(hundreds of tokens). llama.cpp, in Ollama and in the bundled server alike, keeps the evaluated
tokens and reuses the longest common prefix of the next request; so once any request with that
prefix has run, later first turns only evaluate what follows it. Without a warm-up the first call
after a start pays for all of it (measured: first-token p95 ≈ 2 s against ≈ 0.3 s later).

At start-up the node sends each distinct first-turn prefix (per flavor: system prompt, tools, the
greeting as the assistant's first turn) exactly as a call would (`OllamaLLMService.chat_request`
on the same kind of context), asking for one token. The default flavor's goes last: the bundled
server (llama-cpp-python) keeps only the last prompt evaluated, so the prefix most calls start
with must be the one left in it (warmed first, the shipped config's `support` flavor replaced it
and the next call's first turn re-evaluated 348 of its 354 tokens).
"""

from __future__ import annotations

import time

import ollama
from loguru import logger
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.processors.aggregators.llm_context import LLMContext

from voice_connector.pipeline.call_control import TOOL_OPTIONS, prompt_settings, tool_schemas
from voice_connector.services.factory import create_llm
from voice_connector.services.llm.ollama import OllamaLLMService
from voice_connector_core.config import Settings

WARM_UP_TIMEOUT_SECS = 120.0


def first_turn_context(settings: Settings) -> LLMContext:
    """What a call's context holds before the caller's first words: the greeting, the tools."""
    greeting = settings.llm.greeting.strip()
    context = LLMContext(messages=[{"role": "assistant", "content": greeting}] if greeting else [])
    if settings.llm.tools:
        context.set_tools(ToolsSchema(standard_tools=tool_schemas(settings)))
    return context


async def first_turn_request(settings: Settings) -> dict | None:
    """The `/api/chat` request prefix of a call with `settings` (None: not an Ollama LLM)."""
    settings = prompt_settings(settings)
    llm = create_llm(settings)
    if not isinstance(llm, OllamaLLMService):
        return None
    if settings.llm.tools:  # registered tools shape the system prompt Pipecat composes
        for schema in tool_schemas(settings):
            llm.register_function(schema.name, _never_called, **TOOL_OPTIONS)
    context = first_turn_context(settings)
    # What Pipecat 1.14's LLMService does on every context frame before a request: settle the
    # tool registry and compose the system instruction from it (test_llm_warm_up holds this).
    llm._sync_registered_tool_handlers(context.tools)
    return await llm.chat_request(context)


async def _never_called(params: object) -> None:
    """The warm-up asks for one token: no tool call ever runs."""


async def warm_up(settings: Settings) -> str:
    """Evaluate each flavor's first-turn prefix once; a one-line summary for the log/readiness."""
    requests: dict[str, tuple[str, Settings, dict]] = {}
    for name in [*settings.flavors, ""]:  # the default last: see the module's docstring
        variant = settings.for_flavor(name) if name else settings
        request = await first_turn_request(variant)
        if request is None:
            continue
        key = repr((variant.llm.url, request["model"], request["messages"], request.get("tools")))
        requests.pop(key, None)  # a prefix shared with a later flavor is warmed in its place
        requests[key] = (name, variant, request)
    done: list[str] = []
    for name, variant, request in requests.values():
        request.update(stream=False, options={**request["options"], "num_predict": 1})
        client = ollama.AsyncClient(host=variant.llm.url, timeout=WARM_UP_TIMEOUT_SECS)
        started = time.perf_counter()
        try:
            reply = await client.chat(**request)
        except Exception as exc:  # a warm-up is an optimisation: never a reason not to serve
            logger.warning(f"LLM warm-up for flavor {name or 'default'!r} failed: {exc!r}")
            continue
        ms = (time.perf_counter() - started) * 1000
        tokens = reply.prompt_eval_count or 0
        done.append(f"{name or 'default'}: {tokens} tokens in {ms:.0f} ms")
    summary = "; ".join(done) or "nothing to warm"
    logger.info(f"LLM prompt cache warmed ({summary})")
    return summary

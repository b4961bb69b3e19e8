"""Ollama through its native API (`/api/chat` NDJSON streaming) with the `ollama` package.

Pipecat's own Ollama service speaks Ollama's OpenAI-compatible `/v1` layer, which has no model
management and drops `keep_alive`; the native API gives both. Barge-in cancels the running
generation: Pipecat cancels the processing task, which closes the HTTP stream, and Ollama stops
generating when its client goes away.

An Ollama that cannot be reached (down, restarting, dying mid-answer) is retried once, then the
caller hears the spoken apology and the call ends (services/outage.py), as with the WebSocket
providers: never silence after the greeting.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import ollama
from loguru import logger
from pipecat.frames.frames import (
    Frame,
    FunctionCallFromLLM,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.llm_service import LLMService

from voice_connector.services.llm.settings import llm_settings
from voice_connector.services.outage import CallEnder

RETRY_DELAY_SECS = 0.5
UNREACHABLE = (ConnectionError, OSError, httpx.TransportError)
"""What a dead or dying server raises: refused, reset, cut mid-stream, timed out."""


class OllamaLLMService(LLMService):
    """Streams answers from Ollama's `/api/chat`, with tool calls when the model offers them."""

    def __init__(
        self,
        *,
        host: str,
        model: str,
        system_prompt: str = "",
        temperature: float = 0.2,
        max_tokens: int = 80,
        keep_alive: str = "30m",
        headers: dict[str, str] | None = None,
        retry_delay: float = RETRY_DELAY_SECS,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            settings=llm_settings(
                model=model,
                system_prompt=system_prompt,
                temperature=temperature,
                max_tokens=max_tokens,
            ),
            **kwargs,
        )
        self._client = ollama.AsyncClient(host=host, headers=headers or {})
        self._model = model
        self._keep_alive = keep_alive
        self._options = {"temperature": temperature, "num_predict": max_tokens}
        self._host = host
        self._retry_delay = retry_delay
        self._ender = CallEnder(self, can_apologize=True)
        self._streamed = False

    def can_generate_metrics(self) -> bool:
        return True

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, LLMContextFrame):
            await self.push_frame(frame, direction)
            return
        await self.push_frame(LLMFullResponseStartFrame())
        await self.start_processing_metrics()
        try:
            await self._generate_or_end_call(frame.context)
        finally:
            await self.stop_processing_metrics()
            await self.push_frame(LLMFullResponseEndFrame())

    async def _generate_or_end_call(self, context: LLMContext) -> None:
        """Answer; retry once if the server is unreachable before any text; else apologize."""
        failure: Exception | None = None
        for attempt in range(2):
            self._streamed = False
            try:
                await self._generate(context)
                return
            except ollama.ResponseError as exc:
                if exc.status_code < 500:  # this request's problem: report it, the call goes on
                    await self.push_error(error_msg=f"Ollama refused: {exc}", exception=exc)
                    return
                failure = exc
            except ollama.RequestError as exc:
                await self.push_error(error_msg=f"Ollama request invalid: {exc}", exception=exc)
                return
            except UNREACHABLE as exc:
                failure = exc
            if self._streamed or attempt == 1:
                break  # never repeat half an answer
            await asyncio.sleep(self._retry_delay)
        reason = f"Ollama at {self._host} unavailable: {failure!r}"
        await self._ender.end_call(reason, failure)

    async def chat_request(self, context: LLMContext) -> dict[str, Any]:
        """The `/api/chat` request for `context`, as this service sends it (warm-up reuses it)."""
        params = await self.get_llm_adapter().get_llm_invocation_params(
            context,
            system_instruction=self._settings.system_instruction or None,
            convert_developer_to_user=True,
        )
        request: dict[str, Any] = {
            "model": self._model,
            "messages": _to_ollama_messages(params["messages"]),
            "stream": True,
            "options": self._options,
            "keep_alive": self._keep_alive,
        }
        tools = params.get("tools")
        if isinstance(tools, list) and tools:
            request["tools"] = tools
        return request

    async def _generate(self, context: LLMContext) -> None:
        request = await self.chat_request(context)
        await self.start_ttfb_metrics()
        calls: list[FunctionCallFromLLM] = []
        stream = await self._client.chat(**request)
        async for chunk in stream:
            message = chunk.message
            if message.content:
                self._streamed = True
                await self.stop_ttfb_metrics()
                await self._push_llm_text(message.content)
            for call in message.tool_calls or []:
                calls.append(
                    FunctionCallFromLLM(
                        function_name=call.function.name,
                        tool_call_id=f"call_{uuid.uuid4().hex[:12]}",
                        arguments=dict(call.function.arguments or {}),
                        context=context,
                    )
                )
        if calls:
            logger.debug(f"{self}: tool calls {[c.function_name for c in calls]}")
            await self.run_function_calls(calls)


def _to_ollama_messages(messages: list[Any]) -> list[dict[str, Any]]:
    """OpenAI-shaped messages → Ollama's: text content only, tool-call arguments as objects."""
    out: list[dict[str, Any]] = []
    for message in messages:
        item: dict[str, Any] = {"role": message["role"], "content": _text(message.get("content"))}
        if message.get("tool_calls"):
            item["tool_calls"] = [
                {
                    "function": {
                        "name": call["function"]["name"],
                        "arguments": _json_object(call["function"].get("arguments")),
                    }
                }
                for call in message["tool_calls"]
            ]
        if message["role"] == "tool":
            item["tool_name"] = message.get("name", "")
        out.append(item)
    return out


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return " ".join(part.get("text", "") for part in content if isinstance(part, dict))


def _json_object(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}

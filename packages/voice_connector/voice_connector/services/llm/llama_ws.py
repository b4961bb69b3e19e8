"""The legacy Llama WebSocket LLM service: one persistent connection per call.

Each turn sends the whole conversation (`messages`, from the Pipecat context through the OpenAI
adapter) and streams `{"chunk"}` replies as LLM text until `{"done": true}`. `{"error"}` ends the
turn with an error frame; the call goes on. The protocol has no request id and no cancel: after a
barge-in the old answer keeps streaming until its `done`, so `ResponseChannel` drains it in the
background and the next request waits for that, never mixing stale tokens into a new answer.
"""

from __future__ import annotations

import json
from contextlib import aclosing
from typing import Any

from pipecat.frames.frames import (
    Frame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.llm_service import LLMService
from pipecat.utils.errors import ErrorCategory

from voice_connector.services.llm.settings import llm_settings
from voice_connector.services.outage import CallEnder, ChannelForTheCall
from voice_connector.services.ws_client import (
    Backoff,
    ConnectionLost,
    Message,
    ProviderUnavailable,
    ReconnectingSocket,
    ResponseChannel,
)


def _reply(message: Message) -> dict[str, Any]:
    if isinstance(message, bytes):
        return {}
    try:
        data = json.loads(message)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def is_last_reply(message: Message) -> bool:
    """`done` and `error` end a response."""
    data = _reply(message)
    return bool(data.get("done")) or "error" in data


class LlamaWSLLMService(ChannelForTheCall, LLMService):
    """Streams answers from the legacy Llama WebSocket service."""

    def __init__(
        self,
        *,
        url: str,
        system_prompt: str = "",
        temperature: float = 0.2,
        max_tokens: int = 80,
        call_id: str = "",
        backoff: Backoff | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            settings=llm_settings(
                model=None,
                system_prompt=system_prompt,
                temperature=temperature,
                max_tokens=max_tokens,
            ),
            **kwargs,
        )
        socket = ReconnectingSocket(url, name="llama_ws", call_id=call_id, backoff=backoff)
        self.channel = ResponseChannel(socket, is_last_reply)
        self._params = {"temperature": temperature, "max_tokens": max_tokens, "stream": True}
        self._ender = CallEnder(self, can_apologize=True)
        self._streamed = False

    def can_generate_metrics(self) -> bool:
        return True

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, LLMContextFrame):
            await self.push_frame(frame, direction)
            return
        if self._ender.ended:
            return
        await self.push_frame(LLMFullResponseStartFrame())
        await self.start_processing_metrics()
        try:
            await self._answer(frame.context)
        finally:
            await self.stop_processing_metrics()
            await self.push_frame(LLMFullResponseEndFrame())

    async def _answer(self, context: LLMContext) -> None:
        """One turn. A connection lost before any token is retried once on a fresh connection;
        lost mid-answer, the answer ends there (the caller heard part of it) and the call goes on.
        """
        for attempt in (1, 2):
            self._streamed = False
            try:
                await self._generate(context)
                return
            except ProviderUnavailable as exc:
                await self._ender.end_call(str(exc), exc)
                return
            except ConnectionLost as exc:
                if not self._streamed and attempt == 1:
                    continue
                if not self._streamed:  # two fresh connections died at once: a flapping service
                    await self._ender.end_call(str(exc), exc)
                else:
                    await self.push_error(
                        str(exc), exception=exc, category=ErrorCategory.CONNECTIVITY
                    )
                return

    async def _request(self, context: LLMContext) -> str:
        params = await self.get_llm_adapter().get_llm_invocation_params(
            context,
            system_instruction=self._settings.system_instruction or None,
            convert_developer_to_user=True,
        )
        messages = [
            {"role": m["role"], "content": _text(m.get("content"))}
            for m in params["messages"]
            if m.get("role") in ("system", "user", "assistant") and _text(m.get("content"))
        ]
        return json.dumps({"messages": messages, **self._params})

    async def _generate(self, context: LLMContext) -> None:
        request = await self._request(context)
        await self.start_ttfb_metrics()
        async with aclosing(self.channel.request(request)) as replies:
            async for message in replies:
                data = _reply(message)
                if "error" in data:
                    await self.push_error(
                        f"Llama service error: {data['error']}", category=ErrorCategory.SERVER
                    )
                elif isinstance(data.get("chunk"), str) and data["chunk"]:
                    self._streamed = True
                    await self.stop_ttfb_metrics()
                    await self._push_llm_text(data["chunk"])


def _text(content: Any) -> str:
    """OpenAI content (a string or a list of parts) as plain text: the legacy server takes text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return " ".join(part.get("text", "") for part in content if isinstance(part, dict))

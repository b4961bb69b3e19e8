"""Call control decided by the conversation, on any `CallTransport` (Twilio or OpenSIPS).

The model ends or transfers the call through tools (`end_call`, `transfer_call`; Pipecat function
calling) when `[llm] tools = true` and the LLM service supports them, or by ending its answer with
a marker (`[hangup]`, `[transfer]`) that is cut from the text before TTS. Either way the action
runs once the answer has been generated, and the transport carries it out after the caller heard
it (`CallTransport.hangup` / `transfer`).

Three small processors sit in the call's pipeline:

    user aggregator → ContextKeeper → LLM → ControlFilter → TTS → PlaybackMarks → output

- `ContextKeeper`: DTMF digits become a user message ("The caller pressed 1") and run the LLM;
  after a barge-in it trims the interrupted assistant message to what the caller heard.
- `ControlFilter`: strips markers, defers actions to the end of the answer, ends over-long calls
  with a spoken goodbye (`[pipeline] max_call_seconds`).
- `PlaybackMarks`: on transports that confirm playback (`capabilities.playback_marks`: Twilio
  `mark`), sends a mark behind every spoken sentence; the echoes say what was heard, which drives
  the trimming.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine
from typing import Any

from loguru import logger
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    FunctionCallResultProperties,
    InputDTMFFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    StartFrame,
    TTSSpeakFrame,
    TTSTextFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voice_connector.telemetry.outcome import CallOutcome
from voice_connector.transports.base import CallControlNotSupported, CallTransport
from voice_connector_core.config import Settings

HANGUP = "hangup"
TRANSFER = "transfer"
MARKERS = {"[hangup]": HANGUP, "[hang up]": HANGUP, "[end call]": HANGUP, "[transfer]": TRANSFER}
"""Plain-text fallback: an answer containing one of these asks for the action (any case)."""
MARKER_INSTRUCTIONS = (
    " When the caller wants to end the call, say a short goodbye and end your answer with "
    "[hangup]. When the caller asks for a human, say you are transferring them and end your "
    "answer with [transfer]."
)
DTMF_FLUSH_SECONDS = 1.5
"""Digits pressed within this gap are one entry; `#` ends an entry at once."""
GOODBYE_AT_LIMIT = "I'm sorry, we have reached the time limit for this call. Goodbye!"
END_CALL_TOOL = "end_call"
TRANSFER_TOOL = "transfer_call"


def prompt_settings(settings: Settings) -> Settings:
    """Settings whose system prompt explains the markers, when tools are off."""
    if settings.llm.tools:
        return settings
    llm = settings.llm.model_copy(
        update={"system_prompt": settings.llm.system_prompt + MARKER_INSTRUCTIONS}
    )
    return settings.model_copy(update={"llm": llm})


TOOL_OPTIONS: dict[str, Any] = {"cancel_on_interruption": False}
"""How the call-control tools are registered. In Pipecat 1.14 this makes them asynchronous, which
adds its "ASYNC TOOLS" guidance (~130 tokens) to the system prompt: part of every request's
prefix, so the warm-up registers its tools the same way. (Measured: without that guidance the
bundled 0.5B model called `end_call` on unclear speech that it otherwise answers.)"""


def tool_schemas(settings: Settings) -> list[FunctionSchema]:
    """The call-control tools a call of these settings offers: `end_call`, and `transfer_call`
    when its flavor has a target (what the first LLM request carries, warm-up included)."""
    functions = [
        FunctionSchema(
            name=END_CALL_TOOL,
            description="Hang up the phone call. Use it after saying goodbye, when the "
            "caller is done or asks to end the call.",
            properties={"reason": {"type": "string", "description": "Why the call ends."}},
            required=[],
        )
    ]
    if transfer_target(settings):
        functions.append(
            FunctionSchema(
                name=TRANSFER_TOOL,
                description="Transfer the caller to a human agent, when they ask for a "
                "person or you cannot help. Tell them first that you are transferring them.",
                properties={},
                required=[],
            )
        )
    return functions


def transfer_target(settings: Settings) -> str:
    """Where this call's flavor transfers to ("" when it does not)."""
    flavor = settings.flavors.get(settings.flavor)
    return flavor.transfer_target if flavor is not None else ""


class MarkerFilter:
    """Finds action markers in streamed text (split across tokens) and removes them."""

    def __init__(self, markers: dict[str, str] | None = None) -> None:
        self.markers = markers or MARKERS
        self._held = ""

    def _could_be_marker(self, text: str) -> bool:
        return any(marker.startswith(text) for marker in self.markers)

    def feed(self, text: str) -> tuple[str, list[str]]:
        """(text without markers, actions found); a possible marker start is held back."""
        data, self._held = self._held + text, ""
        out: list[str] = []
        actions: list[str] = []
        index = 0
        while index < len(data):
            bracket = data.find("[", index)
            if bracket < 0:
                out.append(data[index:])
                break
            out.append(data[index:bracket])
            rest = data[bracket:]
            lowered = rest.lower()
            found = next((m for m in self.markers if lowered.startswith(m)), None)
            if found is not None:
                actions.append(self.markers[found])
                index = bracket + len(found)
            elif self._could_be_marker(lowered):
                self._held = rest
                break
            else:
                out.append("[")
                index = bracket + 1
        return "".join(out), actions

    def flush(self) -> str:
        """Text held back at the end of the answer (it was no marker after all)."""
        held, self._held = self._held, ""
        return held


def _normalized(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


class CallController:
    """The call-control state of one call: decided actions, DTMF, what the caller heard."""

    def __init__(self, call: CallTransport, settings: Settings, context: LLMContext) -> None:
        self.call = call
        self.settings = settings
        self.context = context
        self.pending: str | None = None
        self.done: str | None = None
        self.interrupted_sentences: list[tuple[str, str]] | None = None
        """(mark name, text) of the answer a barge-in cut, until its context message is trimmed."""
        self._tasks: set[asyncio.Task[None]] = set()
        self.keeper = ContextKeeper(self)
        self.filter = ControlFilter(self)
        self.playback = PlaybackMarks(self)

    # Actions -------------------------------------------------------------------------------

    def request(self, action: str, reason: str = "") -> None:
        """Ask for `action`; it runs when the current answer has been generated."""
        if self.done is not None or self.pending is not None:
            return
        logger.info(f"call {self.call.info.call_id}: {action} requested {reason}".rstrip())
        self.pending = action
        if not self.filter.in_response:
            self.run_pending()

    def run_pending(self) -> None:
        action, self.pending = self.pending, None
        if action is None or self.done is not None:
            return
        self.done = action
        self._spawn(self._execute(action))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, action: str) -> None:
        call_id = self.call.info.call_id
        try:
            if action == HANGUP:
                await self.call.hangup("conversation")
            elif action == TRANSFER:
                target = transfer_target(self.settings)
                if not target:
                    logger.warning(f"call {call_id}: transfer asked, flavor has no transfer_target")
                    self.done = None
                    return
                if not self.call.capabilities.transfer:
                    raise CallControlNotSupported(f"{self.call.info.transport} cannot transfer")
                await self.call.transfer(target)
        except CallControlNotSupported as exc:
            logger.warning(f"call {call_id}: {action} not possible: {exc}")
            self.done = None
        except Exception as exc:  # a failed REST request must not take the call down
            logger.exception(f"call {call_id}: {action} failed: {exc}")
            self.done = None

    async def end_at_limit(self) -> None:
        """`max_call_seconds` reached: say goodbye, then hang up after it was heard."""
        if self.done is not None or self.call.task is None:
            return
        logger.info(f"call {self.call.info.call_id}: call time limit reached")
        self.done = HANGUP
        self.call.end_with(CallOutcome.MAX_DURATION, GOODBYE_AT_LIMIT)
        await self.call.task.queue_frame(TTSSpeakFrame(GOODBYE_AT_LIMIT))
        await self.call.hangup("max_call_seconds")

    # Tools ---------------------------------------------------------------------------------

    def install_tools(self, llm: FrameProcessor) -> bool:
        """Offer `end_call` (and `transfer_call` when the flavor has a target) to the LLM."""
        if not self.settings.llm.tools or not hasattr(llm, "register_function"):
            return False
        functions = tool_schemas(self.settings)
        llm.register_function(END_CALL_TOOL, self._on_end_call, **TOOL_OPTIONS)
        if any(function.name == TRANSFER_TOOL for function in functions):
            llm.register_function(TRANSFER_TOOL, self._on_transfer, **TOOL_OPTIONS)
        self.context.set_tools(ToolsSchema(standard_tools=functions))
        return True

    async def _on_end_call(self, params: Any) -> None:
        reason = str(params.arguments.get("reason", "") or "")
        await params.result_callback(
            {"status": "ending the call"}, properties=FunctionCallResultProperties(run_llm=False)
        )
        self.request(HANGUP, reason)

    async def _on_transfer(self, params: Any) -> None:
        await params.result_callback(
            {"status": "transferring"}, properties=FunctionCallResultProperties(run_llm=False)
        )
        self.request(TRANSFER)

    # Playback truth ------------------------------------------------------------------------

    def trim_interrupted(self) -> None:
        """Cut the interrupted answer in the context down to the sentences the caller heard."""
        sentences = self.interrupted_sentences
        if not sentences or not self.call.capabilities.playback_marks:
            return
        first = _normalized(sentences[0][1])
        for index in range(len(self.context.messages) - 1, -1, -1):
            message = self.context.messages[index]
            if not isinstance(message, dict) or message.get("role") != "assistant":
                continue
            content = message.get("content")
            if not isinstance(content, str) or not _normalized(content).startswith(first):
                return  # not added yet (or not this answer): try again at the next LLM run
            heard = " ".join(text for name, text in sentences if self.call.heard(name)).strip()
            messages = list(self.context.messages)
            if heard:
                messages[index] = {**message, "content": heard}
            else:
                del messages[index]
            self.context.set_messages(messages)
            logger.debug(f"call {self.call.info.call_id}: context trimmed to heard [{heard}]")
            self.interrupted_sentences = None
            return


class ContextKeeper(FrameProcessor):
    """Before the LLM: DTMF digits into the context, trimming of interrupted answers."""

    def __init__(self, controller: CallController) -> None:
        super().__init__()
        self._controller = controller
        self._digits = ""
        self._flush_task: asyncio.Task[None] | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            self._controller.trim_interrupted()
        elif isinstance(frame, InputDTMFFrame):
            await self._digit(str(frame.button.value))
        elif isinstance(frame, (EndFrame, CancelFrame)) and self._flush_task is not None:
            await self.cancel_task(self._flush_task)
            self._flush_task = None
        await self.push_frame(frame, direction)

    async def _digit(self, digit: str) -> None:
        if self._flush_task is not None:
            await self.cancel_task(self._flush_task)
            self._flush_task = None
        if digit == "#":
            await self._flush()
            return
        self._digits += digit
        self._flush_task = self.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(DTMF_FLUSH_SECONDS)
        self._flush_task = None
        await self._flush()

    async def _flush(self) -> None:
        digits, self._digits = self._digits, ""
        if not digits:
            return
        context = self._controller.context
        self._controller.trim_interrupted()
        context.add_message({"role": "user", "content": f"The caller pressed {' '.join(digits)}"})
        await self.push_frame(LLMContextFrame(context=context))


class ControlFilter(FrameProcessor):
    """After the LLM: strip markers, run decided actions after the answer, enforce the limit."""

    def __init__(self, controller: CallController) -> None:
        super().__init__()
        self._controller = controller
        self._markers = MarkerFilter()
        self.in_response = False
        self._limit_task: asyncio.Task[None] | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        controller = self._controller
        if isinstance(frame, StartFrame):
            limit = controller.settings.pipeline.max_call_seconds
            if limit > 0:
                self._limit_task = self.create_task(self._limit(limit))
        elif isinstance(frame, (EndFrame, CancelFrame)) and self._limit_task is not None:
            await self.cancel_task(self._limit_task)
            self._limit_task = None
        elif isinstance(frame, LLMFullResponseStartFrame):
            self.in_response = True
        elif isinstance(frame, LLMTextFrame):
            text, actions = self._markers.feed(frame.text)
            for action in actions:
                controller.request(action, "marker")
            if not text:
                return
            frame.text = text
        elif isinstance(frame, LLMFullResponseEndFrame):
            held = self._markers.flush()
            if held:
                await self.push_frame(LLMTextFrame(held))
            self.in_response = False
            await self.push_frame(frame, direction)
            controller.run_pending()
            return
        elif isinstance(frame, InterruptionFrame):
            self._markers.flush()
            self.in_response = False
            if controller.pending is not None:
                controller.run_pending()  # the decision stands even if its answer was cut
        await self.push_frame(frame, direction)

    async def _limit(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._limit_task = None
        await self._controller.end_at_limit()


class PlaybackMarks(FrameProcessor):
    """Before the output: a playback mark behind every sentence; barge-in remembers the answer."""

    def __init__(self, controller: CallController) -> None:
        super().__init__()
        self._controller = controller
        self._sentences: list[tuple[str, str]] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        call = self._controller.call
        confirming = call.capabilities.playback_marks
        if isinstance(frame, LLMFullResponseStartFrame):
            self._sentences = []
        elif isinstance(frame, InterruptionFrame):
            if self._sentences:
                self._controller.interrupted_sentences = self._sentences
            self._sentences = []
        elif (
            isinstance(frame, TTSTextFrame)
            and direction == FrameDirection.DOWNSTREAM
            and confirming
            and frame.text.strip()
        ):
            await self.push_frame(frame, direction)
            name, mark = call.playback_mark(frame.text)
            self._sentences.append((name, frame.text))
            await self.push_frame(mark)
            return
        await self.push_frame(frame, direction)

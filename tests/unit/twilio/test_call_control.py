"""Call control in the pipeline, transport-agnostic: markers, tools, DTMF, heard-text trimming.

The call is a stand-in `CallTransport` recording hang-up/transfer requests; Twilio's playback
bookkeeping (`MarkLedger`) is the real one, so marks drive the trimming exactly as on a call.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import (
    Frame,
    FunctionCallFromLLM,
    InputDTMFFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    OutputTransportMessageFrame,
    TTSTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import SleepFrame, run_test

from voice_connector.pipeline.call_control import CallController, prompt_settings
from voice_connector.services.llm.ollama import OllamaLLMService
from voice_connector.transports.base import CallInfo, CallTransport, TransportCapabilities
from voice_connector.transports.twilio.marks import MarkLedger
from voice_connector_core.config import load_settings


class RecordingCall(CallTransport):
    """A call that can transfer, whose control requests are recorded."""

    def __init__(self) -> None:
        super().__init__(CallInfo(call_id="CAunit", transport="test"))
        self.actions: list[tuple[str, str]] = []

    @property
    def pipecat(self) -> Any:
        raise NotImplementedError

    @property
    def capabilities(self) -> TransportCapabilities:
        return TransportCapabilities(transfer=True)

    async def hangup(self, reason: str = "normal") -> None:
        self.actions.append(("hangup", reason))

    async def transfer(self, target: str) -> None:
        self.actions.append(("transfer", target))


class MarkingCall(RecordingCall):
    """A call that also confirms playback, with Twilio-style marks."""

    def __init__(self) -> None:
        super().__init__()
        self.marks = MarkLedger("MZunit")

    @property
    def capabilities(self) -> TransportCapabilities:
        return TransportCapabilities(playback_marks=True, transfer=True)

    def playback_mark(self, text: str) -> tuple[str, OutputTransportMessageFrame]:
        name, message = self.marks.issue(text)
        return name, OutputTransportMessageFrame(message=message)

    def heard(self, mark: str) -> bool:
        return self.marks.heard(mark)


class EchoFirst(FrameProcessor):
    """Plays Twilio: echoes the first `heard` marks only (the caller barged in after them)."""

    def __init__(self, ledger: MarkLedger, heard: int) -> None:
        super().__init__()
        self.ledger, self.heard = ledger, heard

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, OutputTransportMessageFrame) and self.heard > 0:
            self.heard -= 1
            self.ledger.echoed(frame.message["mark"]["name"])
        await self.push_frame(frame, direction)


def settings(flavor: str = "default", tools: bool = True):  # type: ignore[no-untyped-def]
    env = {"VC_LLM_TOOLS": "true" if tools else "false"}
    return load_settings("cfg/voice-connector.ini", env=env).for_flavor(flavor)


async def settle(controller: CallController) -> None:
    while controller._tasks:
        await asyncio.gather(*controller._tasks)


async def test_marker_is_stripped_and_hangup_runs_after_the_answer() -> None:
    call = RecordingCall()
    controller = CallController(call, settings(tools=False), LLMContext())
    frames = [
        LLMFullResponseStartFrame(),
        LLMTextFrame("Goodbye, have a nice day! [hang"),
        LLMTextFrame("up]"),
        LLMFullResponseEndFrame(),
    ]
    down, _ = await run_test(controller.filter, frames_to_send=frames)
    await settle(controller)
    spoken = "".join(f.text for f in down if isinstance(f, LLMTextFrame))
    assert spoken.strip() == "Goodbye, have a nice day!"
    assert call.actions == [("hangup", "conversation")]
    # The action waits for the end of the answer: nothing after LLMFullResponseEndFrame is spoken.
    assert isinstance(down[-1], LLMFullResponseEndFrame)


async def test_transfer_marker_uses_the_flavor_target() -> None:
    call = RecordingCall()
    controller = CallController(call, settings("support", tools=False), LLMContext())
    frames = [
        LLMFullResponseStartFrame(),
        LLMTextFrame("Transferring you. [transfer]"),
        LLMFullResponseEndFrame(),
    ]
    await run_test(controller.filter, frames_to_send=frames)
    await settle(controller)
    assert call.actions == [("transfer", "+15550100")]


async def test_a_transport_that_cannot_transfer_is_not_asked_to() -> None:
    class NoTransfer(RecordingCall):
        @property
        def capabilities(self) -> TransportCapabilities:
            return TransportCapabilities()

    call = NoTransfer()
    controller = CallController(call, settings("support", tools=False), LLMContext())
    frames = [
        LLMFullResponseStartFrame(),
        LLMTextFrame("Transferring you. [transfer]"),
        LLMFullResponseEndFrame(),
    ]
    await run_test(controller.filter, frames_to_send=frames)
    await settle(controller)
    assert call.actions == [] and controller.done is None


async def test_transfer_without_target_does_nothing() -> None:
    call = RecordingCall()
    controller = CallController(call, settings("default", tools=False), LLMContext())
    frames = [LLMFullResponseStartFrame(), LLMTextFrame("[transfer]"), LLMFullResponseEndFrame()]
    await run_test(controller.filter, frames_to_send=frames)
    await settle(controller)
    assert call.actions == []


def test_markers_are_explained_to_the_model_only_without_tools() -> None:
    assert "[hangup]" in prompt_settings(settings(tools=False)).llm.system_prompt
    assert "[hangup]" not in prompt_settings(settings(tools=True)).llm.system_prompt


class ToolCallingLLM(OllamaLLMService):
    """An LLM service that answers every context by saying a sentence and calling one tool."""

    def __init__(self, tool: str) -> None:
        super().__init__(host="http://127.0.0.1:9", model="fake")
        self.tool = tool

    async def _generate(self, context: LLMContext) -> None:
        await self._push_llm_text("One moment please.")
        call = FunctionCallFromLLM(
            function_name=self.tool,
            tool_call_id="call_1",
            arguments={"reason": "done"},
            context=context,
        )
        await self.run_function_calls([call])


async def test_tools_are_offered_and_a_tool_call_transfers() -> None:
    call = RecordingCall()
    context = LLMContext()
    controller = CallController(call, settings("support"), context)
    llm = ToolCallingLLM("transfer_call")
    assert controller.install_tools(llm)
    names = [tool.name for tool in context.tools.standard_tools]  # type: ignore[union-attr]
    assert names == ["end_call", "transfer_call"]
    await run_test(
        Pipeline([llm, controller.filter]),
        frames_to_send=[LLMContextFrame(context=context), SleepFrame(0.3)],
    )
    await settle(controller)
    assert call.actions == [("transfer", "+15550100")]


async def test_end_call_tool_hangs_up_and_transfer_is_not_offered_without_target() -> None:
    call = RecordingCall()
    context = LLMContext()
    controller = CallController(call, settings("default"), context)
    llm = ToolCallingLLM("end_call")
    controller.install_tools(llm)
    assert [t.name for t in context.tools.standard_tools] == ["end_call"]  # type: ignore[union-attr]
    await run_test(
        Pipeline([llm, controller.filter]),
        frames_to_send=[LLMContextFrame(context=context), SleepFrame(0.3)],
    )
    await settle(controller)
    assert call.actions == [("hangup", "conversation")]


async def test_dtmf_digits_reach_the_context_as_a_user_message() -> None:
    context = LLMContext(messages=[{"role": "user", "content": "hi"}])
    controller = CallController(RecordingCall(), settings(), context)
    frames = [
        InputDTMFFrame(button=KeypadEntry.ONE),
        InputDTMFFrame(button=KeypadEntry.TWO),
        InputDTMFFrame(button=KeypadEntry.POUND),
        SleepFrame(0.1),
    ]
    down, _ = await run_test(controller.keeper, frames_to_send=frames)
    assert any(isinstance(f, LLMContextFrame) for f in down)
    assert context.messages[-1] == {"role": "user", "content": "The caller pressed 1 2"}


async def test_dtmf_without_pound_is_sent_after_a_pause() -> None:
    context = LLMContext()
    controller = CallController(RecordingCall(), settings(), context)
    frames = [InputDTMFFrame(button=KeypadEntry.SEVEN), SleepFrame(2.0)]
    await run_test(controller.keeper, frames_to_send=frames)
    assert context.messages[-1] == {"role": "user", "content": "The caller pressed 7"}


SENTENCES = ["Hello there.", "The weather is nice today.", "Anything else?"]


async def trimmed_after_barge_in(heard: int) -> list[Any]:
    call = MarkingCall()
    context = LLMContext(messages=[{"role": "user", "content": "hi"}])
    controller = CallController(call, settings(), context)
    pipeline = Pipeline([controller.playback, EchoFirst(call.marks, heard), controller.keeper])
    speech: list[Frame] = [LLMFullResponseStartFrame()]
    for text in SENTENCES:
        speech += [TTSTextFrame(text, text_type="sentence"), SleepFrame(0.05)]
    # Pipecat's assistant aggregator records what was *written*: every sentence.
    context.add_message({"role": "assistant", "content": " ".join(SENTENCES)})
    context.add_message({"role": "user", "content": "wait"})
    frames = [*speech, InterruptionFrame(), SleepFrame(0.05), LLMContextFrame(context=context)]
    down, _ = await run_test(pipeline, frames_to_send=frames)
    marks = [f for f in down if isinstance(f, OutputTransportMessageFrame)]
    assert len(marks) == len(SENTENCES)  # one mark behind every sentence
    return context.messages


async def test_marks_trim_the_interrupted_answer_to_what_was_heard() -> None:
    messages = await trimmed_after_barge_in(heard=1)
    assert messages[1] == {"role": "assistant", "content": "Hello there."}
    assert messages[-1] == {"role": "user", "content": "wait"}


async def test_answer_not_heard_at_all_is_dropped_from_the_context() -> None:
    messages = await trimmed_after_barge_in(heard=0)
    assert [m["role"] for m in messages] == ["user", "user"]


async def test_fully_heard_answer_is_kept() -> None:
    messages = await trimmed_after_barge_in(heard=3)
    assert messages[1]["content"] == " ".join(SENTENCES)

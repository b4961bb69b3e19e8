"""Observers receive only the frames they declare; undeclared observers still receive all."""

from __future__ import annotations

from pipecat.frames.frames import EndFrame, Frame, InputAudioRawFrame, TextFrame
from pipecat.observers.base_observer import BaseObserver, FrameProcessed, FramePushed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voice_connector.pipeline.observers import CallPipelineTask, SelectiveObserver


class Relay(FrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


class Log(BaseObserver):
    def __init__(self, **kwargs: bool) -> None:
        super().__init__(**kwargs)
        self.pushed: list[Frame] = []
        self.processed: list[Frame] = []

    async def on_push_frame(self, data: FramePushed) -> None:
        self.pushed.append(data.frame)

    async def on_process_frame(self, data: FrameProcessed) -> None:
        self.processed.append(data.frame)


class TextOnly(Log, SelectiveObserver):
    observed_frames = (TextFrame,)
    observes_processing = False


class Everything(Log):
    pass


class TextFirstPushOnly(Log, SelectiveObserver):
    observed_frames = (TextFrame,)

    def __init__(self) -> None:
        super().__init__(observe_every_push=False)


async def run(observers: list[BaseObserver]) -> None:
    task = CallPipelineTask(
        Pipeline([Relay(), Relay()]), observers=observers, enable_rtvi=False, idle_timeout_secs=None
    )
    audio = [InputAudioRawFrame(b"\0" * 640, 16000, 1) for _ in range(5)]
    await task.queue_frames([*audio, TextFrame("hello"), TextFrame("again"), EndFrame()])
    runner = PipelineRunner(handle_sigint=False, handle_sigterm=False)
    await runner.add_workers(task)
    await runner.run()


async def test_declared_observers_see_only_their_frames_and_others_see_everything() -> None:
    text_only, everything, first_only = TextOnly(), Everything(), TextFirstPushOnly()
    await run([text_only, everything, first_only])

    assert {type(f) for f in text_only.pushed} == {TextFrame}
    assert text_only.processed == []
    texts = [f for f in everything.pushed if isinstance(f, TextFrame)]
    assert text_only.pushed == texts  # every hop of every text frame, none lost
    assert len(texts) > 2  # the frames crossed several processors
    assert sum(isinstance(f, InputAudioRawFrame) for f in everything.pushed) >= 5
    assert any(isinstance(f, InputAudioRawFrame) for f in everything.processed)
    assert [f.text for f in first_only.pushed] == ["hello", "again"]  # Pipecat's first push
    assert {type(f) for f in first_only.processed} == {TextFrame}

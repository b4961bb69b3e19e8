"""Observers that see only the frames they ask for.

Pipecat hands every observer every frame: each push and each processing step of every 20 ms
audio frame becomes an event object, a queue put and a task wake-up per observer, whether the
observer cares or not. On a busy node that fan-out was a tenth of the event loop's time. An
observer here names the frame types it reads (`observed_frames`) and whether it reads
processing events at all (`observes_processing`); the rest never reach its queue.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pipecat.frames.frames import Frame
from pipecat.observers.base_observer import BaseObserver, FrameProcessed, FramePushed
from pipecat.pipeline.task import PipelineTask
from pipecat.pipeline.worker_observer import WorkerObserver


class SelectiveObserver(BaseObserver):
    """An observer that declares what it reads; `None` means every frame (Pipecat's default)."""

    observed_frames: ClassVar[tuple[type[Frame], ...] | None] = None
    observes_processing: ClassVar[bool] = True


def wants_push(observer: BaseObserver, frame: Frame) -> bool:
    frames = getattr(observer, "observed_frames", None)
    return frames is None or isinstance(frame, frames)


def wants_processing(observer: BaseObserver, frame: Frame) -> bool:
    return getattr(observer, "observes_processing", True) and wants_push(observer, frame)


class SelectiveWorkerObserver(WorkerObserver):
    """Pipecat's observer fan-out, skipping the observers a frame does not concern."""

    async def on_push_frame(self, data: FramePushed) -> None:
        if not self._proxies:
            return
        wanting = [p for p in self._proxies.values() if wants_push(p.observer, data.frame)]
        if not wanting:
            return
        frame = data.frame  # first-push bookkeeping as Pipecat's, for the frames still observed
        data.first_push = frame.id not in self._frames_pushed
        if data.first_push:
            self._frames_pushed[frame.id] = frame
        for proxy in wanting:
            if data.first_push or proxy.observer.observe_every_push:
                await proxy.queue.put(data)

    async def on_process_frame(self, data: FrameProcessed) -> None:
        for proxy in (self._proxies or {}).values():
            if wants_processing(proxy.observer, data.frame):
                await proxy.queue.put(data)


class CallPipelineTask(PipelineTask):
    """A `PipelineTask` whose observers only receive the frames they declare."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._observer = SelectiveWorkerObserver(observers=self._observer._observers)

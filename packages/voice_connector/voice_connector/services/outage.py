"""What a call does when a provider is gone for good: apologize (if it still can) and end.

A remote STT/LLM that cannot be reached after its retries would otherwise leave the caller in
silence until they hang up. The service pushes a short fixed sentence to the TTS and then asks the
pipeline to end gracefully (queued audio, the apology included, is played before the end). A TTS
that is gone cannot speak, so it only ends the call.
"""

from __future__ import annotations

from pipecat.frames.frames import CancelFrame, EndFrame, EndWorkerFrame, StartFrame, TTSSpeakFrame
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.utils.errors import ErrorCategory

from voice_connector.services.ws_client import ProviderUnavailable, ResponseChannel

APOLOGY = "Sorry, we are having technical difficulties. Please call again later. Goodbye."


class CallEnder:
    """Ends the call once per service, however many failures follow the first."""

    def __init__(self, processor: FrameProcessor, *, can_apologize: bool) -> None:
        self._processor = processor
        self._can_apologize = can_apologize
        self.ended = False

    async def end_call(self, reason: str, exception: Exception | None = None) -> None:
        """Report `reason`, speak the apology (STT, LLM) and end the pipeline gracefully."""
        if self.ended:
            return
        self.ended = True
        processor = self._processor
        # CONNECTIVITY is not a permanent category: the processor stays usable, and the call
        # ends through EndWorkerFrame, after the apology, not by cancellation.
        await processor.push_error(
            f"{reason}; ending the call", exception=exception, category=ErrorCategory.CONNECTIVITY
        )
        if self._can_apologize:
            await processor.push_frame(TTSSpeakFrame(APOLOGY))
        await processor.push_frame(EndWorkerFrame(reason=reason))


class ChannelForTheCall:
    """Mixin for services speaking over one `ResponseChannel` per call (Llama WS, Piper WS).

    Connects when the call starts, so a dead service is noticed (and the call ended politely)
    before the caller speaks, and closes the channel with the call. The service sets
    `self.channel` and `self._ender` in its constructor.
    """

    channel: ResponseChannel
    _ender: CallEnder

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)  # type: ignore[misc]
        self.create_task(  # type: ignore[attr-defined]
            self._connect_early(), name=f"{type(self).__name__}_connect"
        )

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)  # type: ignore[misc]
        await self.channel.close()

    async def cancel(self, frame: CancelFrame) -> None:
        await super().cancel(frame)  # type: ignore[misc]
        await self.channel.close()

    async def _connect_early(self) -> None:
        try:
            await self.channel.socket.connect()
        except ProviderUnavailable as exc:
            await self._ender.end_call(str(exc), exc)

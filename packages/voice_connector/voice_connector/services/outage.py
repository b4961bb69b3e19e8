"""What a call does when a provider is gone for good: apologize (if it still can) and end.

A remote STT/LLM that cannot be reached after its retries would otherwise leave the caller in
silence until they hang up. The service pushes a short fixed sentence to the TTS and then asks the
pipeline to end gracefully (queued audio, the apology included, is played before the end). A TTS
that is gone cannot speak, so it only ends the call.
"""

from __future__ import annotations

from pipecat.frames.frames import EndWorkerFrame, TTSSpeakFrame
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.utils.errors import ErrorCategory

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

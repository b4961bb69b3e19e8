"""Smart-turn end-of-turn detection on one ONNX session per process, with a bounded wait.

When the VAD reports the caller stopped (after `vad_stop_secs` of silence), Pipecat's
`LocalSmartTurnAnalyzerV3` judges whether their speech is complete. A turn judged complete ends
there; one judged unfinished ends after `SmartTurnParams.stop_secs` more silence, 3 s by Pipecat's
default. Here that is `user_speech_timeout_secs`, timeout mode's wait after the same VAD stop, so
no turn ends later than in timeout mode (`vad_stop_secs + user_speech_timeout_secs` after the last
speech) and those judged complete end `user_speech_timeout_secs` sooner.

The analyzer counts silence only from the VAD's stop (the stop strategy tells it "speaking" until
then: the VAD's state, not each frame's), so `stop_secs` must not count `vad_stop_secs` again. It
counts the caller's audio frames, not the clock (Twilio and RTP callers send audio through
silence); a caller whose audio stops altogether is ended by the user aggregator's stop timeout
(`builder.USER_TURN_STOP_TIMEOUT_SECS`).
"""

from __future__ import annotations

from pipecat.audio.turn.smart_turn.base_smart_turn import BaseSmartTurn, SmartTurnParams
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

from voice_connector.services import shared_models
from voice_connector_core.config import Settings


class SharedSmartTurnAnalyzer(LocalSmartTurnAnalyzerV3):
    """`LocalSmartTurnAnalyzerV3` on the process-wide session (`shared_models.smart_turn_session`).

    Each call keeps its own analyzer (audio buffer, silence count, one inference thread); only
    the session is shared, which is safe: onnxruntime's `InferenceSession.run` is thread-safe, so
    several calls' threads may run it at once. Pipecat's per-call session build is skipped, and so
    is its debug option of writing every analyzed turn to a WAV file.
    """

    def __init__(self, *, sample_rate: int | None = None, params: SmartTurnParams | None = None):
        BaseSmartTurn.__init__(self, sample_rate=sample_rate, params=params)
        self._log_data = False
        self._session = shared_models.smart_turn_session()


def smart_turn_analyzer(settings: Settings) -> SharedSmartTurnAnalyzer:
    """The analyzer of one call; an unfinished-sounding turn waits as long as in timeout mode."""
    stop_secs = settings.pipeline.user_speech_timeout_secs
    return SharedSmartTurnAnalyzer(params=SmartTurnParams(stop_secs=stop_secs))

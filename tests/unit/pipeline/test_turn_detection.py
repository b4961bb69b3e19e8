"""`[pipeline] turn_detection` picks how a caller's turn ends."""

from __future__ import annotations

from pathlib import Path

from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.turns.user_stop import (
    SpeechTimeoutUserTurnStopStrategy,
    TurnAnalyzerUserTurnStopStrategy,
)

from voice_connector.pipeline.builder import turn_stop_strategy
from voice_connector_core.config import load_settings

CONFIG = "[transport]\nproviders = twilio\n[pipeline]\nuser_speech_timeout_secs = 0.7\n"


def test_a_fixed_silence_by_default_smart_turn_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "vc.ini"
    path.write_text(CONFIG)

    default = turn_stop_strategy(load_settings(path, env={}))
    assert isinstance(default, SpeechTimeoutUserTurnStopStrategy)
    assert default._user_speech_timeout == 0.7

    smart = turn_stop_strategy(
        load_settings(path, env={"VC_PIPELINE_TURN_DETECTION": "smart_turn"})
    )
    assert isinstance(smart, TurnAnalyzerUserTurnStopStrategy)
    assert isinstance(smart._turn_analyzer, LocalSmartTurnAnalyzerV3)

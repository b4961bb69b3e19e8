"""Inbound Twilio messages: the same audio as Pipecat's serializer, and bad input is dropped."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import numpy as np
from pipecat.frames.frames import InputAudioRawFrame, InputDTMFFrame
from pipecat.serializers.twilio import TwilioFrameSerializer

from voice_connector.audio.resample import LowLatencyResampler
from voice_connector.transports.twilio.serializer import TwilioStreamSerializer

SETUP = SimpleNamespace(audio_in_sample_rate=16000)


def media(ulaw: bytes, seq: int = 1) -> str:
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": str(seq),
            "streamSid": "MZ1",
            "media": {"track": "inbound", "chunk": str(seq), "timestamp": str(20 * seq),
                      "payload": base64.b64encode(ulaw).decode()},
        }
    )  # fmt: skip


async def ours() -> TwilioStreamSerializer:
    serializer = TwilioStreamSerializer(stream_sid="MZ1", call_sid="CA1")
    await serializer.setup(SETUP)  # type: ignore[arg-type]
    return serializer


async def test_media_becomes_the_audio_pipecats_serializer_makes() -> None:
    theirs = TwilioFrameSerializer(
        stream_sid="MZ1",
        call_sid="CA1",
        params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
    )
    theirs._input_resampler = LowLatencyResampler()  # the resampler we chose, on both sides
    await theirs.setup(SETUP)  # type: ignore[arg-type]
    mine = await ours()
    tone = (np.sin(np.arange(160 * 5) * 2 * np.pi * 440 / 8000) * 100 + 128).astype(np.uint8)
    for seq in range(5):
        message = media(tone[seq * 160 : (seq + 1) * 160].tobytes(), seq)
        a, b = await mine.deserialize(message), await theirs.deserialize(message)
        assert isinstance(a, InputAudioRawFrame) and isinstance(b, InputAudioRawFrame)
        assert (a.audio, a.sample_rate, a.num_channels) == (b.audio, 16000, 1)
        assert len(a.audio) == 640  # 20 ms at 16 kHz


async def test_bytes_messages_and_dtmf_and_marks() -> None:
    mine = await ours()
    frame = await mine.deserialize(media(b"\xff" * 160).encode())
    assert isinstance(frame, InputAudioRawFrame)
    dtmf = await mine.deserialize(json.dumps({"event": "dtmf", "dtmf": {"digit": "5"}}))
    assert isinstance(dtmf, InputDTMFFrame) and dtmf.button.value == "5"
    name, _ = mine.marks.issue("hello")
    assert await mine.deserialize(json.dumps({"event": "mark", "mark": {"name": name}})) is None
    assert mine.marks.heard(name)


async def test_malformed_messages_are_dropped_not_raised() -> None:
    mine = await ours()
    bad = [
        "not json",
        "[1, 2]",
        json.dumps({"event": "media"}),
        json.dumps({"event": "media", "media": {"payload": "%%%notbase64"}}),
        json.dumps({"event": "media", "media": {"payload": "A" * 100_000}}),
        json.dumps({"event": "media", "media": {"payload": ""}}),
        json.dumps({"event": "dtmf", "dtmf": {}}),
        json.dumps({"event": "dtmf", "dtmf": {"digit": "X"}}),
        json.dumps({"event": "whatever"}),
        b"\xff\xfe",
    ]
    for message in bad:
        assert await mine.deserialize(message) is None, message
    assert isinstance(await mine.deserialize(media(b"\xff" * 160)), InputAudioRawFrame)

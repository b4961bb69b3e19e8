"""The legacy Piper WS TTS server with the real joe voice; its audio checked by Whisper."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from ai_services.audio import resample_pcm16

TEXT = "Thank you for calling. Your appointment is confirmed for Monday morning."


async def speak(ws, request: dict) -> tuple[list, bytes]:
    """(JSON messages, concatenated audio) of one request."""
    await ws.send(json.dumps(request))
    messages, audio = [], bytearray()
    while True:
        msg = await ws.recv()
        if isinstance(msg, bytes):
            messages.append(len(msg))
            audio.extend(msg)
            continue
        data = json.loads(msg)
        messages.append(data)
        if data.get("type") in ("end", "error"):
            return messages, bytes(audio)


async def test_streams_start_pcm_chunks_end(piper_ws_server):
    async with websockets.connect(f"{piper_ws_server.ws}/tts") as ws:
        messages, audio = await speak(
            ws,
            {
                "text": TEXT,
                "voice": "en_US-joe-medium",
                "sample_rate": 22050,
                "format": "pcm16",
            },
        )
    assert messages[0] == {"type": "start"} and messages[-1] == {"type": "end"}
    chunks = messages[1:-1]
    assert len(chunks) >= 2 and all(isinstance(n, int) and n % 2 == 0 for n in chunks)
    seconds = len(audio) / 2 / 22050
    assert 2.0 < seconds < 10.0


async def test_speech_is_intelligible(piper_ws_server, whisper_server, wer):
    """Piper's audio through this server, transcribed by the Whisper service."""
    async with websockets.connect(f"{piper_ws_server.ws}/tts") as ws:
        _, audio = await speak(ws, {"text": TEXT})
    pcm = resample_pcm16(b"\0\0" * 6615 + audio + b"\0\0" * 6615, 22050, 16000)
    async with httpx.AsyncClient(base_url=whisper_server.http, timeout=60) as http:
        resp = await http.post(
            "/v1/audio/transcriptions",
            params={"sample_rate": 16000, "language": "en"},
            content=pcm,
            headers={"Content-Type": "audio/pcm"},
        )
    assert wer(TEXT, resp.json()["text"]) <= 0.2, resp.json()["text"]


@pytest.mark.parametrize(
    ("request_frame", "fragment"),
    [
        ("not json", "JSON"),
        (json.dumps({"text": ""}), "non-empty"),
        (json.dumps({"text": "hi", "voice": "de_DE-thorsten-high"}), "not available"),
        (json.dumps({"text": "hi", "sample_rate": 8000}), "22050"),
        (json.dumps({"text": "hi", "format": "mp3"}), "pcm16"),
        (json.dumps({"text": "x" * 3000}), "longer than"),
        (b"\x00\x01", "binary"),
    ],
)
async def test_bad_requests_get_error_and_connection_stays(
    piper_ws_server, request_frame, fragment
):
    async with websockets.connect(f"{piper_ws_server.ws}/tts") as ws:
        await ws.send(request_frame)
        err = json.loads(await ws.recv())
        assert err["type"] == "error" and fragment in err["message"]
        messages, audio = await speak(ws, {"text": "Still here."})
    assert messages[0] == {"type": "start"} and messages[-1] == {"type": "end"} and audio


async def test_concurrent_clients_each_get_their_audio(piper_ws_server):
    async def one(text: str) -> bytes:
        async with websockets.connect(f"{piper_ws_server.ws}/tts") as ws:
            messages, audio = await speak(ws, {"text": text, "call_id": text[:5]})
            assert messages[-1] == {"type": "end"}
            return audio

    short, long = await asyncio.gather(one("Yes."), one(TEXT))
    assert 0 < len(short) < len(long)


async def test_readiness_and_metrics(piper_ws_server):
    async with httpx.AsyncClient(base_url=piper_ws_server.http) as http:
        assert (await http.get("/readyz")).status_code == 200
        metrics = (await http.get("/metrics")).text
    assert 'ai_service_first_output_seconds_count{endpoint="/tts",service="piper"}' in metrics

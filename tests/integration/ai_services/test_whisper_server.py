"""The faster-whisper service: OpenAI-style HTTP, raw PCM, and the per-utterance WebSocket."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from ai_services.audio import pcm16_to_wav, resample_pcm16

SENTENCE = "Please transfer me to the billing department."


async def test_multipart_wav_transcription(whisper_server, english_16k, wer):
    wav = pcm16_to_wav(english_16k[SENTENCE], 16000)
    async with httpx.AsyncClient(base_url=whisper_server.http, timeout=60) as http:
        resp = await http.post(
            "/v1/audio/transcriptions",
            files={"file": ("utt.wav", wav, "audio/wav")},
            data={"model": "whisper-1", "language": "en"},
            headers={"X-Call-Id": "call-w1"},
        )
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-call-id"] == "call-w1"
    assert wer(SENTENCE, resp.json()["text"]) <= 0.2


async def test_all_sentences_at_telephony_rate_over_raw_pcm(whisper_server, english_16k, wer):
    """8 kHz raw PCM (what a phone call carries) is resampled by the server."""
    async with httpx.AsyncClient(base_url=whisper_server.http, timeout=60) as http:
        for text, pcm in english_16k.items():
            resp = await http.post(
                "/v1/audio/transcriptions",
                params={"sample_rate": 8000, "language": "en"},
                content=resample_pcm16(pcm, 16000, 8000),
                headers={"Content-Type": "audio/pcm"},
            )
            assert resp.status_code == 200, resp.text
            assert wer(text, resp.json()["text"]) <= 0.2, resp.json()["text"]


async def test_response_formats(whisper_server, english_16k):
    wav = pcm16_to_wav(english_16k[SENTENCE], 16000)
    async with httpx.AsyncClient(base_url=whisper_server.http, timeout=60) as http:
        text = await http.post(
            "/v1/audio/transcriptions",
            files={"file": ("a.wav", wav)},
            data={"response_format": "text"},
        )
        verbose = await http.post(
            "/v1/audio/transcriptions",
            files={"file": ("a.wav", wav)},
            data={"response_format": "verbose_json"},
        )
    assert text.headers["content-type"].startswith("text/plain") and "billing" in text.text.lower()
    body = verbose.json()
    assert body["task"] == "transcribe" and body["language"] == "en"
    assert body["duration"] == pytest.approx(len(english_16k[SENTENCE]) / 32000, abs=0.01)
    assert body["segments"] and body["segments"][0]["end"] > body["segments"][0]["start"]


@pytest.mark.parametrize(
    ("kwargs", "status", "fragment"),
    [
        ({"files": {"file": ("a.wav", b"RIFF nonsense")}}, 400, "WAV"),
        ({"data": {"model": "whisper-1"}}, 415, "content type"),
        (
            {
                "files": {"file": ("a.wav", pcm16_to_wav(b"\0\0" * 1600, 16000))},
                "data": {"response_format": "srt"},
            },
            400,
            "response_format",
        ),
        (
            {
                "files": {"file": ("a.wav", pcm16_to_wav(b"\0\0" * 1600, 16000))},
                "data": {"language": "english!"},
            },
            400,
            "language",
        ),
        (
            {"content": b"\x00\x00" * 100, "headers": {"Content-Type": "audio/pcm"}},
            400,
            "sample_rate",
        ),
        (
            {
                "content": b"\x00\x00" * 100,
                "headers": {"Content-Type": "audio/pcm"},
                "params": {"sample_rate": 1234},
            },
            400,
            "out of range",
        ),
        (
            {
                "content": b"\x00\x00" * 100,
                "headers": {"Content-Type": "audio/pcm"},
                "params": {"sample_rate": "fast"},
            },
            400,
            "integer",
        ),
        (
            {
                "content": b"\x00" * 101,
                "headers": {"Content-Type": "audio/pcm"},
                "params": {"sample_rate": 16000},
            },
            400,
            "even",
        ),
        (
            {
                "content": b"\x00\x00" * (16000 * 21),
                "headers": {"Content-Type": "audio/pcm"},
                "params": {"sample_rate": 16000},
            },
            413,
            "longer than",
        ),
    ],
)
async def test_bad_requests_get_openai_errors(
    whisper_server, english_16k, kwargs, status, fragment
):
    async with httpx.AsyncClient(base_url=whisper_server.http, timeout=60) as http:
        resp = await http.post("/v1/audio/transcriptions", **kwargs)
        assert resp.status_code == status, resp.text
        err = resp.json()["error"]
        assert fragment in err["message"] and err["code"] == status
        ok = await http.post(
            "/v1/audio/transcriptions",
            params={"sample_rate": 16000},
            content=english_16k[SENTENCE],
            headers={"Content-Type": "audio/pcm"},
        )
    assert "billing" in ok.json()["text"].lower()


async def test_oversized_chunked_body_is_refused(whisper_server):
    async def body():
        for _ in range(40):
            yield b"\x00" * 65536  # 2.6 MB, no Content-Length

    async with httpx.AsyncClient(base_url=whisper_server.http, timeout=60) as http:
        resp = await http.post(
            "/v1/audio/transcriptions",
            params={"sample_rate": 16000},
            content=body(),
            headers={"Content-Type": "audio/pcm"},
        )
    assert resp.status_code == 413 and "larger than" in resp.json()["error"]["message"]


async def test_websocket_utterances_reuse_one_connection(whisper_server, english_16k, wer):
    async with websockets.connect(f"{whisper_server.ws}/v1/audio/stream") as ws:
        await ws.send(json.dumps({"sample_rate": 16000, "language": "en", "call_id": "c-42"}))
        for text, pcm in english_16k.items():
            for i in range(0, len(pcm), 640):  # 20 ms frames
                await ws.send(pcm[i : i + 640])
            await ws.send(json.dumps({"type": "end_of_utterance"}))
            reply = json.loads(await ws.recv())
            assert reply["type"] == "transcript", reply
            assert wer(text, reply["text"]) <= 0.2, reply["text"]
            assert reply["language"] == "en"
            assert reply["duration"] == pytest.approx(len(pcm) / 32000, abs=0.01)


async def test_websocket_at_8k_after_reconfiguring(whisper_server, english_16k, wer):
    pcm = resample_pcm16(english_16k[SENTENCE], 16000, 8000)
    async with websockets.connect(f"{whisper_server.ws}/v1/audio/stream") as ws:
        await ws.send(json.dumps({"sample_rate": 8000}))
        await ws.send(pcm)
        await ws.send(json.dumps({"type": "end_of_utterance"}))
        reply = json.loads(await ws.recv())
    assert reply["type"] == "transcript" and wer(SENTENCE, reply["text"]) <= 0.2


async def test_websocket_errors_keep_the_session(whisper_server, english_16k):
    async with websockets.connect(f"{whisper_server.ws}/v1/audio/stream") as ws:
        await ws.send("not json")
        assert json.loads(await ws.recv())["type"] == "error"
        await ws.send(json.dumps({"sample_rate": 44}))
        err = json.loads(await ws.recv())
        assert err["type"] == "error" and "sample_rate" in err["message"]
        await ws.send(json.dumps({"type": "dance"}))
        assert json.loads(await ws.recv())["type"] == "error"
        # An utterance over --max-seconds (20 s) is dropped with one error at its end.
        await ws.send(b"\x00\x00" * 16000 * 15)
        await ws.send(b"\x00\x00" * 16000 * 15)
        await ws.send(json.dumps({"type": "end_of_utterance"}))
        err = json.loads(await ws.recv())
        assert err["type"] == "error" and "longer than" in err["message"]
        # ...and the same connection still transcribes the next one.
        await ws.send(english_16k[SENTENCE])
        await ws.send(json.dumps({"type": "end_of_utterance"}))
        reply = json.loads(await ws.recv())
    assert reply["type"] == "transcript" and "billing" in reply["text"].lower()


@pytest.mark.slow
async def test_full_queue_is_refused_then_service_recovers(english_16k, start_server):
    """One worker and no waiting room: concurrent requests beyond one get 503 / WS error."""
    from ai_services.whisper_service import Settings, build_app
    from voice_connector_core.models import whisper_tiny_en

    server = start_server(build_app(Settings(whisper_tiny_en(), workers=1, max_queue=0)))
    pcm = english_16k[SENTENCE]
    async with httpx.AsyncClient(base_url=server.http, timeout=60) as http:

        async def post() -> httpx.Response:
            return await http.post(
                "/v1/audio/transcriptions",
                params={"sample_rate": 16000},
                content=pcm,
                headers={"Content-Type": "audio/pcm"},
            )

        results = await asyncio.gather(*[post() for _ in range(4)])
        codes = sorted(r.status_code for r in results)
        assert codes[0] == 200 and codes[-1] == 503
        busy = next(r for r in results if r.status_code == 503).json()["error"]
        assert busy["type"] == "server_busy"
        metrics = (await http.get("/metrics")).text
        assert 'ai_service_rejected_total{service="whisper"}' in metrics
        assert (await post()).status_code == 200

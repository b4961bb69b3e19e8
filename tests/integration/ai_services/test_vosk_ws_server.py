"""The Vosk server with the real Korean model, driven like alphacep's vosk-server clients do."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest
import websockets

from ai_services.audio import resample_pcm16

pytestmark = pytest.mark.slow  # Korean model load ~2 s, decoding at RTF ~0.8
FRAME_8K = 320  # 20 ms of PCM16 at 8 kHz, one RTP packet's worth
HANGUL = re.compile(r"[\uac00-\ud7a3]")


async def recognize(url: str, pcm: bytes, frame: int, config: dict | None = None) -> list[dict]:
    """Replies for one session: config?, audio frames, then {"eof" : 1}."""
    replies = []
    async with websockets.connect(url) as ws:
        if config is not None:
            await ws.send(json.dumps({"config": config}))
        for i in range(0, len(pcm), frame):
            await ws.send(pcm[i : i + frame])
            replies.append(json.loads(await ws.recv()))
        await ws.send('{"eof" : 1}')
        replies.append(json.loads(await ws.recv()))
        with pytest.raises(websockets.ConnectionClosedOK):
            await ws.recv()
    return replies


def transcript(replies: list[dict]) -> str:
    return " ".join(r["text"] for r in replies if r.get("text")).strip()


async def test_telephony_audio_one_reply_per_frame_and_eof_closes(vosk_server, korean_8k):
    replies = await recognize(f"{vosk_server.ws}/", korean_8k, FRAME_8K)
    frames = -(-len(korean_8k) // FRAME_8K)
    assert len(replies) == frames + 1  # exactly one reply per audio frame, plus the final one
    assert all(set(r) <= {"partial", "text", "result"} for r in replies)
    assert any(r.get("partial") for r in replies[:-1])
    assert "text" in replies[-1]
    text = transcript(replies)
    assert HANGUL.search(text), text


async def test_transcript_is_stable_across_sessions(vosk_server, korean_8k):
    first, second = await asyncio.gather(
        recognize(f"{vosk_server.ws}/", korean_8k, FRAME_8K),
        recognize(f"{vosk_server.ws}/", korean_8k, FRAME_8K),
    )
    third = await recognize(f"{vosk_server.ws}/", korean_8k, FRAME_8K)
    assert transcript(first) and transcript(first) == transcript(second) == transcript(third)


async def test_config_frame_sets_rate_and_words(vosk_server, korean_8k):
    pcm16k = resample_pcm16(korean_8k, 8000, 16000)
    replies = await recognize(
        f"{vosk_server.ws}/",
        pcm16k,
        640 * 5,
        {"sample_rate": 16000, "words": True, "call_id": "c-ko"},
    )
    assert len(replies) == -(-len(pcm16k) // 3200) + 1  # the config frame gets no reply
    final = [r for r in replies if r.get("text")]
    assert final and HANGUL.search(final[-1]["text"])
    words = [w for r in final for w in r.get("result", [])]
    assert words and {"word", "start", "end", "conf"} <= set(words[0])


async def test_reset_flushes_and_keeps_the_session(vosk_server, korean_8k):
    async with websockets.connect(f"{vosk_server.ws}/") as ws:
        for _ in range(2):
            for i in range(0, len(korean_8k), 3200):
                await ws.send(korean_8k[i : i + 3200])
                await ws.recv()
            await ws.send('{"reset" : 1}')
            flushed = json.loads(await ws.recv())
            assert "text" in flushed
        await ws.send('{"eof" : 1}')
        final = json.loads(await ws.recv())
        assert final.get("text", None) == ""  # nothing left after the reset


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        ('{"eof": 1}', '{"eof" : 1}'),  # not the exact string the protocol compares
        ("hello", "bad text frame"),
        (json.dumps({"config": {"sample_rate": 3}}), "out of range"),
        (json.dumps({"config": {"phrase_list": "not a list"}}), "phrase_list"),
        (b"\x00" * (300 * 1024), "exceeds"),
    ],
)
async def test_bad_frames_get_an_error_and_the_session_continues(
    vosk_server, korean_8k, frame, fragment
):
    async with (
        websockets.connect(f"{vosk_server.ws}/") as ws,
        websockets.connect(f"{vosk_server.ws}/") as other,
    ):
        await ws.send(frame)
        err = json.loads(await ws.recv())
        assert fragment in err["error"]
        # This session still decodes, and so does another client's.
        for client in (ws, other):
            await client.send(korean_8k[:16000])
            assert set(json.loads(await client.recv())) & {"partial", "text"}
        await ws.send('{"eof" : 1}')
        assert "text" in json.loads(await ws.recv())


async def test_health_and_metrics(vosk_server):
    async with httpx.AsyncClient(base_url=vosk_server.http) as http:
        assert (await http.get("/healthz")).json()["status"] == "ok"
        ready = (await http.get("/readyz")).json()
        assert ready["status"] == "ready" and ready["load_seconds"] > 0
        metrics = (await http.get("/metrics")).text
    assert 'ai_service_model_load_seconds{service="vosk"}' in metrics
    assert 'ai_service_requests_total{endpoint="/",service="vosk",status="ok"}' in metrics


async def test_phrase_list_grammar_recognizes_the_spoken_greeting(vosk_server, korean_8k):
    """With a grammar, the espeak-ng greeting maps onto the expected Korean words."""
    phrases = ["안녕하세요", "반갑습니다", "감사합니다", "예약", "[unk]"]
    replies = await recognize(f"{vosk_server.ws}/", korean_8k, FRAME_8K, {"phrase_list": phrases})
    text = transcript(replies)
    assert "안녕하세요" in text.split(), text
    assert set(text.split()) <= set(phrases)

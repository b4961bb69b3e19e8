"""One scripted Twilio call through a real media node: its logs and metrics, end to end.

The caller is the simulated Twilio peer; the LLM is the real provider client (built by the
services factory) talking to an AI-service app over HTTP; STT and TTS are instant fakes, one of
which logs a secret on purpose.
"""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import httpx
import pytest
from loguru import logger
from pipecat.frames.frames import Frame, TranscriptionFrame
from pipecat.processors.frame_processor import FrameDirection
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import node_settings
from tests.support.fakes import FakeSTT, ToneTTS
from voice_connector.caller.twilio_caller import CallerOptions, place_call
from voice_connector.pipeline.builder import CallServices
from voice_connector.services import factory
from voice_connector_core.logs import config_secrets, setup_logging

pytestmark = pytest.mark.slow

SECRET = "tw-auth-token-5f3a9c"
CALL_SID = "CAtelemetry0000000000000000000001"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PROJECT = "vc-test-project"


class LeakySTT(FakeSTT):
    """A fake STT whose author logs the Twilio token on purpose (both logging styles)."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, TranscriptionFrame):
            logger.info(f"debug: auth_token is {SECRET}")
        await super().process_frame(frame, direction)
        if type(frame).__name__ == "VADUserStoppedSpeakingFrame":
            logger.info(f"fake STT transcribed {self.text!r} (token {SECRET})")
            logging.getLogger("leaky.client").warning("Authorization: Basic %s", SECRET)


@pytest.fixture
def json_logs(monkeypatch) -> Iterator[io.StringIO]:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buffer = io.StringIO()
    settings = node_settings(VC_TWILIO_AUTH_TOKEN=SECRET)
    setup_logging("DEBUG", "json", config_secrets(settings), stream=buffer)
    yield buffer
    logger.remove()
    logger.configure(extra={})
    logger.add(sys.stderr)
    root.handlers[:] = handlers
    root.setLevel(level)


def scrape(node) -> dict:  # type: ignore[no-untyped-def]
    """`{(sample name, sorted labels): value}` from the node's /metrics."""
    text = httpx.get(f"{node.http}/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def grew(before: dict, after: dict, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def grown_series(before: dict, after: dict, name: str) -> list[dict[str, str]]:
    """Label sets of `name` whose value went up."""
    return [
        dict(labels)
        for (sample, labels), v in after.items()
        if sample == name and v > before.get((sample, labels), 0.0)
    ]


async def test_a_call_is_correlated_in_every_log_and_counted_in_metrics(
    media_node_factory, fake_ollama, ai_service_logs, json_logs, speech, capfd
) -> None:  # type: ignore[no-untyped-def]
    settings = node_settings(
        VC_TWILIO_AUTH_TOKEN=SECRET,
        VC_TWILIO_VALIDATE_SIGNATURES="false",  # the simulated caller brings no call token
        VC_LLM_URL=fake_ollama.http,
        VC_LLM_GREETING="",
    )

    def services(call_settings, info) -> CallServices:  # type: ignore[no-untyped-def]
        llm = factory.create_llm(call_settings, info.call_id)
        return CallServices(stt=LeakySTT("when do you open"), llm=llm, tts=ToneTTS())

    node = media_node_factory(settings, services_override=services)
    before = scrape(node)
    result = await place_call(
        CallerOptions(
            audio=[speech("When do you open tomorrow?"), speech("And on Sunday?")],
            url=f"{node.ws}/twilio/stream",
            call_sid=CALL_SID,
            barge_in_after=0.5,
            wait_for_greeting=False,
            answer_timeout=30,
            headers={"traceparent": f"00-{TRACE_ID}-b7ad6b7169203331-01"},
        )
    )
    assert result.error == "", result.error
    after = scrape(node)

    entries = [json.loads(line) for line in json_logs.getvalue().splitlines() if line.strip()]
    in_call = [e for e in entries if e.get("logging.googleapis.com/labels", {}).get("call_id")]
    assert in_call, "no log line named the call"
    for entry in in_call:
        assert entry["logging.googleapis.com/labels"] == {
            "call_id": CALL_SID, "flavor": "default", "transport": "twilio",
        }  # fmt: skip
        assert {"severity", "message", "time"} <= entry.keys()
        assert entry["logging.googleapis.com/trace"] == f"projects/{PROJECT}/traces/{TRACE_ID}"
    loggers = {e["logger"] for e in in_call}
    # connector (pipeline builder), Pipecat itself, the fake service, the provider client (httpx).
    assert "voice_connector.pipeline.builder" in loggers
    assert any(name.startswith("pipecat.") for name in loggers), loggers
    assert any("fake STT transcribed" in e["message"] for e in in_call)
    assert any(e["logger"] == "httpx" and "/api/chat" in e["message"] for e in in_call)
    every_pipecat_line = [e for e in entries if e["logger"].startswith("pipecat.")]
    assert all(e in in_call for e in every_pipecat_line)

    # The AI service adopted the id the provider client sent (X-Call-Id).
    chats = [r for r in ai_service_logs.records if r.getMessage().startswith("chat request")]
    assert chats and {r.call_id for r in chats} == {CALL_SID}  # type: ignore[attr-defined]

    # The token never leaves the process, although the STT logged it three ways.
    captured = capfd.readouterr()
    for text in (json_logs.getvalue(), captured.out, captured.err):
        assert SECRET not in text

    labels = {"transport": "twilio", "flavor": "default"}
    assert grew(before, after, "voice_connector_calls_started_total", **labels) == 1
    (ended,) = grown_series(before, after, "voice_connector_calls_ended_total")
    outcome = ended["outcome"]
    assert ended == {**labels, "outcome": outcome} and outcome == "caller_hangup"
    duration = {"transport": "twilio", "outcome": outcome}
    assert grew(before, after, "voice_connector_call_duration_seconds_count", **duration) == 1
    assert grew(before, after, "voice_connector_turns_total", **labels) >= 2
    assert grew(before, after, "voice_connector_barge_ins_total", **labels) >= 1
    assert grew(before, after, "voice_connector_voice_to_voice_seconds_count", **labels) >= 1
    for name, provider in (
        ("voice_connector_stt_latency_seconds_count", "faster_whisper"),
        ("voice_connector_llm_time_to_first_token_seconds_count", "ollama"),
        ("voice_connector_tts_time_to_first_audio_seconds_count", "piper"),
    ):
        assert grew(before, after, name, flavor="default", provider=provider) >= 1, name
    assert grew(before, after, "voice_connector_active_calls") == 0
    assert any(key[0] == "voice_connector_node_ready" for key in after)

"""Cloud Logging JSON lines, call correlation through tasks, trace context, secret redaction."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest
from fastapi import FastAPI
from loguru import logger
from pipecat.utils.asyncio.task_manager import TaskManager

from voice_connector_core.config import load_settings
from voice_connector_core.logs import (
    REDACTED,
    Redactor,
    TraceContextMiddleware,
    call_context,
    cloud_trace,
    config_secrets,
    env_secrets,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def lines(buffer) -> list[dict]:  # type: ignore[no-untyped-def]
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_json_lines_have_cloud_logging_fields_and_call_labels(log_capture) -> None:  # type: ignore[no-untyped-def]
    buffer = log_capture("json")
    logger.info("outside any call")
    with call_context("CA123", "sales", "twilio"):
        logger.warning("inside the call")
    outside, inside = lines(buffer)
    assert outside["severity"] == "INFO" and outside["message"] == "outside any call"
    assert "logging.googleapis.com/labels" not in outside
    assert inside["severity"] == "WARNING"
    assert inside["logging.googleapis.com/labels"] == {
        "call_id": "CA123", "flavor": "sales", "transport": "twilio",
    }  # fmt: skip
    assert inside["time"].endswith("+00:00")
    assert inside["logging.googleapis.com/sourceLocation"]["function"]


def test_exceptions_are_in_the_message_with_their_traceback(log_capture) -> None:  # type: ignore[no-untyped-def]
    buffer = log_capture("json")
    try:
        raise ValueError("bad frame")
    except ValueError:
        logger.exception("pipeline failed")
    (entry,) = lines(buffer)
    assert entry["severity"] == "ERROR"
    assert "pipeline failed" in entry["message"]
    assert "Traceback" in entry["message"] and "ValueError: bad frame" in entry["message"]


def test_console_is_the_default_and_names_the_call(log_capture) -> None:  # type: ignore[no-untyped-def]
    buffer = log_capture("console")
    with call_context("key-42", "default", "opensips"):
        logger.info("answered")
    text = buffer.getvalue()
    assert "key-42" in text and "answered" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


async def test_tasks_started_inside_a_call_inherit_its_id(log_capture) -> None:  # type: ignore[no-untyped-def]
    """Pipecat's TaskManager creates tasks with the current context: they carry the call id."""
    buffer = log_capture("json")

    async def work(what: str) -> None:
        await asyncio.sleep(0)
        logger.info(what)

    with call_context("CA-task", "default", "twilio"):
        await asyncio.create_task(work("plain task"))
        await TaskManager().create_task(work("pipecat task"), "work")
        await asyncio.to_thread(logger.info, "worker thread")
    await asyncio.create_task(work("after the call"))
    by_message = {e["message"]: e.get("logging.googleapis.com/labels", {}) for e in lines(buffer)}
    for message in ("plain task", "pipecat task", "worker thread"):
        assert by_message[message].get("call_id") == "CA-task", message
    assert "call_id" not in by_message["after the call"]


def test_standard_library_logging_goes_through_the_same_sink(log_capture) -> None:  # type: ignore[no-untyped-def]
    buffer = log_capture("json")
    with call_context("CA-httpx", "default", "twilio"):
        logging.getLogger("httpx").info("HTTP Request: POST http://ollama/api/chat 200 OK")
    (entry,) = lines(buffer)
    assert entry["logger"] == "httpx" and entry["message"].startswith("HTTP Request")
    assert entry["logging.googleapis.com/labels"]["call_id"] == "CA-httpx"


def test_known_secrets_and_credentials_never_reach_the_output(log_capture, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("VC_CALL_TOKEN_SIGNING_KEY", "sign-key-value-77")
    buffer = log_capture("json", secrets=("tw-secret-token-1",))
    logger.info("token tw-secret-token-1 and key sign-key-value-77")
    logger.bind(auth="tw-secret-token-1").info("bound as an extra field")
    logger.info("headers {'Authorization': 'Basic QUMxMjM6dHctc2VjcmV0'}")
    logger.info("GET /x?api_key=abcdef123&page=2")
    logger.info('{"auth_token": "zzz-token-value"}')
    logging.getLogger("twilio").warning("Authorization: Bearer eyJhbGciOi.payload.sig")
    try:
        raise RuntimeError("login with tw-secret-token-1 failed")
    except RuntimeError:
        logger.exception("failure")
    text = buffer.getvalue()
    for leaked in (
        "tw-secret-token-1", "sign-key-value-77", "QUMxMjM6dHctc2VjcmV0", "abcdef123",
        "zzz-token-value", "eyJhbGciOi",
    ):  # fmt: skip
        assert leaked not in text, leaked
    assert text.count(REDACTED) >= 7
    assert "page=2" in text  # only the credential goes


def test_redactor_leaves_ordinary_words_about_tokens_alone() -> None:
    redact = Redactor([])
    assert (
        redact("LLM first token: 350 ms, max_tokens=80") == "LLM first token: 350 ms, max_tokens=80"
    )
    assert redact("OpenSIPS key abc123 answered") == "OpenSIPS key abc123 answered"


def test_config_and_environment_secrets_are_collected() -> None:
    settings = load_settings(
        "cfg/voice-connector.ini",
        env={"VC_TWILIO_AUTH_TOKEN": "from-env-token", "VC_LLM_MAX_TOKENS": "4000"},
    )
    assert "from-env-token" in config_secrets(settings)
    assert "4000" not in config_secrets(settings)
    env = {"VC_TWILIO_AUTH_TOKEN": "a1b2c3d4", "VC_LLM_MAX_TOKENS": "4000", "GOOGLE_API_KEY": "k-1"}
    assert sorted(env_secrets(env)) == ["a1b2c3d4", "k-1"]


@pytest.mark.parametrize(
    ("headers", "span"),
    [
        ({"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}, "00f067aa0ba902b7"),
        ({"X-Cloud-Trace-Context": f"{TRACE_ID}/123;o=1"}, f"{123:016x}"),
    ],
)
def test_trace_context_headers_become_cloud_trace_fields(headers, span) -> None:  # type: ignore[no-untyped-def]
    fields = cloud_trace(headers, "my-project")
    assert fields["trace"] == f"projects/my-project/traces/{TRACE_ID}"
    assert fields["span_id"] == span and fields["trace_sampled"] is True
    assert cloud_trace(headers, "") == {}
    assert cloud_trace({"traceparent": "garbage"}, "my-project") == {}


async def test_requests_with_a_trace_header_log_with_the_trace(log_capture, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-project")
    buffer = log_capture("json")
    app = FastAPI()
    app.add_middleware(TraceContextMiddleware)

    @app.get("/twilio/voice")
    async def voice() -> dict[str, str]:
        logger.info("webhook")
        return {}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        await client.get("/twilio/voice", headers={"X-Cloud-Trace-Context": f"{TRACE_ID}/1;o=1"})
        await client.get("/twilio/voice")
    traced, untraced = [e for e in lines(buffer) if e["message"] == "webhook"]
    assert traced["logging.googleapis.com/trace"] == f"projects/my-project/traces/{TRACE_ID}"
    assert traced["logging.googleapis.com/trace_sampled"] is True
    assert "logging.googleapis.com/trace" not in untraced

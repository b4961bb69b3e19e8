"""The stream handshake: unsigned or forged streams are refused before any pipeline starts."""

from __future__ import annotations

import io

import httpx
import pytest
from loguru import logger

from tests.conftest import node_settings
from tests.integration.twilio.conftest import ACCOUNT_SID, AUTH_TOKEN
from tests.integration.twilio.stream_client import open_stream, signed_parameters
from tests.support.fakes import fake_services
from voice_connector.caller.twilio_caller import CallerOptions, place_call
from voice_connector_core.twilio.security import CallTokens, sign

POLICY_VIOLATION = 1008


class Pipelines:
    """services_override that counts the pipelines the node built."""

    def __init__(self) -> None:
        self.built: list[str] = []

    def __call__(self, settings, info):  # type: ignore[no-untyped-def]
        self.built.append(info.call_id)
        return fake_services()


@pytest.fixture
def pipelines() -> Pipelines:
    return Pipelines()


@pytest.fixture
def node(media_node_factory, pipelines):  # type: ignore[no-untyped-def]
    settings = node_settings(
        VC_TWILIO_VALIDATE_SIGNATURES="true",
        VC_TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        VC_TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        VC_LLM_GREETING="Hi.",
    )
    return media_node_factory(settings, services_override=pipelines)


@pytest.fixture
def log_text():  # type: ignore[no-untyped-def]
    buffer = io.StringIO()
    sink = logger.add(buffer, level="DEBUG")
    yield buffer
    logger.remove(sink)


def stream_url(node) -> str:  # type: ignore[no-untyped-def]
    return f"{node.ws}/twilio/stream"


async def test_unsigned_stream_is_refused_without_a_pipeline(node, pipelines) -> None:  # type: ignore[no-untyped-def]
    outcome = await open_stream(stream_url(node), "CA" + "0" * 32, {"caller": "+1555"})
    assert outcome.close_code == POLICY_VIOLATION
    assert not outcome.got_media
    assert pipelines.built == []
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{node.http}/calls/CA{'0' * 32}")).status_code == 404


async def test_forged_upgrade_signature_is_refused_at_the_handshake(node, pipelines) -> None:  # type: ignore[no-untyped-def]
    forged = {"X-Twilio-Signature": sign("not-the-auth-token", stream_url(node))}
    outcome = await open_stream(stream_url(node), "CA" + "1" * 32, headers=forged)
    assert outcome.handshake_status == 403
    assert pipelines.built == []


async def test_a_signed_upgrade_without_a_call_token_is_refused(node, pipelines) -> None:  # type: ignore[no-untyped-def]
    """The upgrade signature signs only the stream URL, the same for every call: replayed, it
    would open unlimited calls. Three replays of a valid signed upgrade, no pipeline."""
    headers = {"X-Twilio-Signature": sign(AUTH_TOKEN, stream_url(node))}
    for index in range(3):
        outcome = await open_stream(stream_url(node), f"CA{index:032d}", headers=headers)
        assert outcome.close_code == POLICY_VIOLATION and not outcome.got_media
    assert pipelines.built == []


async def test_a_signed_upgrade_with_a_call_token_is_accepted(node, pipelines) -> None:  # type: ignore[no-untyped-def]
    call_sid = "CA" + "6" * 32
    headers = {"X-Twilio-Signature": sign(AUTH_TOKEN, stream_url(node))}
    result = await place_call(
        CallerOptions(
            audio=[],
            url=stream_url(node),
            headers=headers,
            call_sid=call_sid,
            answer_timeout=15,
            extra_parameters=signed_parameters(AUTH_TOKEN, call_sid),
        )
    )
    assert result.error == "" and result.bot_media_messages > 0
    assert pipelines.built == [call_sid]


async def test_call_token_is_accepted_once(node, pipelines, log_text) -> None:  # type: ignore[no-untyped-def]
    call_sid = "CA" + "2" * 32
    params = signed_parameters(AUTH_TOKEN, call_sid)
    result = await place_call(
        CallerOptions(
            audio=[],
            url=stream_url(node),
            call_sid=call_sid,
            answer_timeout=15,
            extra_parameters=params,
        )
    )
    assert result.error == "" and result.bot_media_messages > 0
    replay = await open_stream(stream_url(node), call_sid, params)
    assert replay.close_code == POLICY_VIOLATION and not replay.got_media
    assert pipelines.built == [call_sid]
    assert "replay" in log_text.getvalue()
    assert params["token"] not in log_text.getvalue()
    assert AUTH_TOKEN not in log_text.getvalue()


@pytest.mark.parametrize(
    "tamper",
    ["other-call", "other-flavor", "expired", "garbage", "other-key"],
)
async def test_bad_call_tokens_are_refused(node, pipelines, tamper: str) -> None:  # type: ignore[no-untyped-def]
    call_sid = "CA" + "3" * 32
    params = signed_parameters(AUTH_TOKEN, call_sid, flavor="default")
    if tamper == "other-call":
        params = signed_parameters(AUTH_TOKEN, "CA" + "4" * 32, flavor="default")
    elif tamper == "other-flavor":
        params["flavor"] = "support"
    elif tamper == "expired":
        base = {k: v for k, v in params.items() if k != "token"}
        params["token"] = CallTokens(AUTH_TOKEN, ttl_seconds=-10).issue(call_sid, base)
    elif tamper == "garbage":
        params["token"] = "v1.not.a-token"
    else:
        params = signed_parameters("someone-elses-token", call_sid, flavor="default")
    outcome = await open_stream(stream_url(node), call_sid, params)
    assert outcome.close_code == POLICY_VIOLATION
    assert pipelines.built == []


async def test_voice_webhook_on_the_node_checks_signatures(node) -> None:  # type: ignore[no-untyped-def]
    url = f"{node.http}/twilio/voice"
    form = {
        "CallSid": "CA" + "5" * 32,
        "From": "+15550001111",
        "To": "+15550002222",
        "AccountSid": ACCOUNT_SID,
    }
    async with httpx.AsyncClient() as client:
        unsigned = await client.post(url, data=form)
        signed = await client.post(
            url, data=form, headers={"X-Twilio-Signature": sign(AUTH_TOKEN, url, form)}
        )
        partial = {k: v for k, v in form.items() if k != "CallSid"}
        incomplete = await client.post(
            url, data=partial, headers={"X-Twilio-Signature": sign(AUTH_TOKEN, url, partial)}
        )
    assert unsigned.status_code == 403
    assert signed.status_code == 200 and '<Parameter name="token"' in signed.text
    assert incomplete.status_code == 400


async def test_a_full_node_answers_the_voice_webhook_busy(media_node_factory, pipelines) -> None:  # type: ignore[no-untyped-def]
    """At capacity the webhook says busy instead of handing out a stream that would be refused."""
    settings = node_settings(
        VC_TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        VC_TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        VC_GENERAL_MAX_CALLS="1",
    )
    node = media_node_factory(settings, services_override=pipelines)
    url = f"{node.http}/twilio/voice"

    def form(sid: str) -> dict[str, str]:
        return {
            "CallSid": sid,
            "From": "+15550001111",
            "To": "+1555000222",
            "AccountSid": ACCOUNT_SID,
        }

    async def webhook(sid: str) -> str:
        data = form(sid)
        headers = {"X-Twilio-Signature": sign(AUTH_TOKEN, url, data)}
        async with httpx.AsyncClient() as client:
            response = await client.post(url, data=data, headers=headers)
        assert response.status_code == 200
        return response.text

    assert '<Parameter name="token"' in await webhook("CA" + "1" * 32)
    node.app.state.registry.active["CA-running"] = object()  # the one place is taken
    busy = await webhook("CA" + "2" * 32)
    assert "<Hangup" in busy and "<Stream" not in busy

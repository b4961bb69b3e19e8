"""Hostile voice webhooks and stream upgrades: forged, mangled and replayed signatures.

Against a node that validates, on loopback: a webhook gets TwiML only with a valid signature and
only once per call; every other request gets 400, 403 or 409, never a 500 and never a call token.
Upgrades with forged signatures are refused at the handshake.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import aiohttp
import httpx
import pytest

from media_node.app import create_app
from tests.conftest import node_settings
from tests.fuzz.app_inputs import webhook_form
from tests.fuzz.sip_media_inputs import fuzz_count, fuzz_rng
from tests.integration.twilio.hostile import node_log
from tests.support.fakes import fake_services
from tests.support.servers import ServerThread
from voice_connector_core.twilio.security import sign

AUTH_TOKEN = "tw-fuzz-token-5e2b"
ACCOUNT_SID = "AC" + "1" * 32
REFUSED = {400, 403, 409}


@pytest.fixture
def node() -> Iterator[ServerThread]:
    settings = node_settings(VC_TWILIO_AUTH_TOKEN=AUTH_TOKEN, VC_TWILIO_ACCOUNT_SID=ACCOUNT_SID)
    app = create_app(settings, services_override=lambda s, info: fake_services())
    server = ServerThread(app, node_settings=settings).start(wait_ready=False)
    yield server
    server.stop()


def signature(rng, url: str, form: dict[str, str]) -> tuple[str | None, bool]:  # type: ignore[no-untyped-def]
    """An `X-Twilio-Signature` (None: no header) and whether it is the valid one."""
    kind = rng.random()
    if kind < 0.4:
        return sign(AUTH_TOKEN, url, form), True
    if kind < 0.5:
        return sign(AUTH_TOKEN, "https://elsewhere.example.com/twilio/voice", form), False
    if kind < 0.6:
        return sign(AUTH_TOKEN, url, {**form, "To": "+19990000000"}), False
    if kind < 0.7:
        return sign("another-auth-token", url, form), False
    if kind < 0.8:
        return base64.b64encode(rng.randbytes(rng.choice((0, 1, 20, 4000)))).decode(), False
    if kind < 0.9:
        return rng.choice(("", " ", "=" * 50, "é" * 10)), False
    return None, False


async def test_only_a_valid_first_webhook_gets_a_call_token(node) -> None:  # type: ignore[no-untyped-def]
    rng, seed = fuzz_rng("twilio-webhooks")
    url = f"{node.http}/twilio/voice"
    answered: list[tuple[dict[str, str], str]] = []
    with node_log() as log:
        async with httpx.AsyncClient() as client:
            for index in range(fuzz_count(300)):
                form = webhook_form(rng, index)
                value, valid = signature(rng, url, form)
                headers = {} if value is None else {"X-Twilio-Signature": value}
                try:
                    response = await client.post(url, data=form, headers=headers)
                except (httpx.LocalProtocolError, UnicodeEncodeError):
                    continue  # a header value httpx itself will not send
                status = response.status_code
                assert status == 200 or status in REFUSED, f"seed {seed}, input {index}: {status}"
                if status == 200:
                    assert valid, f"seed {seed}, input {index}: unsigned webhook answered"
                    answered.append((form, value or ""))
                else:
                    assert '<Parameter name="token"' not in response.text
            for form, value in answered[:50]:  # exact replays of answered webhooks
                replay = await client.post(url, data=form, headers={"X-Twilio-Signature": value})
                assert replay.status_code == 409, f"seed {seed}: a replay was answered"
        text = log.getvalue()
    assert answered, f"seed {seed}: no valid webhook in the run"
    assert "Traceback" not in text


async def test_forged_upgrade_signatures_are_refused_at_the_handshake(node) -> None:  # type: ignore[no-untyped-def]
    rng, seed = fuzz_rng("twilio-upgrades")
    url = f"{node.ws}/twilio/stream"
    async with aiohttp.ClientSession() as session:
        for index in range(fuzz_count(40)):
            value, valid = signature(rng, url.replace("ws://", "http://"), {})
            if value is None or valid or not value.isascii() or not value.strip():
                continue
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(url, headers={"X-Twilio-Signature": value})
            assert refused.value.status == 403, f"seed {seed}, input {index}"

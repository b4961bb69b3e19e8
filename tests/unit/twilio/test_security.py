"""Signatures over public URLs, and call tokens: bound, expiring, single use."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import Headers

from voice_connector_core.twilio.security import (
    CallTokens,
    ReplayGuard,
    public_url,
    sign,
    valid_signature,
)

TOKEN = "unit-auth-token-1234"
PARAMS = {"flavor": "support", "caller": "+15550001111", "called": "+18005550000"}


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_public_url_uses_forwarded_scheme_and_host() -> None:
    headers = Headers(
        {
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "hook.example.com",
            "Host": "10.0.0.7:8080",
        }
    )
    url = public_url(
        scheme="http", host="10.0.0.7:8080", path="/twilio/voice", query="a=1", headers=headers
    )
    assert url == "https://hook.example.com/twilio/voice?a=1"


def test_public_url_first_of_chained_proxies_and_websocket_scheme() -> None:
    headers = Headers({"X-Forwarded-Proto": "https, http", "Host": "media.example.com"})
    url = public_url(scheme="ws", host="x", path="/twilio/stream", headers=headers, websocket=True)
    assert url == "wss://media.example.com/twilio/stream"


def test_public_url_without_proxy_is_what_the_server_saw() -> None:
    url = public_url(scheme="http", host="127.0.0.1:8093", path="/", headers=Headers())
    assert url == "http://127.0.0.1:8093/"


def test_signature_roundtrip_and_tampering() -> None:
    url = "https://hook.example.com/twilio/voice"
    form = {"CallSid": "CA1", "To": "+1800"}
    signature = sign(TOKEN, url, form)
    assert valid_signature(TOKEN, url, form, signature)
    assert not valid_signature(TOKEN, url, {**form, "To": "+1900"}, signature)
    assert not valid_signature(TOKEN, url.replace("https", "http"), form, signature)
    assert not valid_signature("other-token", url, form, signature)
    assert not valid_signature(TOKEN, url, form, None)
    assert not valid_signature("", url, form, signature)


def test_token_is_bound_to_call_and_parameters() -> None:
    tokens = CallTokens(TOKEN)
    token = tokens.issue("CA1", PARAMS)
    assert tokens.check(token, "CA1", PARAMS).ok
    assert tokens.check(token, "CA2", PARAMS).reason == "bad token signature"
    assert tokens.check(token, "CA1", {**PARAMS, "flavor": "default"}).reason == (
        "bad token signature"
    )
    assert CallTokens("other").check(token, "CA1", PARAMS).reason == "bad token signature"
    assert TOKEN not in token


def test_outbound_token_without_call_sid_fits_any_call() -> None:
    tokens = CallTokens(TOKEN)
    assert tokens.check(tokens.issue("", PARAMS), "CAwhatever", PARAMS).ok


def test_token_expires() -> None:
    clock = Clock()
    tokens = CallTokens(TOKEN, ttl_seconds=60, clock=clock)
    token = tokens.issue("CA1", PARAMS)
    clock.now += 61
    assert tokens.check(token, "CA1", PARAMS).reason == "token expired"


@pytest.mark.parametrize(
    "token", ["", "v1", "v1.x.y.z", "v2.1.n.m", "v1.99999999999.nonce.é", "a.b.c.d.e", None, 7]
)
def test_malformed_tokens_are_refused_not_crashing(token: object) -> None:
    check = CallTokens(TOKEN).check(token, "CA1", PARAMS)  # type: ignore[arg-type]
    assert not check.ok


def test_replay_guard_accepts_a_nonce_once_and_forgets_expired_ones() -> None:
    clock = Clock()
    guard = ReplayGuard(clock=clock)
    assert guard.use("n1", clock.now + 10)
    assert not guard.use("n1", clock.now + 10)
    clock.now += 11
    assert guard.use("n2", clock.now + 10)
    assert len(guard._used) == 1  # n1 was forgotten once expired

"""The pieces behind the Twilio hardening: defaults, proxies, replay memory, pending and audio
bounds, bounded JSON."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from voice_connector.transports.twilio.messages import InboundBudget
from voice_connector.transports.twilio.provider import PendingStreams, TwilioProvider
from voice_connector_core import untrusted_json
from voice_connector_core.config import load_settings
from voice_connector_core.netaccess import Networks, client_address
from voice_connector_core.twilio.security import public_url


@pytest.mark.parametrize(
    ("env", "validating"),
    [
        ({}, False),
        ({"VC_TWILIO_AUTH_TOKEN": "tok-123456"}, True),
        ({"VC_TWILIO_AUTH_TOKEN": "tok-123456", "VC_TWILIO_VALIDATE_SIGNATURES": "false"}, False),
        ({"VC_TWILIO_AUTH_TOKEN": "tok-123456", "VC_TWILIO_VALIDATE_SIGNATURES": "true"}, True),
    ],
)
def test_signatures_are_validated_whenever_an_auth_token_is_set(env, validating) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings("cfg/voice-connector.ini", env=env)
    assert settings.twilio.validate_signatures is validating


def test_networks_and_client_address_behind_proxies() -> None:
    proxies = Networks(["10.0.0.0/8", "::1/128"])
    assert "10.1.2.3" in proxies and "::ffff:10.1.2.3" in proxies and "::1" in proxies
    assert "192.0.2.1" not in proxies and "not-an-ip" not in proxies and None not in proxies
    headers = Headers({"x-forwarded-for": "1.2.3.4, 192.0.2.9, 10.0.0.7"})
    assert client_address("10.0.0.1", headers, proxies) == "192.0.2.9"  # first untrusted hop
    assert client_address("192.0.2.50", headers, proxies) == "192.0.2.50"  # not from a proxy
    assert client_address("10.0.0.1", Headers({}), proxies) == "10.0.0.1"


def test_forwarded_headers_are_used_only_when_trusted() -> None:
    headers = Headers({"host": "10.0.0.5:8080", "x-forwarded-host": "evil.example",
                       "x-forwarded-proto": "https"})  # fmt: skip
    common = {"scheme": "http", "host": "10.0.0.5:8080", "path": "/twilio/voice"}
    assert public_url(**common, headers=headers) == "https://evil.example/twilio/voice"
    untrusted = public_url(**common, headers=headers, trust_forwarded=False)
    assert untrusted == "http://10.0.0.5:8080/twilio/voice"


def test_webhook_replays_are_caught_by_another_worker(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings("cfg/voice-connector.ini", env={"VC_TWILIO_AUTH_TOKEN": "tok-1234"})
    one = TwilioProvider(settings, shared_dir=tmp_path)
    two = TwilioProvider(settings, shared_dir=tmp_path)  # another worker, same node
    form = {"CallSid": "CA" + "1" * 32}
    assert one._first_delivery(form, Headers({"i-twilio-idempotency-token": "abc"}))
    assert not two._first_delivery(form, Headers({}))  # same CallSid
    other = {"CallSid": "CA" + "2" * 32}
    assert not two._first_delivery(other, Headers({"i-twilio-idempotency-token": "abc"}))
    assert two._first_delivery({"CallSid": "CA" + "3" * 32}, Headers({}))


def test_pending_streams_are_counted_per_source() -> None:
    pending = PendingStreams(limit=2)
    assert pending.claim("a") and pending.claim("a") and not pending.claim("a")
    assert pending.claim("b")
    pending.release("a")
    assert pending.claim("a")
    for source in ("a", "a", "b"):
        pending.release(source)
    assert pending.counts == {}


def test_inbound_audio_is_bounded_to_real_time_plus_the_lead() -> None:
    now = [0.0]
    budget = InboundBudget(lead_seconds=2.0, clock=lambda: now[0])
    taken = sum(budget.take(0.2) for _ in range(1000))  # a burst: only the lead passes
    assert taken == 10
    now[0] += 1.0  # one second later: one more second of audio
    assert sum(budget.take(0.125) for _ in range(100)) == 8
    now[0] += 100.0  # a long silence does not bank more than the lead
    assert sum(budget.take(0.2) for _ in range(100)) == 10


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[" * 60_000, "too-deep"),
        ('{"a": "' + "[" * 100 + '"}', None),  # brackets inside a string are not nesting
        ('"\\"\\"' * 10_000, "not-json"),
        ('{"x": 1e999}', "non-finite-number"),
        ('{"x": Infinity}', "non-finite-number"),
        ("1" * 5_000, "not-json"),
        ("x" * 70_000, "too-large"),
    ],
    ids=["deep", "brackets-in-string", "unterminated", "1e999", "infinity", "huge-int", "large"],
)
def test_untrusted_json_refuses_before_or_while_parsing(text: str, reason: str | None) -> None:
    if reason is None:
        assert untrusted_json.loads(text, 65_536) == {"a": "[" * 100}
        return
    with pytest.raises(untrusted_json.BadJSON) as refused:
        untrusted_json.loads(text, 65_536)
    assert refused.value.reason == reason


def test_clients_send_the_private_token_from_the_environment() -> None:
    from voice_connector_core.netaccess import private_headers

    assert private_headers({}) == {}
    assert private_headers({"VC_GENERAL_PRIVATE_TOKEN": "t0k"}) == {"Authorization": "Bearer t0k"}

"""`outbound_call`: bearer-authenticated, creates the call by REST with `<Connect><Stream>`."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.functions.conftest import ACCOUNT_SID, AUTH_TOKEN
from voice_connector_core.twilio.security import CallTokens

BEARER = "outbound-secret-5e6f7a8b9c"
REQUEST = {"to": "+15559876543", "from": "+15551230000"}


@pytest.fixture
def outbound(env, rest):  # type: ignore[no-untyped-def]
    double, server = rest
    env.setenv("VC_TWILIO_API_BASE_URL", server.http)
    env.setenv("OUTBOUND_CALL_TOKEN", BEARER)
    return double


def call(client, body=REQUEST, token: str | None = BEARER):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.post("/", json=body, headers=headers)


def test_call_is_created_into_the_media_stream(outbound, function_client, media_node) -> None:  # type: ignore[no-untyped-def]
    response = call(function_client("outbound_call"), {**REQUEST, "flavor": "support"})
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert body["call_sid"].startswith("CA") and body["status"] == "queued"
    (request,) = outbound.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
    assert request.authorized
    assert request.form["To"] == REQUEST["to"] and request.form["From"] == REQUEST["from"]
    stream = ET.fromstring(request.form["Twiml"]).find("./Connect/Stream")
    assert stream is not None
    assert stream.get("url") == f"ws://127.0.0.1:{media_node.port}/twilio/stream"
    params = {p.get("name"): p.get("value") for p in stream}
    assert params["flavor"] == "support" and params["called"] == REQUEST["to"]
    # Signed before Twilio named the call: valid for whichever call SID presents it.
    assert CallTokens(AUTH_TOKEN).check(params["token"], body["call_sid"], params).ok


@pytest.mark.parametrize("token", [None, "", "wrong", BEARER + "x", BEARER[:-1]])
def test_wrong_or_missing_bearer_is_401(outbound, function_client, token) -> None:  # type: ignore[no-untyped-def]
    response = call(function_client("outbound_call"), token=token)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert outbound.requests == []


def test_disabled_without_a_configured_token(outbound, function_client, env) -> None:  # type: ignore[no-untyped-def]
    env.delenv("OUTBOUND_CALL_TOKEN")
    assert call(function_client("outbound_call")).status_code == 503
    assert outbound.requests == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"to": "+15559876543"},
        {"to": "5559876543", "from": "+15551230000"},
        {"to": "+1555<script>", "from": "+15551230000"},
        {**REQUEST, "flavor": "no-such-flavor"},
    ],
)
def test_bad_requests_are_400(outbound, function_client, body) -> None:  # type: ignore[no-untyped-def]
    assert call(function_client("outbound_call"), body).status_code == 400
    assert outbound.requests == []


def test_twilio_refusal_is_502(outbound, function_client, env) -> None:  # type: ignore[no-untyped-def]
    env.setenv("VC_TWILIO_AUTH_TOKEN", "token-twilio-does-not-know")
    response = call(function_client("outbound_call"))
    assert response.status_code == 502
    assert "20003" in response.get_data(as_text=True)


def test_no_healthy_media_node_is_503(outbound, function_client, env) -> None:  # type: ignore[no-untyped-def]
    env.setenv("VC_GENERAL_PUBLIC_URL", "")
    assert call(function_client("outbound_call")).status_code == 503
    assert outbound.requests == []


def test_no_secret_in_logs(outbound, function_client, log_text, env) -> None:  # type: ignore[no-untyped-def]
    client = function_client("outbound_call")
    call(client)
    call(client, token="wrong")
    env.setenv("VC_TWILIO_AUTH_TOKEN", "token-twilio-does-not-know")
    call(client)
    text = log_text.getvalue()
    for secret in (BEARER, AUTH_TOKEN, "token-twilio-does-not-know"):
        assert secret not in text


def test_oversized_body_is_413(outbound, function_client) -> None:  # type: ignore[no-untyped-def]
    response = call(function_client("outbound_call"), {**REQUEST, "note": "x" * 200_000})
    assert response.status_code == 413
    assert outbound.requests == []

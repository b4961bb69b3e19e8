"""`twilio_voice`: signed webhooks get TwiML connecting to the media node; forgeries get 403."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.functions.conftest import AUTH_TOKEN, readyz_app
from tests.support.servers import ServerThread
from voice_connector_core.twilio.security import CallTokens, sign

URL = "http://localhost/"
FORM = {
    "CallSid": "CA" + "a" * 32,
    "AccountSid": "AC" + "2" * 32,
    "From": "+15550001111",
    "To": "+18005550000",
    "CallStatus": "ringing",
    "Direction": "inbound",
}


def post(client, form=FORM, signature: str | None = "auto", url: str = URL, headers=None):  # type: ignore[no-untyped-def]
    headers = dict(headers or {})
    if signature == "auto":
        signature = sign(AUTH_TOKEN, url, form)
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    return client.post("/", data=form, headers=headers)


def stream_of(xml: str) -> tuple[ET.Element, dict[str, str]]:
    """The `<Stream>` of `<Response><Connect><Stream>` and its `<Parameter>`s."""
    root = ET.fromstring(xml)
    assert root.tag == "Response"
    (connect,) = list(root)
    assert connect.tag == "Connect"
    (stream,) = list(connect)
    assert stream.tag == "Stream"
    params = {p.get("name"): p.get("value") for p in stream}
    assert all(p.tag == "Parameter" for p in stream)
    return stream, params


def test_signed_call_is_connected_to_the_media_node(env, function_client, media_node) -> None:  # type: ignore[no-untyped-def]
    response = post(function_client("twilio_voice"))
    assert response.status_code == 200
    assert response.mimetype == "application/xml"
    stream, params = stream_of(response.get_data(as_text=True))
    assert stream.get("url") == f"ws://127.0.0.1:{media_node.port}/twilio/stream"
    assert params["flavor"] == "support"  # the shipped INI: ^\+?1800 → support
    assert params["caller"] == FORM["From"] and params["called"] == FORM["To"]
    check = CallTokens(AUTH_TOKEN).check(params["token"], FORM["CallSid"], params)
    assert check.ok, check.reason


@pytest.mark.parametrize(
    "signature", [None, "", "bm90IGEgc2lnbmF0dXJl", sign("another-token", URL, FORM)]
)
def test_missing_or_forged_signature_is_403(env, function_client, signature) -> None:  # type: ignore[no-untyped-def]
    response = post(function_client("twilio_voice"), signature=signature)
    assert response.status_code == 403
    assert "<Response" not in response.get_data(as_text=True)


def test_tampered_form_is_403(env, function_client) -> None:  # type: ignore[no-untyped-def]
    signature = sign(AUTH_TOKEN, URL, FORM)
    response = post(
        function_client("twilio_voice"), form={**FORM, "To": "+19990000000"}, signature=signature
    )
    assert response.status_code == 403


def test_signature_over_the_public_url_behind_a_proxy(env, function_client) -> None:  # type: ignore[no-untyped-def]
    public = "https://twilio-voice-abc123-uc.a.run.app/"
    proxy = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "twilio-voice-abc123-uc.a.run.app"}
    signature = sign(AUTH_TOKEN, public, FORM)
    client = function_client("twilio_voice")
    assert post(client, signature=signature, headers=proxy).status_code == 200
    # Without the proxy headers the same signature does not match the internal URL.
    assert post(client, signature=signature).status_code == 403


def test_explicit_webhook_url_wins(env, function_client) -> None:  # type: ignore[no-untyped-def]
    public = "https://voice.example.com/hooks/voice"
    env.setenv("TWILIO_WEBHOOK_URL", public)
    response = post(function_client("twilio_voice"), signature=sign(AUTH_TOKEN, public, FORM))
    assert response.status_code == 200


def test_missing_form_fields_are_400(env, function_client) -> None:  # type: ignore[no-untyped-def]
    form = {k: v for k, v in FORM.items() if k != "To"}
    response = post(function_client("twilio_voice"), form=form)
    assert response.status_code == 400
    assert "To" in response.get_data(as_text=True)


def test_other_account_is_403(env, function_client) -> None:  # type: ignore[no-untyped-def]
    response = post(function_client("twilio_voice"), form={**FORM, "AccountSid": "AC" + "9" * 32})
    assert response.status_code == 403


def say_and_hangup(xml: str) -> str:
    root = ET.fromstring(xml)
    assert [child.tag for child in root] == ["Say", "Hangup"]
    return root[0].text or ""


def test_unhealthy_media_node_gets_an_apology(env, function_client) -> None:  # type: ignore[no-untyped-def]
    sick = ServerThread(readyz_app(503)).start(wait_ready=False)
    try:
        env.setenv("VC_GENERAL_PUBLIC_URL", sick.http)
        response = post(function_client("twilio_voice"))
    finally:
        sick.stop()
    assert response.status_code == 200
    assert "Sorry" in say_and_hangup(response.get_data(as_text=True))


def test_no_media_node_configured_gets_an_apology(env, function_client) -> None:  # type: ignore[no-untyped-def]
    env.setenv("VC_GENERAL_PUBLIC_URL", "")
    response = post(function_client("twilio_voice"))
    assert say_and_hangup(response.get_data(as_text=True))


def test_unreachable_media_node_gets_an_apology(env, function_client) -> None:  # type: ignore[no-untyped-def]
    from tests.support.servers import free_port

    env.setenv("VC_GENERAL_PUBLIC_URL", f"http://127.0.0.1:{free_port()}")
    response = post(function_client("twilio_voice"))
    assert say_and_hangup(response.get_data(as_text=True))


def test_without_validation_unsigned_webhooks_are_served(env, function_client) -> None:  # type: ignore[no-untyped-def]
    env.setenv("VC_TWILIO_VALIDATE_SIGNATURES", "false")
    assert post(function_client("twilio_voice"), signature=None).status_code == 200


def test_get_is_405(env, function_client) -> None:  # type: ignore[no-untyped-def]
    assert function_client("twilio_voice").get("/").status_code == 405


def test_no_secret_in_logs(env, function_client, log_text) -> None:  # type: ignore[no-untyped-def]
    client = function_client("twilio_voice")
    post(client)
    post(client, signature="forged")
    post(client, form={"CallSid": "CAx"})
    text = log_text.getvalue()
    assert "refused" in text
    assert AUTH_TOKEN not in text


def test_oversized_body_is_413_and_nothing_crashes(env, function_client) -> None:  # type: ignore[no-untyped-def]
    client = function_client("twilio_voice")
    huge = {**FORM, "Padding": "x" * 200_000}
    assert post(client, form=huge).status_code == 413
    assert post(client).status_code == 200

"""Twilio's voice webhook, framework-neutral: check the request, answer with TwiML.

Used by the media node's `POST /twilio/voice` and by the `twilio_voice` Cloud Function, so both
answer identically: validate `X-Twilio-Signature`, pick the flavor for the called number, and
connect the call to the media node's stream with the `<Parameter>`s (flavor, caller, called and a
signed call token), or refuse politely when no media node can take it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from voice_connector_core.config import Settings
from voice_connector_core.config.flavors import select_flavor
from voice_connector_core.twilio.security import (
    TOKEN_PARAMETER,
    CallTokens,
    valid_signature,
)
from voice_connector_core.twilio.twiml import busy_twiml, connect_twiml

VOICE_FIELDS = ("CallSid", "From", "To")
"""Form fields every Twilio voice webhook carries; without them the request is not Twilio's."""
STATUS_FIELDS = ("CallSid", "CallStatus")


@dataclass(frozen=True)
class Rejection:
    """Why a webhook request is refused, as an HTTP status and a short, secret-free text."""

    status: int
    reason: str


def check_request(
    settings: Settings,
    url: str,
    form: Mapping[str, str],
    signature: str | None,
    required: tuple[str, ...],
) -> Rejection | None:
    """None when the request may be served; else 403 (not Twilio's) or 400 (fields missing)."""
    twilio = settings.twilio
    if twilio.validate_signatures:
        token = twilio.auth_token.get_secret_value()
        if not signature:
            return Rejection(403, "missing X-Twilio-Signature")
        if not valid_signature(token, url, form, signature):
            return Rejection(403, "invalid X-Twilio-Signature")
    account = form.get("AccountSid", "")
    if twilio.account_sid and account and account != twilio.account_sid:
        return Rejection(403, "request for another account")
    missing = [name for name in required if not form.get(name)]
    if missing:
        return Rejection(400, f"missing form fields: {', '.join(missing)}")
    return None


def stream_parameters(
    settings: Settings, call_sid: str, flavor: str, caller: str, called: str
) -> dict[str, str]:
    """The `<Parameter>`s of a stream, with a call token when an auth token is configured."""
    params = {"flavor": flavor, "caller": caller, "called": called}
    auth_token = settings.twilio.auth_token.get_secret_value()
    if auth_token:
        params[TOKEN_PARAMETER] = CallTokens(auth_token).issue(call_sid, params)
    return params


async def answer(settings: Settings, form: Mapping[str, str], stream_url: str | None) -> str:
    """TwiML for an incoming call: `<Connect><Stream>` to `stream_url`, or `<Say>`+`<Hangup>`."""
    if stream_url is None:
        return busy_twiml()
    called = form.get("To", "")
    flavor = await select_flavor(settings, called)
    call_sid, caller = form.get("CallSid", ""), form.get("From", "")
    params = stream_parameters(settings, call_sid, flavor, caller, called)
    return connect_twiml(stream_url, params)

"""The Twilio REST client (call control, outbound calls); light enough for the Cloud Functions."""

from __future__ import annotations

from twilio.rest import Client

from voice_connector_core.config.schema import TwilioSettings


def rest_client(settings: TwilioSettings) -> Client:
    """The Twilio REST client; `api_base_url` points it at a local double in tests."""
    client = Client(settings.account_sid, settings.auth_token.get_secret_value())
    if settings.api_base_url:
        client.api.base_url = settings.api_base_url.rstrip("/")
    return client

"""Cloud Function `twilio_voice`: Twilio's voice webhook, answering with TwiML.

Checks `X-Twilio-Signature` over the public URL (rebuilt behind Google's front end), picks the
call's flavor from the called number, and connects the call to the media node's stream with the
`<Parameter>`s the node needs (flavor, caller, called, a signed call token). When no media node is
configured, or its `/readyz` does not answer 200 quickly, the caller hears an apology instead.
"""

from __future__ import annotations

import asyncio

import functions_framework
from flask import Request, Response
from loguru import logger

from voice_connector_core.twilio import cloud, webhook


@functions_framework.http
def twilio_voice(request: Request) -> Response:
    """POST form from Twilio → TwiML (`application/xml`); 403 forged, 400 incomplete."""
    checked = cloud.signed_webhook(request, "voice webhook", webhook.VOICE_FIELDS)
    if checked.refusal is not None:
        reason, status = checked.refusal
        return Response(reason, status=status, mimetype="text/plain")
    settings, form = checked.settings, checked.form
    assert settings is not None
    call_log = logger.bind(call_id=form.get("CallSid", "-"))
    stream_url = cloud.media_stream_url(settings)
    if stream_url is None:
        call_log.warning("no healthy media node: the caller hears an apology")
    xml = asyncio.run(webhook.answer(settings, form, stream_url))
    call_log.info("voice webhook answered" + (" (stream)" if stream_url else " (busy)"))
    return Response(xml, status=200, mimetype="application/xml")

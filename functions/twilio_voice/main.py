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

from voice_connector.config import ConfigError, load_settings
from voice_connector.transports.twilio import cloud, webhook
from voice_connector.transports.twilio.security import SIGNATURE_HEADER


@functions_framework.http
def twilio_voice(request: Request) -> Response:
    """POST form from Twilio → TwiML (`application/xml`); 403 forged, 400 incomplete."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        logger.error(f"twilio_voice: configuration invalid: {exc}")
        return Response("configuration invalid", status=500, mimetype="text/plain")
    cloud.init_logging(settings)
    cloud.limit_body(request)
    if request.method != "POST":
        return Response("POST only", status=405, mimetype="text/plain")
    form = request.form.to_dict()
    rejection = webhook.check_request(
        settings,
        cloud.webhook_url(request),
        form,
        request.headers.get(SIGNATURE_HEADER),
        webhook.VOICE_FIELDS,
    )
    call_log = logger.bind(call_id=form.get("CallSid", "-"))
    if rejection is not None:
        call_log.warning(f"voice webhook refused: {rejection.reason}")
        return Response(rejection.reason, status=rejection.status, mimetype="text/plain")
    stream_url = cloud.media_stream_url(settings)
    if stream_url is None:
        call_log.warning("no healthy media node: the caller hears an apology")
    xml = asyncio.run(webhook.answer(settings, form, stream_url))
    call_log.info("voice webhook answered" + (" (stream)" if stream_url else " (busy)"))
    return Response(xml, status=200, mimetype="application/xml")

"""Cloud Function `twilio_status`: Twilio's call status callback, logged as the call's lifecycle.

Each callback (initiated, ringing, answered/in-progress, completed, busy, failed, no-answer) is one
structured log line labelled with the call SID, so the call's whole story (webhook, media node,
status) is one Cloud Logging query on `labels.call_id`. Signature-checked like the voice webhook.
"""

from __future__ import annotations

import functions_framework
from flask import Request, Response
from loguru import logger

from voice_connector_core.twilio import cloud, webhook

LOGGED_FIELDS = {
    "CallStatus": "status",
    "Direction": "direction",
    "From": "caller",
    "To": "called",
    "CallDuration": "duration_seconds",
    "SequenceNumber": "sequence",
    "Timestamp": "timestamp",
    "SipResponseCode": "sip_response_code",
    "ErrorCode": "error_code",
}
"""Status callback fields kept in the log entry (no signature, no account data)."""


@functions_framework.http
def twilio_status(request: Request) -> Response:
    """POST form from Twilio → 204 after logging; 403 forged, 400 incomplete."""
    checked = cloud.signed_webhook(request, "status callback", webhook.STATUS_FIELDS)
    if checked.refusal is not None:
        reason, status = checked.refusal
        return Response(reason, status=status, mimetype="text/plain")
    form = checked.form
    fields = {name: form[key] for key, name in LOGGED_FIELDS.items() if form.get(key)}
    logger.bind(call_id=form["CallSid"], **fields).info(
        f"call {form['CallSid']} {form['CallStatus']}"
    )
    return Response(status=204)

"""Cloud Function `outbound_call`: place a call through Twilio's REST API into the media node.

Authenticated with a bearer token shared with the caller of this function (env
`OUTBOUND_CALL_TOKEN`, compared in constant time). The call is created with inline TwiML
`<Connect><Stream>` to the media node, so the callee talks to the same pipeline as inbound callers.

    POST {"to": "+15551234567", "from": "+15557654321", "flavor": "support"}
    Authorization: Bearer <OUTBOUND_CALL_TOKEN>
    → 201 {"call_sid": "CA...", "status": "queued"}
"""

from __future__ import annotations

import asyncio
import hmac
import os
import re
from typing import Any

import functions_framework
from flask import Request, Response, jsonify
from loguru import logger
from twilio.base.exceptions import TwilioRestException

from voice_connector_core.config import ConfigError, Settings, load_settings
from voice_connector_core.config.flavors import select_flavor
from voice_connector_core.twilio import cloud, webhook
from voice_connector_core.twilio.rest import rest_client
from voice_connector_core.twilio.twiml import connect_twiml

TOKEN_ENV = "OUTBOUND_CALL_TOKEN"
FROM_ENV = "OUTBOUND_FROM_NUMBER"
STATUS_CALLBACK_ENV = "STATUS_CALLBACK_URL"
NUMBER = re.compile(r"^\+[1-9][0-9]{6,14}$|^sip:[^\s<>\"]{3,200}$")
"""E.164 numbers or SIP URIs; anything else is refused before Twilio is asked."""


def _error(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="outbound_call"'
    return response


def _authorized(request: Request) -> bool | None:
    """None when no token is configured (function disabled), else whether the bearer matches."""
    expected = os.environ.get(TOKEN_ENV, "")
    if not expected:
        return None
    header = request.headers.get("Authorization", "")
    given = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
    return hmac.compare_digest(given.encode(), expected.encode())


async def _flavor(settings: Settings, requested: str, to: str) -> str | None:
    """The requested flavor if configured (None if unknown), else the one selected for `to`."""
    if not requested:
        return await select_flavor(settings, to)
    known = requested in settings.flavors or requested == settings.general.default_flavor
    return requested if known else None


@functions_framework.http
def outbound_call(request: Request) -> Response:
    """Create the call; 401 unauthenticated, 400 bad request, 503 nothing to connect to."""
    authorized = _authorized(request)
    if authorized is None:
        return _error(503, f"outbound calls are disabled ({TOKEN_ENV} is not set)")
    if not authorized:
        logger.warning("outbound_call: refused an unauthenticated request")
        return _error(401, "missing or wrong bearer token")
    if request.method != "POST":
        return _error(405, "POST only")
    try:
        settings = load_settings()
    except ConfigError as exc:
        logger.error(f"outbound_call: configuration invalid: {exc}")
        return _error(500, "configuration invalid")
    cloud.init_logging(settings)
    cloud.limit_body(request)
    body: dict[str, Any] = request.get_json(silent=True) or request.form.to_dict()
    to = str(body.get("to", "")).strip()
    from_ = str(body.get("from", "") or os.environ.get(FROM_ENV, "")).strip()
    if not NUMBER.match(to) or not NUMBER.match(from_):
        return _error(400, "'to' and 'from' must be E.164 numbers (+15551234567) or sip: URIs")
    flavor = asyncio.run(_flavor(settings, str(body.get("flavor", "")).strip(), to))
    if flavor is None:
        return _error(400, "unknown flavor")
    if not (settings.twilio.account_sid and settings.twilio.auth_token.get_secret_value()):
        return _error(503, "Twilio account_sid and auth_token are not configured")
    stream_url = cloud.media_stream_url(settings)
    if stream_url is None:
        return _error(503, "no healthy media node")
    params = webhook.stream_parameters(settings, "", flavor, from_, to)
    options: dict[str, Any] = {"to": to, "from_": from_, "twiml": connect_twiml(stream_url, params)}
    if os.environ.get(STATUS_CALLBACK_ENV):
        options["status_callback"] = os.environ[STATUS_CALLBACK_ENV]
        options["status_callback_event"] = ["initiated", "ringing", "answered", "completed"]
    try:
        call = rest_client(settings.twilio).calls.create(**options)
    except TwilioRestException as exc:
        logger.warning(f"outbound_call: Twilio refused the call: {exc.status} {exc.code}")
        return _error(502, f"Twilio refused the call (HTTP {exc.status}, code {exc.code})")
    logger.bind(call_id=call.sid, flavor=flavor).info(f"outbound call {call.sid} to {to} placed")
    response = jsonify({"call_sid": call.sid, "status": call.status, "flavor": flavor})
    response.status_code = 201
    return response

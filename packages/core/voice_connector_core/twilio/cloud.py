"""What the Cloud Functions share: their URL as Twilio signed it, the media node probe, logging.

Duck-typed over the request (Flask's in functions-framework) so this package never imports Flask;
light (no Pipecat, no FastAPI): a function installs it with the rest of the core package.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from voice_connector_core.config import ConfigError, Settings, load_settings
from voice_connector_core.logs import clip, setup_logging
from voice_connector_core.twilio import webhook
from voice_connector_core.twilio.security import SIGNATURE_HEADER, public_url
from voice_connector_core.twilio.twiml import stream_url_from_base

WEBHOOK_URL_ENV = "TWILIO_WEBHOOK_URL"
"""Optional: the exact URL configured in Twilio, when no proxy header can reveal it."""
READY_TIMEOUT_SECONDS = 1.5
MAX_BODY_BYTES = 64 * 1024
"""Twilio's webhook forms are a few kB; anything far larger is refused (413) unparsed."""
_logging_ready = False


def init_logging(settings: Settings) -> None:
    """On Cloud Run / Cloud Functions (K_SERVICE set): JSON lines for Cloud Logging, once."""
    global _logging_ready
    if _logging_ready or not os.environ.get("K_SERVICE"):
        return
    # Written before the response returns: a function's CPU may be throttled right after it,
    # so no background writer thread here.
    setup_logging(settings.general.log_level, "json", settings.secrets(), background=False)
    _logging_ready = True


def limit_body(request: Any) -> None:
    """Make reading the form or JSON of an oversized request fail with 413 (Flask >= 3.1)."""
    request.max_content_length = MAX_BODY_BYTES


def webhook_url(request: Any) -> str:
    """The URL Twilio requested (and signed), rebuilt behind Google's front end or a proxy."""
    override = os.environ.get(WEBHOOK_URL_ENV, "")
    query = request.query_string.decode("latin-1") if request.query_string else ""
    if override:
        return f"{override}?{query}" if query else override
    return public_url(
        scheme=request.scheme,
        host=request.host,
        path=request.path,
        query=query,
        headers=request.headers,
    )


def media_node_ready(settings: Settings, timeout: float = READY_TIMEOUT_SECONDS) -> bool:
    """Whether the media node at `[general] public_url` answers `/readyz` with 200 in time."""
    base = settings.general.public_url.rstrip("/")
    if not base:
        return False
    try:
        with urllib.request.urlopen(base + "/readyz", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError) as exc:
        logger.warning(f"media node not ready at {base}: {exc!r}")
        return False


def media_stream_url(settings: Settings) -> str | None:
    """The stream URL to connect calls to, or None when no healthy media node is configured."""
    if not media_node_ready(settings):
        return None
    return stream_url_from_base(settings.general.public_url)


@dataclass
class SignedWebhook:
    """A Twilio webhook request, checked: its settings and form, or the response refusing it."""

    settings: Settings | None = None
    form: dict[str, str] = field(default_factory=dict)
    refusal: tuple[str, int] | None = None
    """(reason, HTTP status) when the request must be refused."""


def signed_webhook(request: Any, name: str, fields: Any) -> SignedWebhook:
    """Config, logging, body limit, POST only, signature and required fields: every webhook's
    first steps, in that order."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        logger.error(f"{name}: configuration invalid: {exc}")
        return SignedWebhook(refusal=("configuration invalid", 500))
    init_logging(settings)
    limit_body(request)
    if request.method != "POST":
        return SignedWebhook(settings, refusal=("POST only", 405))
    form = request.form.to_dict()
    rejection = webhook.check_request(
        settings, webhook_url(request), form, request.headers.get(SIGNATURE_HEADER), fields
    )
    if rejection is not None:
        logger.bind(call_id=clip(form.get("CallSid", "-"))).warning(  # not Twilio's: clipped
            f"{name} refused: {rejection.reason}"
        )
        return SignedWebhook(settings, form, (rejection.reason, rejection.status))
    return SignedWebhook(settings, form)

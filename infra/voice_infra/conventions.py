"""Names, ports and environment shared with the rest of the project (images, config, services).

One place, so GKE, Cloud Run and the functions cannot drift apart.
"""

from __future__ import annotations

HTTP_PORT = 8080  # media node: /healthz /readyz /metrics, WS /twilio/stream
SIP_PORT = 5060
WHISPER_PORT = 9000
OLLAMA_PORT = 11434

# Secret Manager secret ids (prefixed with the stack's prefix when created).
AUTH_TOKEN = "twilio-auth-token"
ACCOUNT_SID = "twilio-account-sid"
OUTBOUND_TOKEN = "outbound-call-token"
"""Bearer token callers of `outbound_call` present. Call tokens (the `<Parameter>` that opens a
media stream) need no secret of their own: both ends key them from the Twilio auth token."""

CONNECTOR_CONFIG = "connector-config"
"""The connector INI (`configFile`), for Cloud Run, which mounts files only from secrets."""
NODE_WORKDIR = "/app"
"""media-node/Dockerfile's WORKDIR: the node reads `cfg/voice-connector.ini` relative to it."""

SECRET_ENV = {
    AUTH_TOKEN: "VC_TWILIO_AUTH_TOKEN",
    ACCOUNT_SID: "VC_TWILIO_ACCOUNT_SID",
    OUTBOUND_TOKEN: "OUTBOUND_CALL_TOKEN",
}
# Env var → secret id for the media node. Only variables its config schema knows: the node
# refuses unknown VC_* variables at start-up.
CONNECTOR_SECRET_ENV = {SECRET_ENV[key]: key for key in (AUTH_TOKEN, ACCOUNT_SID)}

# Both load balancers in front of Twilio streams (Cloud Run, GCLB backend timeout) end a
# WebSocket at 3600 s: the node says goodbye a minute before.
MAX_STREAM_SECONDS = 3600
MAX_CALL_SECONDS = MAX_STREAM_SECONDS - 60


def connector_env(providers: str, stt_url: str, llm_url: str, project: str) -> dict[str, str]:
    """Config overrides (`VC_<SECTION>_<KEY>`) every media node deployment sets, and the project
    its log lines name in their trace field (neither Cloud Run nor GKE set it for us)."""
    return {
        "GOOGLE_CLOUD_PROJECT": project,
        "VC_TRANSPORT_PROVIDERS": providers,
        "VC_GENERAL_LOG_FORMAT": "json",
        "VC_TWILIO_VALIDATE_SIGNATURES": "true",
        "VC_PIPELINE_MAX_CALL_SECONDS": str(MAX_CALL_SECONDS),
        "VC_STT_PROVIDER": "faster_whisper",
        "VC_STT_MODE": "remote",
        "VC_STT_URL": stt_url,
        "VC_LLM_PROVIDER": "ollama",
        "VC_LLM_URL": llm_url,
        "VC_TTS_MODE": "local",
    }

"""Typed schema of the INI configuration: one pydantic model per section (the per-provider
`[stt]`, `[llm]` and `[tts]` models are in `services`; `sections` lists them all).

Every field's description is the documentation of its key (`docs/configuration.md` is generated
from these descriptions, and a test fails when they drift apart).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

LogLevel = Literal["TRACE", "DEBUG", "INFO", "WARNING", "ERROR"]


class Section(BaseModel):
    """Base of every section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def split_list(value: object) -> object:
    """INI lists are comma-separated strings."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def existing_path(value: Path | None) -> Path | None:
    """A configured path must exist when the node starts, not when the first call needs it."""
    if value is not None and not value.exists():
        raise ValueError(f"path does not exist: {value}")
    return value


def require_scheme(url: str, schemes: tuple[str, ...], when: str) -> None:
    """Cross-field rule: a provider's URL must use its protocol (message names the key first)."""
    if not url.lower().startswith(schemes):
        raise ValueError(f"url must start with {' or '.join(schemes)} when {when}, got {url!r}")


class GeneralSettings(Section):
    log_level: LogLevel = Field("INFO", description="Lowest level logged.")
    log_format: Literal["console", "json"] = Field(
        "console",
        description="console: human-readable lines; json: one Cloud Logging structured object "
        "per line.",
    )
    http_host: str = Field("0.0.0.0", description="Address the media node's HTTP server binds.")
    http_port: int = Field(
        8080, ge=1, le=65535, description="Port of the media node's HTTP server."
    )
    public_url: str = Field(
        "",
        description="Public base URL of the media node (e.g. https://media.example.com); the "
        "stream "
        "URL in TwiML is derived from it. Empty: taken from the request's Host header.",
    )
    default_flavor: str = Field("default", description="Flavor used when no rule selects another.")
    flavor_lookup_url: str = Field(
        "",
        description="Optional HTTP endpoint asked first for a call's flavor (GET ?called=USER, "
        'answer {"flavor": NAME}).',
    )
    max_calls: int = Field(
        40,
        ge=1,
        description="Concurrent calls the node accepts (split between its workers); beyond, "
        "calls are refused politely. One process keeps its added latency low up to ~25-40 "
        "calls on 2 slow cores (benchmarks/results/connector_overhead.md): raise it with "
        "workers, or add nodes.",
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Node processes sharing the HTTP port (one per core): each takes an equal "
        "share of max_calls, of the RTP ports and of the OpenSIPS sessions (by key), and its "
        "own event socket at opensips event_port + its index.",
    )
    drain_grace_seconds: float = Field(
        30.0,
        ge=0,
        description="On SIGTERM: how long active calls may finish before the process exits.",
    )
    private_token: SecretStr = Field(
        SecretStr(""),
        description="Bearer token for the private paths (/calls/{id}, /metrics, /readyz details): "
        "`Authorization: Bearer <token>`; secret, set it by env VC_GENERAL_PRIVATE_TOKEN. "
        "Empty: only private_networks may read them.",
    )
    private_networks: list[str] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"],
        description="Networks (CIDRs, comma-separated) whose clients read the private paths "
        "without the token, e.g. the pod network Prometheus scrapes from. Empty: token only.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Reverse proxies (CIDRs, comma-separated) whose X-Forwarded-For/-Proto/-Host "
        "headers are believed; from anyone else they are ignored. Empty: none (set public_url "
        "instead behind a proxy).",
    )
    mask_phone_numbers: bool = Field(
        True,
        description="Mask phone numbers (+15551234567 -> +155*****67) in log lines at INFO and "
        "above; DEBUG lines keep them.",
    )
    http_max_connections: int = Field(
        1000,
        ge=10,
        description="Concurrent HTTP/WebSocket connections per worker process; beyond, new "
        "requests get 503 (uvicorn limit_concurrency).",
    )
    http_header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="A connection must deliver its request headers within this long, else it "
        "is closed (slow clients holding connections).",
    )
    http_keep_alive_seconds: int = Field(
        5, ge=1, description="Idle time after which a keep-alive HTTP connection is closed."
    )
    http_ws_max_message_bytes: int = Field(
        65536,
        ge=1024,
        description="Largest WebSocket message the HTTP server accepts (uvicorn ws_max_size; a "
        "bigger one closes that WebSocket with 1009). Twilio media streams are its WebSockets.",
    )

    @field_validator("private_networks", "trusted_proxies", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        return split_list(value)

    @field_validator("private_networks", "trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"not a network (CIDR): {item!r}") from exc
        return value


class TransportSettings(Section):
    providers: list[Literal["opensips", "twilio"]] = Field(
        default_factory=lambda: ["opensips"],
        description="Telephony providers to run, comma-separated: opensips, twilio or both. "
        "Without a [transport] section the node is OpenSIPS-only, as before.",
    )

    @field_validator("providers", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return split_list(value)

    @field_validator("providers")
    @classmethod
    def _at_least_one(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one provider: opensips, twilio")
        return list(dict.fromkeys(value))


class PipelineSettings(Section):
    """Turn-taking and call limits: how every call's pipeline runs, whichever transport."""

    vad_stop_secs: float = Field(
        0.2,
        gt=0,
        le=3,
        description="Silence that closes a speech segment; the segment is transcribed at once.",
    )
    user_speech_timeout_secs: float = Field(
        0.5,
        ge=0,
        le=5,
        description="Further silence before the caller's turn ends and the bot answers (speech "
        "resuming within it continues the turn); with smart_turn, only when the speech sounds "
        "unfinished. Raise it for more patience with mid-sentence pauses.",
    )
    vad_confidence: float = Field(
        0.7, gt=0, le=1, description="Silero VAD speech confidence threshold."
    )
    allow_interruptions: bool = Field(True, description="Caller speech stops the bot (barge-in).")
    turn_detection: Literal["timeout", "smart_turn"] = Field(
        "smart_turn",
        description="How the caller's turn ends: smart_turn (at each pause, after "
        "vad_stop_secs, Pipecat's smart-turn v3.2 CPU model judges whether the speech is "
        "complete: if so the turn ends at once, else after user_speech_timeout_secs more "
        "silence; one ONNX session per process) or timeout (always after "
        "user_speech_timeout_secs more silence).",
    )
    max_call_seconds: float = Field(
        0.0,
        ge=0,
        description="End a call (SIP or Twilio) with a spoken goodbye after this long (Cloud "
        "Run cuts WebSockets at 3600 s: use 3540 there). 0: no limit.",
    )


class TwilioSettings(Section):
    account_sid: str = Field(
        "", description="Twilio Account SID (REST call control: hang-up, transfer)."
    )
    auth_token: SecretStr = Field(
        SecretStr(""),
        description="Twilio auth token: signs webhooks and the stream upgrade; secret, set it "
        "by env "
        "VC_TWILIO_AUTH_TOKEN.",
    )
    validate_signatures: bool | None = Field(
        None,
        description="Refuse webhooks without a valid X-Twilio-Signature, webhook replays, and "
        "streams without a valid single-use call token. Empty: true whenever auth_token is set.",
    )
    api_base_url: str = Field(
        "", description="Override of Twilio's REST base URL (tests point it at a local double)."
    )
    idle_timeout_seconds: float = Field(
        30.0, gt=0, description="A stream silent this long (no message at all) is ended."
    )
    start_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="A stream must send its `start` message within this long of connecting "
        "(however many other messages it sends), else it is closed.",
    )
    max_pending_per_source: int = Field(
        10,
        ge=1,
        description="Streams one client address may hold open before their `start` "
        "(unauthenticated); more are refused at the handshake.",
    )

    @field_validator("validate_signatures", mode="before")
    @classmethod
    def _empty_is_auto(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _token_when_validating(self) -> TwilioSettings:
        if self.validate_signatures is None:  # auto: validate whenever there is a token
            has_token = bool(self.auth_token.get_secret_value())
            object.__setattr__(self, "validate_signatures", has_token)
        if self.validate_signatures and not self.auth_token.get_secret_value():
            raise ValueError("auth_token is required when validate_signatures = true")
        return self


class OpenSIPSSettings(Section):
    mi_ip: str = Field("127.0.0.1", description="OpenSIPS mi_datagram address.")
    mi_port: int = Field(8080, ge=1, le=65535, description="OpenSIPS mi_datagram port.")
    mi_timeout: float = Field(1.0, gt=0, description="Seconds to wait for an MI reply.")
    event_ip: str = Field("127.0.0.1", description="Address our E_UA_SESSION event socket binds.")
    event_port: int = Field(50060, ge=1, le=65535, description="Port of our event socket.")
    rtp_ip: str = Field("0.0.0.0", description="Address RTP sockets bind.")
    public_ip: str = Field(
        "", description="Address advertised in SDP (node external IP behind NAT). Empty: rtp_ip."
    )
    rtp_port_range: str = Field("35000-35999", description="RTP ports, 'LOW-HIGH', one per call.")
    codecs: list[Literal["PCMU", "PCMA"]] = Field(
        default_factory=lambda: ["PCMU", "PCMA"],
        description="Codecs we accept, in preference order.",
    )
    resubscribe_interval: float = Field(
        10.0, gt=0, description="Seconds between checks that our event subscription is alive."
    )
    subscription_expire: int = Field(
        3600, ge=0, description="Subscription lifetime asked of OpenSIPS."
    )
    jitter_buffer_ms: int = Field(60, ge=0, le=500, description="Inbound RTP reorder window.")
    rtp_latching: bool = Field(
        True,
        description="Let a caller's RTP come from another address than its SDP said (NAT), under "
        "the rtp_latch_* rule. false: only the SDP address is ever heard.",
    )
    rtp_latch_packets: int = Field(
        10,
        ge=1,
        le=500,
        description="Consecutive valid RTP packets (one SSRC) a source other than the current "
        "one must send before it may take the call's media.",
    )
    rtp_latch_silence_ms: int = Field(
        500,
        ge=0,
        le=60000,
        description="...and the current source (before the first latch: the SDP address) must "
        "have been silent this long. The SDP address itself needs no silence.",
    )
    rtp_flood_pps: int = Field(
        200,
        ge=50,
        le=10000,
        description="Inbound RTP packets/s accepted per call from its source, and separately "
        "from all other addresses together (burst: half a second); the rest is dropped.",
    )
    send_ringing: bool = Field(
        False, description="Answer each INVITE with 180 Ringing before the 200 OK."
    )

    @field_validator("codecs", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return split_list(value)

    @field_validator("rtp_port_range")
    @classmethod
    def _port_range(cls, value: str) -> str:
        match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", value)
        if not match:
            raise ValueError("expected 'LOW-HIGH', e.g. 35000-35999")
        low, high = int(match[1]), int(match[2])
        if not 1024 <= low <= high <= 65535:
            raise ValueError("ports must satisfy 1024 <= LOW <= HIGH <= 65535")
        return f"{low}-{high}"

    @property
    def ports(self) -> tuple[int, int]:
        """(low, high) of the RTP range, inclusive."""
        low, high = self.rtp_port_range.split("-")
        return int(low), int(high)

    @property
    def advertised_ip(self) -> str:
        """The address put in our SDP: public_ip, else a concrete rtp_ip, else loopback."""
        if self.public_ip:
            return self.public_ip
        return self.rtp_ip if self.rtp_ip not in ("", "0.0.0.0") else "127.0.0.1"

    @property
    def event_socket(self) -> str:
        """Our event socket as OpenSIPS names subscribers (`udp:IP:PORT`)."""
        ip = self.event_ip if self.event_ip not in ("", "0.0.0.0") else "127.0.0.1"
        return f"udp:{ip}:{self.event_port}"


class FlavorSettings(Section):
    """A named set of overrides picked per call; keys are `section.key` plus the selectors."""

    model_config = ConfigDict(extra="forbid")

    match: str = Field("", description="Regex on the called number/user that selects this flavor.")
    transfer_target: str = Field(
        "", description="Where 'transfer to a human' sends the caller (number or SIP URI)."
    )
    overrides: dict[str, str] = Field(
        default_factory=dict, description="`section.key = value` lines."
    )

    @field_validator("match")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regex: {exc}") from exc
        return value

"""The `[opensips]` settings this provider needs; the config module maps its section onto this."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator


class OpenSIPSSettings(BaseModel):
    """Where OpenSIPS is, where we listen, and how media is negotiated and paced."""

    mi_ip: str = "127.0.0.1"
    mi_port: int = 8080
    mi_timeout: float = 1.0  # the opensips package's 0.1 s default is too short under load
    event_ip: str = "127.0.0.1"
    event_port: int = 50060
    rtp_ip: str = "0.0.0.0"
    public_ip: str = ""
    rtp_port_range: str = "35000-35999"
    codecs: list[str] = Field(default_factory=lambda: ["PCMU", "PCMA"])
    resubscribe_interval: float = 10.0
    subscription_expire: int = 3600
    jitter_buffer_ms: int = 60
    flavor_lookup_url: str | None = None
    flavor_lookup_timeout: float = 0.5
    send_ringing: bool = False

    @field_validator("codecs")
    @classmethod
    def _known_codecs(cls, value: list[str]) -> list[str]:
        codecs = [c.strip().upper() for c in value if c.strip()]
        unknown = [c for c in codecs if c not in ("PCMU", "PCMA")]
        if unknown or not codecs:
            raise ValueError(f"codecs must be PCMU and/or PCMA, got {value}")
        return codecs

    @field_validator("rtp_port_range")
    @classmethod
    def _valid_range(cls, value: str) -> str:
        low, high = parse_port_range(value)
        if not 1024 <= low < high <= 65535:
            raise ValueError(f"rtp_port_range must be LOW-HIGH within 1024-65535, got {value!r}")
        return value

    @property
    def ports(self) -> tuple[int, int]:
        """(low, high) inclusive."""
        return parse_port_range(self.rtp_port_range)

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


def parse_port_range(value: str) -> tuple[int, int]:
    """'35000-35999' → (35000, 35999)."""
    try:
        low, high = (int(part) for part in value.split("-", 1))
    except ValueError as exc:
        raise ValueError(f"bad port range {value!r}") from exc
    return low, high

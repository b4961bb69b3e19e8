"""SIP calls through OpenSIPS (b2b `ua_session`): MI + E_UA_SESSION signalling, our RTP media."""

from voice_connector.transports.opensips.provider import OpenSIPSProvider
from voice_connector.transports.opensips.settings import OpenSIPSSettings

__all__ = ["OpenSIPSProvider", "OpenSIPSSettings"]

"""SIP calls through OpenSIPS (b2b `ua_session`): MI + E_UA_SESSION signalling, our RTP media."""

from voice_connector.config.schema import OpenSIPSSettings
from voice_connector.transports.opensips.provider import OpenSIPSProvider

__all__ = ["OpenSIPSProvider", "OpenSIPSSettings"]

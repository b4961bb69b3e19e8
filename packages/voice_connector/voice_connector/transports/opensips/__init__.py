"""SIP calls through OpenSIPS (b2b `ua_session`): MI + E_UA_SESSION signalling, our RTP media."""

from voice_connector.transports.opensips.provider import OpenSIPSProvider
from voice_connector_core.config.schema import OpenSIPSSettings

__all__ = ["OpenSIPSProvider", "OpenSIPSSettings"]

"""The connector's light core: what every package shares, with no Pipecat and no models.

Config schema and loader, the model locator, files shared between workers, the workers' shared
state, untrusted-JSON limits, network access lists, log setup, and the Twilio edge pieces the
Cloud Functions need (signature checks, TwiML, call tokens). `voice_connector`, `ai_services`,
`media_node` and the functions depend on it; it depends on none of them.
"""

"""The sample rate every call pipeline runs at, whatever the telephony edge's codec rate."""

PIPELINE_SAMPLE_RATE = 16000
"""Silero VAD's and Whisper's rate: the transports convert G.711's 8 kHz to and from it."""

"""Audio at the telephony edges: G.711 codecs, 8 kHz ↔ 16 kHz resampling, RTP jitter buffer."""

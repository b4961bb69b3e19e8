"""G.711 tables, the 2:1 resamplers and the jitter buffer."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from voice_connector.audio import g711
from voice_connector.audio.jitter_buffer import JitterBuffer, seq_delta
from voice_connector.audio.resample import Downsampler2x, Upsampler2x

ALL = np.arange(-32768, 32768, dtype=np.int16)


def test_g711_is_bit_identical_to_the_reference_audioop():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    pcm = ALL.tobytes()
    assert g711.ulaw_encode(pcm) == audioop.lin2ulaw(pcm, 2)
    assert g711.alaw_encode(pcm) == audioop.lin2alaw(pcm, 2)
    codes = bytes(range(256))
    assert g711.ulaw_decode(codes).tobytes() == audioop.ulaw2lin(codes, 2)
    assert g711.alaw_decode(codes).tobytes() == audioop.alaw2lin(codes, 2)


@pytest.mark.parametrize("name", ["PCMU", "PCMA"])
def test_g711_round_trip_error_is_small_and_silence_decodes_to_zero(name):
    codec = g711.G711Codec(name)
    x = (np.sin(np.arange(800) / 5) * 20000).astype(np.int16)
    y = codec.decode(codec.encode(x)).astype(int)
    assert np.max(np.abs(y - x) / (np.abs(x) + 256)) < 0.07  # ~6 % steps, finer near 0
    assert np.abs(codec.decode(codec.silence(160))).max() <= 8


def _tone(freq: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (10000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def test_upsampler_keeps_a_1khz_tone_and_doubles_the_rate():
    up = Upsampler2x()
    x = _tone(1000, 8000)
    y = np.frombuffer(b"".join(up.process(x[i : i + 160]) for i in range(0, 8000, 160)), np.int16)
    assert len(y) == 16000
    assert 9000 < np.abs(y[200:]).max() < 11000


def test_downsampler_passes_speech_band_and_rejects_aliases():
    def run(freq: float) -> int:
        down = Downsampler2x()
        x = _tone(freq, 16000)
        y = np.concatenate([down.process_array(x[i : i + 320]) for i in range(0, 16000, 320)])
        assert len(y) == 8000
        return int(np.abs(y[200:]).max())

    assert run(1000) > 9000
    assert run(5000) < 50  # would alias to 3 kHz without the filter


def test_downsampler_is_chunking_invariant():
    x = _tone(700, 16000)
    a, b = Downsampler2x(), Downsampler2x()
    whole = a.process_array(x)
    parts = np.concatenate([b.process_array(x[i : i + 333]) for i in range(0, len(x), 333)])
    assert np.array_equal(whole, parts)


def test_jitter_buffer_reorders_within_depth_without_delay_in_order():
    jb = JitterBuffer(depth=3)
    assert jb.push(10, b"a") == [b"a"]
    assert jb.push(12, b"c") == []
    assert jb.push(11, b"b") == [b"b", b"c"]
    assert jb.stats.lost == 0


def test_jitter_buffer_declares_loss_when_depth_is_exceeded_and_drops_late_and_duplicates():
    jb = JitterBuffer(depth=2)
    jb.push(1, b"1")
    assert jb.push(3, b"3") == []
    assert jb.push(4, b"4") == [None, b"3", b"4"]
    assert jb.push(2, b"2") == []  # too late now
    assert jb.push(4, b"4") == []
    assert (jb.stats.lost, jb.stats.late) == (1, 2)


def test_jitter_buffer_handles_wrap_and_resync():
    jb = JitterBuffer(depth=3)
    assert jb.push(65535, b"x") == [b"x"]
    assert jb.push(0, b"y") == [b"y"]
    assert seq_delta(0, 65535) == 1
    assert jb.push(30000, b"z") == [b"z"]  # the peer restarted its stream
    assert jb.stats.resyncs == 1 and jb.stats.lost == 0


def test_jitter_buffer_follows_a_stream_restarted_far_back_and_resyncs_on_request():
    jb = JitterBuffer(depth=3)
    assert jb.push(5000, b"a") == [b"a"]
    assert jb.push(4990, b"late") == []  # a little back: late
    assert jb.push(100, b"b") == [b"b"]  # far back: a restarted stream, not 4,900 late packets
    assert jb.push(101, b"c") == [b"c"]
    assert jb.push(103, b"e") == []  # held behind a gap...
    assert jb.push(140, b"f", resync=True) == [b"e", b"f"]  # ...released, the gap is not loss
    assert (jb.stats.lost, jb.stats.late, jb.stats.resyncs) == (0, 1, 1)

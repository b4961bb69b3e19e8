"""A real SIP/RTP caller: SIPp speaks espeak-ng speech as PCMU 20 ms RTP (play_pcap_audio).

SIPp talks SIP to the double's SIP side (standing for OpenSIPS), the connector answers and its
echo pipeline sends the speech back. tshark captures our outbound RTP on loopback: the stream
must be paced at 20 ms (mean 20 ± 1 ms, no bursts), decode, and carry the speech.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest
from conftest import Handlers, free_udp_port
from helpers import until
from media import speech_wav, write_rtp_pcap
from sip_front import SipFront

from voice_connector.audio.g711 import ulaw_decode

HERE = os.path.dirname(__file__)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("sipp", "tshark", "espeak-ng", "sox"))
        or os.geteuid() != 0,
        reason="needs sipp, tshark, espeak-ng, sox and root (raw sockets)",
    ),
]


def _captured(path: str, port: int) -> tuple[np.ndarray, list[bytes]]:
    out = subprocess.run(
        [
            "tshark",
            "-r",
            path,
            "-Y",
            f"udp.srcport == {port}",
            "-T",
            "fields",
            "-e",
            "frame.time_epoch",
            "-e",
            "udp.payload",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    times, payloads = [], []
    for line in out.splitlines():
        t, _, hexdata = line.partition("\t")
        times.append(float(t))
        payloads.append(bytes.fromhex(hexdata.replace(":", "")))
    return np.array(times), payloads


async def test_sipp_speech_call_is_echoed_with_20ms_pacing(double, make_provider, tmp_path):
    handlers = Handlers()
    provider = await make_provider(handlers, rtp_port_range="43000-43019")
    front = await SipFront.open(double)
    pcm = speech_wav(tmp_path / "speech.wav", "Hello. This is a test call to the voice connector.")
    write_rtp_pcap(tmp_path / "speech.pcap", pcm)
    scenario = tmp_path / "uac.xml"
    xml = (pathlib.Path(HERE) / "uac_pcap.xml").read_text()
    scenario.write_text(xml.replace("[field0]", str(tmp_path / "speech.pcap")))
    capture = tmp_path / "out.pcap"
    tshark = await asyncio.create_subprocess_exec(
        "tshark",
        "-i",
        "lo",
        "-f",
        "udp src portrange 43000-43019",
        "-w",
        str(capture),
        "-q",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    await asyncio.sleep(1.5)  # let the capture start
    media_port = free_udp_port() & ~1
    sipp = await asyncio.create_subprocess_exec(
        "sipp",
        f"127.0.0.1:{front.port}",
        "-sf",
        str(scenario),
        "-m",
        "1",
        "-i",
        "127.0.0.1",
        "-p",
        str(free_udp_port()),
        "-mp",
        str(media_port),
        "-timeout",
        "30",
        "-nostdin",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
    )
    _, err = await asyncio.wait_for(sipp.communicate(), 40)
    assert sipp.returncode == 0, err.decode()
    await until(lambda: not provider.sessions and handlers.finished)
    await asyncio.sleep(0.3)
    tshark.terminate()
    await tshark.wait()

    ours = front.double.mi_calls("ua_session_reply")[0]["body"]
    port = int(ours.split("m=audio ", 1)[1].split()[0])
    times, payloads = _captured(str(capture), port)
    assert len(times) > 150  # > 3 s of stream
    intervals = np.diff(times) * 1000
    assert abs(intervals.mean() - 20.0) <= 1.0, intervals.mean()
    assert intervals.min() > 5.0  # no bursts
    audio = np.concatenate([ulaw_decode(p[12:]) for p in payloads if p[1] & 0x7F == 0])
    assert np.abs(audio).max() > 2000  # the speech came back, not just silence fill
    assert provider.ports.in_use == frozenset()

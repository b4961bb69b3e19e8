"""SIPp as the caller in tests: scenario templates in `sipp/` (placeholders `@NAME@`), run as a
subprocess from a chosen loopback source address, with real RTP from pcap files.

`play_pcap_audio` uses raw sockets: root only (CI runs as root); `SIPP_SKIP` says why not.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from voice_connector.audio.g711 import ulaw_encode

SCENARIOS = Path(__file__).with_name("sipp")
SIPP_SKIP = (
    None
    if shutil.which("sipp") and os.geteuid() == 0
    else "needs SIPp (Debian sip-tester) and root (play_pcap_audio uses raw sockets)"
)
_DTMF_EVENTS = {str(d): d for d in range(10)} | {"*": 10, "#": 11}


@dataclass
class SippRun:
    returncode: int
    stderr: str
    successful: int
    failed: int
    response_ms: list[float] = field(default_factory=list)
    """Response time 1 of each call (`-trace_rtt`: INVITE sent → 200 received, in call.xml)."""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def scenario(name: str, workdir: Path, **fields: object) -> Path:
    """`sipp/<name>.xml` with every `@KEY@` replaced by its value, written into `workdir`."""
    text = (SCENARIOS / f"{name}.xml").read_text()
    for key, value in fields.items():
        text = text.replace(f"@{key.upper()}@", str(value))
    unfilled = re.findall(r"@[A-Z_]+@", text.split("-->", 1)[-1])
    assert not unfilled, f"{name}: unfilled {unfilled}"
    path = workdir / f"{name}-{os.getpid()}-{len(list(workdir.glob(f'{name}-*')))}.xml"
    path.write_text(text)
    return path


async def run_sipp(
    scenario_file: Path,
    target: tuple[str, int],
    workdir: Path,
    *,
    source_ip: str = "127.0.0.1",
    calls: int = 1,
    rate: float | None = None,
    concurrent: int | None = None,
    service: str = "ai",
    call_timeout: float = 30.0,
    transport: str = "u1",
    extra: tuple[str, ...] = (),
) -> SippRun:
    """Place `calls` calls (at `rate` per second) and wait for SIPp to finish."""
    stats = workdir / f"{scenario_file.stem}.csv"
    args = [
        f"{target[0]}:{target[1]}",
        "-sf", str(scenario_file),
        "-s", service,
        "-m", str(calls),
        "-i", source_ip,
        "-p", "0",
        "-mi", source_ip,
        "-mp", str(_media_port()),
        "-t", transport,
        "-timeout", f"{int(call_timeout)}s",
        "-timeout_error",
        "-nostdin",
        "-trace_stat", "-stf", str(stats), "-fd", "1",
    ]  # fmt: skip
    if rate is not None:
        args += ["-r", str(rate), "-rp", "1000"]
    if concurrent is not None:
        args += ["-l", str(concurrent)]
    args += list(extra)
    process = await asyncio.create_subprocess_exec(
        "sipp",
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        cwd=workdir,
    )
    try:
        _, err = await asyncio.wait_for(process.communicate(), call_timeout + 15)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    successful, failed = _totals(stats)
    response_ms = _response_times(workdir, scenario_file.stem)
    return SippRun(
        process.returncode or 0, err.decode(errors="replace"), successful, failed, response_ms
    )


def _response_times(workdir: Path, stem: str) -> list[float]:
    """Every response-time sample SIPp traced (`-trace_rtt`), in ms; the files are removed."""
    samples = []
    for rtt in workdir.glob(f"{stem}_*_rtt.csv"):
        for line in rtt.read_text().splitlines()[1:]:
            if line.count(";") >= 2:
                samples.append(float(line.split(";")[1]))
        rtt.unlink()
    return samples


def _totals(stats: Path) -> tuple[int, int]:
    """SuccessfulCall(C) and FailedCall(C) from the last line of SIPp's statistics CSV."""
    if not stats.exists():
        return 0, 0
    lines = [line for line in stats.read_text().splitlines() if line.strip()]
    if len(lines) < 2:
        return 0, 0
    names, last = lines[0].split(";"), lines[-1].split(";")
    row = dict(zip(names, last, strict=False))
    return int(row.get("SuccessfulCall(C)", 0)), int(row.get("FailedCall(C)", 0))


def _media_port() -> int:
    """An even port with the next three free (SIPp binds RTP/RTCP for audio and video)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1] & ~3
        try:
            for offset in range(4):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.bind(("0.0.0.0", base + offset))
        except OSError:
            continue
        return base
    raise RuntimeError("no free media ports")


def _pcap(packets: list[tuple[float, bytes]], src_port: int = 6000, dst_port: int = 6002) -> bytes:
    """RTP payloads (time, bytes) as a classic pcap (Ethernet/IPv4/UDP), as SIPp replays it."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for n, (at, rtp) in enumerate(packets):
        udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(rtp), 0) + rtp
        ip = (
            struct.pack(
                "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n, 0, 64, 17, 0, bytes(4), bytes(4)
            )
            + udp
        )
        frame = bytes(12) + b"\x08\x00" + ip
        sec, usec = divmod(round(at * 1_000_000), 1_000_000)
        out.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
    return b"".join(out)


def write_speech_pcap(path: Path, pcm8k: np.ndarray) -> Path:
    """8 kHz int16 audio as PCMU 20 ms RTP."""
    packets = []
    for n, i in enumerate(range(0, len(pcm8k) - 159, 160)):
        header = struct.pack("!BBHII", 0x80, 0x80 if n == 0 else 0, n, n * 160, 0x5EED)
        packets.append((n * 0.02, header + ulaw_encode(pcm8k[i : i + 160])))
    path.write_bytes(_pcap(packets))
    return path


def write_dtmf_pcap(path: Path, digits: str, lead_secs: float = 0.5) -> Path:
    """PCMU silence, then each digit as RFC 4733 events (PT 101): 5 updates, 3 end packets."""
    silence = ulaw_encode(np.zeros(160, dtype=np.int16))
    packets: list[tuple[float, bytes]] = []
    seq, ts, at = 0, 0, 0.0

    def add(pt: int, marker: bool, stamp: int, payload: bytes) -> None:
        nonlocal seq, at
        packets.append(
            (
                at,
                struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq, stamp, 0xD7F)
                + payload,
            )
        )
        seq += 1
        at += 0.02

    for _ in range(int(lead_secs / 0.02)):
        add(0, seq == 0, ts, silence)
        ts += 160
    for digit in digits:
        event = _DTMF_EVENTS[digit]
        for step in range(1, 6):
            add(101, step == 1, ts, struct.pack("!BBH", event, 10, step * 160))
        for _ in range(3):
            packets.append(
                (
                    at,
                    struct.pack("!BBHII", 0x80, 101, seq, ts, 0xD7F)
                    + struct.pack("!BBH", event, 0x80 | 10, 960),
                )
            )
            seq += 1
        at += 0.02
        ts += 960
        for _ in range(10):
            add(0, False, ts, silence)
            ts += 160
    path.write_bytes(_pcap(packets))
    return path

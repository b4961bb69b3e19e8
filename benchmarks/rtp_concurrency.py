"""RTP concurrency benchmark: N SIP calls through one OpenSIPSProvider with an echo pipeline.

One command, prints a table and writes benchmarks/results/rtp_concurrency.md itself (not a test):
    .venv/bin/python -m benchmarks.rtp_concurrency [--calls 1,25,50,75,100]
The connector (provider + a Pipecat echo pipeline per call) runs in this process against the
OpenSIPS double from the integration tests; the callers run in a second process (Python RTP
senders on loopback) so their CPU is not billed to the connector. Per N it reports:
  send jitter p50/p99   |interval − 20 ms| between consecutive packets we send, at the receiver
  latency p50/p99       a loud packet in → its echo out, through RTP in, pipeline, RTP out
  CPU/call              connector process CPU time / wall time / N (percent of one core)
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import resource
import socket
import struct
import sys
import time

import numpy as np

from benchmarks.context import RESULTS_DIR, RunContext, write_results

RESULTS = RESULTS_DIR / "rtp_concurrency.md"
TARGET_CALLS, TARGET_JITTER_MS = 100, 5.0
HEADER = (
    "| calls | send jitter p50 | send jitter p99 | in→out latency p50 | p99 | CPU/call "
    "| late sends (>5 ms) |\n"
    "|---:|---:|---:|---:|---:|---:|---:|"
)
LOUD, QUIET = 0x80, 0xFF  # μ-law bytes: near full scale and silence


def _peer_process(conn, n: int, seconds: float) -> None:
    """The callers: N sockets, 20 ms μ-law each, one loud packet per second; measure echoes."""
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        socks.append(s)
    conn.send([s.getsockname()[1] for s in socks])
    dests = conn.recv()
    asyncio.run(_peers(conn, socks, dests, seconds))


async def _peers(conn, socks, dests, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    arrivals: list[list[float]] = [[] for _ in socks]
    loud_sent: list[list[float]] = [[] for _ in socks]
    echoes: list[list[float]] = [[] for _ in socks]

    def reader(i: int, s: socket.socket) -> None:
        while True:
            try:
                data = s.recv(2048)
            except BlockingIOError:
                return
            now = time.monotonic()
            arrivals[i].append(now)
            if data[1] & 0x7F == 0 and min(data[12:]) < 0xA0:  # loud μ-law payload
                if loud_sent[i] and (not echoes[i] or echoes[i][-1] < loud_sent[i][-1]):
                    echoes[i].append(now)

    for i, s in enumerate(socks):
        s.setblocking(False)
        loop.add_reader(s.fileno(), reader, i, s)
    start = loop.time() + 0.1
    ticks = int(seconds / 0.02)
    for k in range(ticks):
        await asyncio.sleep(max(0.0, start + k * 0.02 - loop.time()))
        loud = k % 50 == 25
        payload = bytes([LOUD if loud else QUIET]) * 160
        for i, s in enumerate(socks):
            s.sendto(
                struct.pack("!BBHII", 0x80, 0, k & 0xFFFF, k * 160, 1000 + i) + payload, dests[i]
            )
            if loud:
                loud_sent[i].append(time.monotonic())
    await asyncio.sleep(0.5)
    jitter, latency = [], []
    for i in range(len(socks)):
        t = np.array(arrivals[i][25:])  # skip the start-up
        jitter.extend(np.abs(np.diff(t) * 1000 - 20.0))
        for sent in loud_sent[i]:
            after = [e for e in echoes[i] if e >= sent]
            if after and after[0] - sent < 1.0:
                latency.append((after[0] - sent) * 1000)
    conn.send((np.array(jitter), np.array(latency)))


async def run_level(n: int, seconds: float, base_port: int) -> dict[str, float]:
    from tests.integration.opensips.conftest import Handlers, free_udp_port
    from tests.integration.opensips.helpers import answered
    from voice_connector.caller.opensips_double import OpenSIPSDouble, offer_sdp
    from voice_connector.transports.opensips import OpenSIPSProvider, OpenSIPSSettings
    from voice_connector_core.config import Settings

    double = await OpenSIPSDouble().start()
    settings = OpenSIPSSettings(
        mi_port=double.mi_port,
        event_port=free_udp_port(),
        rtp_ip="127.0.0.1",
        rtp_port_range=f"{base_port}-{base_port + 2 * n + 10}",
        mi_timeout=2.0,
    )
    provider = OpenSIPSProvider(Settings(opensips=settings))
    handlers = Handlers()
    await provider.start(handlers)
    await double.wait_for(lambda: provider.readiness()[0])
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_peer_process, args=(child, n, seconds))
    proc.start()
    peer_ports = await asyncio.to_thread(parent.recv)
    print(f"# {n} calls: callers ready", file=sys.stderr, flush=True)
    keys = [double.new_key() for _ in range(n)]
    for key, port in zip(keys, peer_ports, strict=True):
        double.invite(key, offer_sdp(port))
    ours = await asyncio.gather(*(answered(double, k) for k in keys))
    print(f"# {n} calls: answered", file=sys.stderr, flush=True)
    for key in keys:
        double.ack(key)
    parent.send([("127.0.0.1", p) for p in ours])
    cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    jitter, latency = await asyncio.to_thread(parent.recv)
    cpu1, wall1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    proc.join()
    late = sum(s.rtp.stats.late_sends for s in provider.sessions.values() if s.rtp)
    for key in keys:
        double.bye(key)
    await double.wait_for(lambda: not provider.sessions, 10)
    await provider.stop()
    double.close()
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    return {
        "n": n,
        "jit50": float(np.percentile(jitter, 50)),
        "jit99": float(np.percentile(jitter, 99)),
        "lat50": float(np.percentile(latency, 50)) if len(latency) else float("nan"),
        "lat99": float(np.percentile(latency, 99)) if len(latency) else float("nan"),
        "cpu": 100 * cpu / (wall1 - wall0) / n,
        "late": late,
    }


def verdict(results: list[dict[str, float]]) -> str:
    """Whether the target holds, and up to how many calls it does."""
    met = [r["n"] for r in results if r["jit99"] < TARGET_JITTER_MS]
    largest = max((r["n"] for r in results), default=0)
    head = (
        f"Target: {TARGET_CALLS} calls on one process with p99 send jitter under "
        f"{TARGET_JITTER_MS:g} ms: "
    )
    if TARGET_CALLS in met:
        return head + "met."
    if not met:
        return head + "not met at any level."
    return head + f"not met; met up to {max(met)} calls (of {largest} measured)."


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", default="1,25,50,75,100")
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    run = RunContext("rtp_concurrency")
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    print(HEADER, flush=True)
    results, rows = [], []
    for i, n in enumerate(int(x) for x in args.calls.split(",")):
        r = await asyncio.wait_for(run_level(n, args.seconds, 45000 + i * 400), 60 + 2 * n)
        results.append(r)
        rows.append(
            f"| {r['n']} | {r['jit50']:.2f} ms | {r['jit99']:.2f} ms | {r['lat50']:.1f} ms "
            f"| {r['lat99']:.1f} ms | {r['cpu']:.2f} % | {r['late']} |"
        )
        print(rows[-1], flush=True)
    print(verdict(results))
    write_results(
        RESULTS,
        "SIP/RTP concurrency",
        run.line(
            "N SIP calls through one OpenSIPSProvider (against the OpenSIPS double) with an "
            f"echo pipeline per call for {args.seconds:g} s; the callers are Python RTP senders "
            "in a second process on the same cores. Send jitter = |interval − 20 ms| between "
            "packets we send, at the receiver; latency = a loud packet in → its echo out; "
            "CPU/call = connector process CPU / wall time / N (percent of one core)"
        ),
        "\n".join([HEADER, *rows, "", verdict(results)]),
    )


if __name__ == "__main__":
    asyncio.run(main())

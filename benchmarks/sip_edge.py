"""SIP edge: calls per second it carries on this machine, and what failover costs a caller.

Run: `python -m benchmarks.sip_edge` (root: SIPp sends real RTP with raw sockets; needs the
OpenSIPS bundle, see docs/opensips.md). Real processes on loopback, as in
tests/integration/sip_edge: the edge OpenSIPS (`sip-edge/opensips.cfg`) in front of two media
nodes, each a connector with instant STT/LLM/TTS (real VAD, pipelines, RTP) and its own real
OpenSIPS. SIPp places short calls (INVITE, 200, ACK, 0.4 s of speech as RTP, BYE) through the
edge at rising rates. Then the failover cases, one call at a time:
- a node refuses with 503 (node-1 full: `max_calls` 1, held by a parked call): INVITE → 200 with
  the edge's retry on node-2, against calls that went straight to node-2;
- a node is dead (stopped, still in the set): the first call waits the edge's 2 s timer once,
  then the node is probed out of the set.
Results: benchmarks/results/sip_edge.md (written by this script). Whole run < 2 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.context import RESULTS_DIR, RunContext, write_results
from tests.containers.ollama_stub import OllamaStub
from tests.integration.opensips.media import speech_wav
from tests.support.real_opensips import free_port
from tests.support.sip_cluster import NodeProcess, edge_opensips, membership
from tests.support.sipp import run_sipp, scenario, write_speech_pcap

RESULTS = RESULTS_DIR / "sip_edge.md"
CLK_TCK = os.sysconf("SC_CLK_TCK")
TRACE = ("-trace_rtt", "-rtt_freq", "1")  # every call's INVITE → 200 time


def cpu_seconds(pid: int) -> float:
    """CPU time of process `pid` and its direct children (OpenSIPS' workers)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


async def wait_for(condition, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.1)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def throughput(edge, nodes, call_xml, workdir, rate: int, seconds: float) -> str:
    count = int(rate * seconds)
    before_cpu = cpu_seconds(edge.process.pid)
    started = time.monotonic()
    run = await run_sipp(
        call_xml, (edge.sip_ip, edge.sip_port), workdir,
        source_ip="127.0.0.2", calls=count, rate=rate, call_timeout=30, extra=TRACE,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    edge_ms = (cpu_seconds(edge.process.pid) - before_cpu) * 1000 / max(1, run.successful)
    return (
        f"| {rate} | {count} | {run.successful} | {run.failed} | "
        f"{run.successful / elapsed:.1f} | {pct(run.response_ms, 0.5):.0f} | "
        f"{pct(run.response_ms, 0.95):.0f} | {edge_ms:.2f} |"
    )


async def one_by_one(edge, call_xml, workdir, calls: int) -> list[float]:
    run = await run_sipp(
        call_xml, (edge.sip_ip, edge.sip_port), workdir,
        source_ip="127.0.0.2", calls=calls, concurrent=1, rate=20, extra=TRACE,
    )  # fmt: skip
    assert run.successful == calls, run.stderr
    return run.response_ms


async def main_async(rates: list[int], seconds: float) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="sip-edge-bench-"))
    stub = OllamaStub(free_port()).start()
    edge = edge_opensips(workdir / "edge", ["127.0.0.2"])
    edge.start()
    nodes = [NodeProcess(i, workdir / f"node-{i}", stub.url, max_calls=200) for i in (1, 2)]
    lines = []
    try:
        for node in nodes:
            node.start()
        membership(edge, nodes).sync()
        speech = write_speech_pcap(workdir / "s.pcap", speech_wav(workdir / "s.wav", "Hello."))
        short = scenario("call", workdir, audio=speech, hold_ms=400)
        lines += [
            "| offered calls/s | calls | completed | failed | completed calls/s "
            "| INVITE→200 p50 ms | p95 ms | edge CPU ms per call |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for rate in rates:
            lines.append(await throughput(edge, nodes, short, workdir, rate, seconds))
            print(lines[-1], flush=True)

        # node-1 dead (stopped, still in the set): the first call waits for the edge's timer
        nodes[0].stop()
        dead = await one_by_one(edge, short, workdir, 3)

        # node-1 full: back with room for one call, parked there; then both nodes published
        nodes[0] = NodeProcess(1, workdir / "node-1b", stub.url, max_calls=1).start()
        membership(edge, [nodes[0]]).sync()
        parked = asyncio.create_task(
            run_sipp(
                scenario("call", workdir, audio=speech, hold_ms=30000),
                (edge.sip_ip, edge.sip_port), workdir, source_ip="127.0.0.2", call_timeout=60,
            )
        )  # fmt: skip
        await wait_for(lambda: nodes[0].metric("voice_connector_active_calls") >= 1)
        membership(edge, nodes).sync()
        samples = await one_by_one(edge, short, workdir, 20)  # round robin: every other fails over
        ordered = sorted(samples)
        direct, failover = ordered[: len(ordered) // 2], ordered[len(ordered) // 2 :]
        parked.cancel()
        lines += [
            "",
            "| failover case | calls | INVITE→200 p50 ms | max ms |",
            "|---|---:|---:|---:|",
            f"| straight to a node with room | {len(direct)} | "
            f"{statistics.median(direct):.0f} | {max(direct):.0f} |",
            f"| first node answers 503 (full), retried on the next | {len(failover)} | "
            f"{statistics.median(failover):.0f} | {max(failover):.0f} |",
            f"| first node dead: first call after its death | 1 | {dead[0]:.0f} | {dead[0]:.0f} |",
            f"| first node dead: next calls (probed out) | {len(dead) - 1} | "
            f"{statistics.median(dead[1:]):.0f} | {max(dead[1:]):.0f} |",
        ]
    finally:
        for node in nodes:
            node.stop()
        edge.stop()
        stub.shutdown()
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="5,10,20")
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    run = RunContext("sip_edge")
    started = time.monotonic()
    table = asyncio.run(main_async([int(r) for r in args.rates.split(",")], args.seconds))
    took = time.monotonic() - started
    print(table)
    write_results(
        RESULTS,
        "SIP edge",
        run.line(
            f"run took {took:.0f} s; calls of 0.4 s with real RTP through the edge to two media "
            "nodes with instant STT/LLM/TTS; SIPp, the edge, both nodes and their OpenSIPS share "
            "the cores (the OpenSIPS bundle is a debug-malloc build: not a performance "
            "reference for the edge alone)"
        ),
        table,
    )
    sys.exit(0)


if __name__ == "__main__":
    main()

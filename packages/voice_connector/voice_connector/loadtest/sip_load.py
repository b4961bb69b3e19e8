"""SIP load: the OpenSIPS double takes OpenSIPS' place for a running node, calls carry real RTP.

The node must be configured to talk to the double: `[opensips] mi_port` = `--mi-port` (the double
listens there on loopback). The node subscribes to the double's events by itself (within
`resubscribe_interval`); calls start once it has.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from voice_connector.caller.opensips_double import OpenSIPSDouble
from voice_connector.caller.sip_caller import SimulatedSipCall, SipCallerOptions
from voice_connector.loadtest.runner import LoadOptions, LoadReport, UnsafeTarget, run_load

SUBSCRIBE_WAIT_SECS = 30.0


@asynccontextmanager
async def subscribed_double(mi_port: int, node_workers: int = 1) -> AsyncIterator[OpenSIPSDouble]:
    """The double on `mi_port`, once the node subscribed (each of its worker processes does)."""
    double = await OpenSIPSDouble().start(mi_port=mi_port)
    try:
        deadline = time.monotonic() + SUBSCRIBE_WAIT_SECS
        while len(double.subscribers) < node_workers:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no node subscribed to the OpenSIPS double on {mi_port}")
            await asyncio.sleep(0.1)
        yield double
    finally:
        double.close()


def sip_caller(double: OpenSIPSDouble) -> Callable[[LoadOptions], SimulatedSipCall]:
    """The load runner's call factory: SIP calls with real RTP through `double`."""

    def new_call(opts: LoadOptions) -> SimulatedSipCall:
        return SimulatedSipCall(
            double,
            SipCallerOptions(
                audio=[opts.audio], node_http=opts.url, answer_timeout=opts.answer_timeout
            ),
        )

    return new_call


async def sip_load(options: LoadOptions, mi_port: int, node_workers: int = 1) -> LoadReport:
    """Run the double on `mi_port`, wait for the node's subscriptions, then load it."""
    async with subscribed_double(mi_port, node_workers) as double:
        return await run_load(options, sip_caller(double))


def run_sip_load(args: argparse.Namespace) -> int:
    """`voice-connector load --transport sip`: print the report table; exit 1 if nothing worked."""
    options = LoadOptions.from_args(args, args.node)
    try:
        report = asyncio.run(sip_load(options, args.mi_port, args.node_workers))
    except (UnsafeTarget, TimeoutError) as exc:
        print(exc)
        return 2
    print(report.table())
    return 0 if report.completed else 1

"""SIP load: the OpenSIPS double takes OpenSIPS' place for a running node, calls carry real RTP.

The node must be configured to talk to the double: `[opensips] mi_port` = `--mi-port` (the double
listens there on loopback). The node subscribes to the double's events by itself (within
`resubscribe_interval`); calls start once it has.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from voice_connector.caller.opensips_double import OpenSIPSDouble
from voice_connector.caller.sip_caller import SimulatedSipCall, SipCallerOptions
from voice_connector.loadtest.runner import LoadOptions, LoadReport, UnsafeTarget, run_load

SUBSCRIBE_WAIT_SECS = 30.0


async def sip_load(options: LoadOptions, mi_port: int) -> LoadReport:
    """Run the double on `mi_port`, wait for the node's subscription, then load it."""
    double = await OpenSIPSDouble().start(mi_port=mi_port)
    try:
        deadline = time.monotonic() + SUBSCRIBE_WAIT_SECS
        while not double.subscribers:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no node subscribed to the OpenSIPS double on {mi_port}")
            await asyncio.sleep(0.1)

        def new_call(opts: LoadOptions) -> SimulatedSipCall:
            return SimulatedSipCall(
                double,
                SipCallerOptions(
                    audio=[opts.audio], node_http=opts.url, answer_timeout=opts.answer_timeout
                ),
            )

        return await run_load(options, new_call)
    finally:
        double.close()


def run_sip_load(args: argparse.Namespace) -> int:
    """`voice-connector load --transport sip`: print the report table; exit 1 if nothing worked."""
    options = LoadOptions.from_args(args, args.node)
    try:
        report = asyncio.run(sip_load(options, args.mi_port))
    except (UnsafeTarget, TimeoutError) as exc:
        print(exc)
        return 2
    print(report.table())
    return 0 if report.completed else 1

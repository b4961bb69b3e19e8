"""The command line every server shares and the uvicorn start."""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI

from ai_services.logs import configure_logging
from voice_connector_core.devices import DEVICES


def base_parser(prog: str, description: str, default_port: int) -> argparse.ArgumentParser:
    """The options every server shares; each module adds its model options."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 in containers)")
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument(
        "--ws-max-size",
        type=int,
        default=16 * 1024 * 1024,
        help="largest WebSocket message accepted, bytes (bigger ones close the connection)",
    )
    return parser


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """`--device` of a server that runs a model: auto takes the GPU when its engine can."""
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="where the model runs (auto: the GPU when the engine can use one)",
    )


def serve(app: FastAPI, args: argparse.Namespace) -> None:
    """Run `app` with uvicorn using the common options."""
    configure_logging(args.log_level)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        ws_max_size=args.ws_max_size,
        log_config=None,
    )

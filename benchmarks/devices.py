"""`--device auto|cpu|cuda` for the benchmarks that run models, and what to say about it.

A benchmark adds the flag with `add_device_argument(parser)`, passes the choice on to what it
starts (`node_env(device)` for a media node, `server_args(device)` for an `ai_services` server)
and names where the models really ran in its results file's context line (`describe(device)`):
`auto` on a machine without a GPU is a CPU run, and the file must say so.
"""

from __future__ import annotations

import argparse

from voice_connector_core.devices import DEVICES, ENGINES, Device, resolve


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """`--device`, default `auto` (the GPU when the model's engine can use one)."""
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="where the models run (auto: the GPU when the engine can use one)",
    )


def used(device: Device, engines: tuple[str, ...] = tuple(ENGINES)) -> dict[str, str]:
    """Engine → the device it runs on for `device` (`cuda` without a GPU raises ValueError)."""
    return {engine: resolve(device, engine) for engine in engines}


def describe(device: Device, engines: tuple[str, ...] = tuple(ENGINES)) -> str:
    """`device auto → whisper cpu, llama.cpp cpu, piper cpu`: for the context line."""
    runs_on = ", ".join(f"{engine} {where}" for engine, where in used(device, engines).items())
    return f"device {device} → {runs_on}"


def node_env(device: Device) -> dict[str, str]:
    """The media node's environment for `device`: local STT, TTS and the bundled LLM server."""
    return {"VC_STT_DEVICE": device, "VC_TTS_DEVICE": device, "VC_LLM_DEVICE": device}


def server_args(device: Device) -> list[str]:
    """Command-line arguments for an `ai_services` model server (Whisper, LLM, Piper)."""
    return ["--device", device]

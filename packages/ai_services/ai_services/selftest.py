"""Setup self-test: decode a realistic prompt with the installed llama.cpp, in a subprocess.

Why: llama.cpp picks its fastest kernels per prompt size, so a build with instructions this CPU
does not execute (AMX tiles compiled in by `GGML_NATIVE` on another host, or advertised by a
hypervisor that does not grant them) passes a few-token smoke test and dies with SIGILL on the
first real question. `make setup` runs this after installing: one batched decode of what the node
sends on a call's first turn (system prompt, call-control tools, a question; several hundred
tokens). The decode runs in a child process, so a fatal signal is reported, not suffered:

    python -m ai_services.selftest [--gguf FILE] [--variant avx2]

Exit 0 and one summary line when the decode works; exit 1 with the signal, the instruction sets
llama.cpp was compiled with and the command to rebuild when it does not.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CHILD_TIMEOUT_SECS = 600.0
MIN_PROMPT_TOKENS = 300

SYSTEM_PROMPT = (
    "You are the friendly voice assistant of a small business, answering its phone line. "
    "The caller hears everything you write through a speech synthesizer, so answer in one or "
    "two short spoken sentences, with no lists, no markdown, no emojis and no abbreviations "
    "that sound odd aloud. Spell out numbers the way a person would say them. If you do not "
    "know an answer, say so plainly and offer to transfer the caller to a person. Never make up "
    "opening hours, prices or names. When the caller says goodbye or has nothing more to ask, "
    "say a short goodbye and then end the call with the end_call tool. When the caller asks for "
    "a human, or is upset, or asks twice for something you cannot do, tell them you are "
    "transferring them and use the transfer_call tool. Keep a warm, calm tone; callers may be in "
    "a hurry, in a noisy place, or on a poor line, so confirm anything important by repeating "
    "it back briefly. The business is open Monday to Friday from nine in the morning to six in "
    "the evening, and on Saturday from ten to two. It is closed on Sundays and public holidays. "
    "Orders can be collected at the front desk during opening hours. Deliveries take two to "
    "three working days. Returns are accepted within thirty days with a receipt."
)
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "end_call",
            "description": "Hang up the phone call. Use it after saying goodbye, when the caller "
            "is done or asks to end the call.",
            "parameters": {
                "type": "object",
                "properties": {"reason": {"type": "string", "description": "Why the call ends."}},
                "required": [],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "transfer_call",
            "description": "Transfer the caller to a human agent, when they ask for a person or "
            "you cannot help. Tell them first that you are transferring them.",
            "parameters": {"type": "object", "properties": {}, "required": []},
        },
    },
]
QUESTION = "Hi, until what time are you open on Saturday, and can I collect my order then?"


def default_gguf() -> Path:
    """The bundled model the node serves by default."""
    from voice_connector_core.models import qwen_gguf

    return qwen_gguf()


def child(gguf: Path) -> int:
    """Load the model and decode the first-turn prompt; print what was compiled in, then stats."""
    import llama_cpp

    from ai_services.llm_engine import available_cores

    print(json.dumps({"system_info": llama_cpp.llama_print_system_info().decode()}), flush=True)
    llm = llama_cpp.Llama(
        model_path=str(gguf), n_ctx=4096, n_threads=available_cores(), verbose=False
    )
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": QUESTION},
    ]
    started = time.perf_counter()
    result = llm.create_chat_completion(
        messages=messages, tools=TOOLS, max_tokens=8, temperature=0.0, seed=1
    )
    usage = result["usage"]
    print(
        json.dumps({
            "prompt_tokens": usage["prompt_tokens"],
            "completion_tokens": usage["completion_tokens"],
            "seconds": round(time.perf_counter() - started, 2),
        }),
        flush=True,
    )
    return 0 if usage["prompt_tokens"] >= MIN_PROMPT_TOKENS else 3


def signal_name(returncode: int) -> str:
    """'SIGILL (signal 4)' for a child killed by a signal (negative return code)."""
    number = -returncode
    try:
        return f"{signal.Signals(number).name} (signal {number})"
    except ValueError:
        return f"signal {number}"


def rebuild_command(variant: str) -> str:
    """What to run to replace the installed llama.cpp build with a portable one."""
    safer = "avx2" if variant in ("avx512", "native", "unknown") else variant
    return (
        f"rm -rf ~/.cache/voice-connector/wheels/llama-cpp-python-*-{safer}-* "
        f".venv/.installed-llama-* && make setup LLAMA_VARIANT={safer}"
    )


def parse_child_output(stdout: str) -> dict[str, Any]:
    """Merge the JSON lines the child printed (the last one wins per key)."""
    merged: dict[str, Any] = {}
    for line in stdout.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            merged.update(item)
    return merged


def child_command(gguf: Path) -> list[str]:
    """This module in child mode: load `gguf` and decode the first-turn prompt."""
    return [sys.executable, "-m", "ai_services.selftest", "--child", "--gguf", str(gguf)]


def run(
    gguf: Path,
    variant: str,
    timeout: float = CHILD_TIMEOUT_SECS,
    command: list[str] | None = None,
) -> tuple[bool, str]:
    """(passed, message) of one self-test child process (`command`: the child, by default)."""
    command = command or child_command(gguf)
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
        )
    except subprocess.TimeoutExpired:
        return False, f"LLM self-test: no answer within {timeout:.0f} s decoding {gguf.name}"
    out = parse_child_output(done.stdout)
    compiled = out.get("system_info", "unknown (the child died before printing it)")
    if done.returncode < 0:
        return False, (
            f"LLM self-test FAILED: llama.cpp died with {signal_name(done.returncode)} decoding a "
            f"realistic first-turn prompt with {gguf.name}.\n"
            f"  this CPU cannot run the instruction sets llama.cpp was compiled with "
            f"(variant {variant}):\n  {compiled}\n"
            f"  rebuild a portable llama-cpp-python with:\n  {rebuild_command(variant)}"
        )
    if done.returncode == 3:
        return False, (
            f"LLM self-test: the prompt was only {out.get('prompt_tokens')} tokens, fewer than "
            f"{MIN_PROMPT_TOKENS}: it would not exercise llama.cpp's batched kernels"
        )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        return False, f"LLM self-test failed with exit code {done.returncode}:\n{tail}"
    return True, (
        f"LLM self-test passed: {out['prompt_tokens']}-token prompt decoded in "
        f"{out['seconds']} s with {gguf.name} (variant {variant}; {compiled.strip()})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", type=Path, default=None, help="GGUF file (default: bundled)")
    parser.add_argument("--variant", default="unknown", help="the llama.cpp build variant")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    gguf = args.gguf or default_gguf()
    if args.child:
        return child(gguf)
    passed, message = run(gguf, args.variant)
    print(message, file=sys.stdout if passed else sys.stderr)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

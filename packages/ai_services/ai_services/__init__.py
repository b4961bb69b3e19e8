"""Network AI services for the voice connector, one server per module (`python -m ai_services.X`).

- `ollama_api`: Ollama's native REST API (plus its OpenAI-compatible routes) on llama.cpp.
- `whisper_service`: faster-whisper over HTTP (OpenAI style, raw PCM) and a per-utterance WebSocket.
- `vosk_server`, `llama_ws_server`, `piper_ws_server`: the legacy WebSocket protocols.
Shared plumbing lives in `common` (app factory, readiness, metrics, queues, CLI), `audio` (PCM) and
`llm_engine` (serialized, cancellable llama.cpp generation). See docs/ai-services.md.
"""

"""A tiny stand-in for Ollama: answers the native API with one canned reply, starts instantly.

Why: the health, drain and cold-start checks are about the node's lifecycle, not about words; a
real model would only add load time and CPU. Standard library only, so it starts in ~50 ms.

    python -m tests.containers.ollama_stub --port 11434 [--model qwen2.5-coder:0.5b] [--reply TEXT]
"""

from __future__ import annotations

import argparse
import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_MODEL = "qwen2.5-coder:0.5b"
DEFAULT_REPLY = "Sure. I can help you with that today."


def _now() -> str:
    return datetime.now(UTC).isoformat()


class OllamaStub(ThreadingHTTPServer):
    """`/`, `/api/version`, `/api/tags`, `/api/show`, `/api/chat` (streamed or not)."""

    daemon_threads = True

    def __init__(self, port: int, model: str = DEFAULT_MODEL, reply: str = DEFAULT_REPLY) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.model = model
        self.reply = reply

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> OllamaStub:
        """Serve in a daemon thread (for in-process use); `shutdown()` stops it."""
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def tags(self) -> dict[str, Any]:
        details = {"format": "gguf", "family": "qwen2", "parameter_size": "0.5B",
                   "quantization_level": "Q4_K_M"}
        return {"models": [{"name": self.model, "model": self.model, "modified_at": _now(),
                            "size": 491_400_064, "digest": "0" * 64, "details": details}]}

    def chat_lines(self) -> list[dict[str, Any]]:
        """NDJSON lines of Ollama's streamed `/api/chat`: one per word, then `done`."""
        words = self.reply.split(" ")
        lines = [
            {"model": self.model, "created_at": _now(), "done": False,
             "message": {"role": "assistant", "content": w if i == 0 else " " + w}}
            for i, w in enumerate(words)
        ]
        lines.append({"model": self.model, "created_at": _now(), "done": True,
                      "done_reason": "stop", "message": {"role": "assistant", "content": ""},
                      "total_duration": 1, "eval_count": len(words)})
        return lines


class _Handler(BaseHTTPRequestHandler):
    server: OllamaStub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the node's logs are what a test reads."""

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value).encode())

    def do_GET(self) -> None:
        if self.path == "/":
            self._send(200, b"Ollama is running", "text/plain")
        elif self.path == "/api/version":
            self._json(200, {"version": "0.12.0"})
        elif self.path == "/api/tags":
            self._json(200, self.server.tags())
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/api/show":
            self._json(200, {"details": self.server.tags()["models"][0]["details"]})
            return
        if self.path != "/api/chat":
            self._json(404, {"error": "not found"})
            return
        if request.get("model") not in (self.server.model, None):
            self._json(404, {"error": f"model '{request.get('model')}' not found"})
            return
        lines = self.server.chat_lines()
        if request.get("stream", True) is False:
            final = {**lines[-1], "message": {"role": "assistant", "content": self.server.reply}}
            self._json(200, final)
            return
        body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
        self._send(200, body, "application/x-ndjson")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--reply", default=DEFAULT_REPLY)
    args = parser.parse_args(argv)
    OllamaStub(args.port, args.model, args.reply).serve_forever()


if __name__ == "__main__":
    main()

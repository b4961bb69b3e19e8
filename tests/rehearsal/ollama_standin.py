"""Stands in for the `ollama` binary inside the Ollama image, so its entrypoint runs unchanged.

The image's contract is the Ollama API on OLLAMA_HOST with the models of OLLAMA_MODEL listed;
here the bundled Ollama-API server (`ai_services.ollama_api`, llama.cpp with the real Qwen2.5-Coder
0.5B GGUF) serves it. `serve`, `list` and `pull` behave as the entrypoint script uses them:

    ollama serve    the API on OLLAMA_HOST, serving the first model of OLLAMA_MODEL
    ollama list     NAME ... table from GET /api/tags (exit 1 while the server is down)
    ollama pull M   POST /api/pull; exit 0 once it reports success
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request


def _base() -> str:
    host = os.environ.get("OLLAMA_HOST", "127.0.0.1:11434")
    return f"http://{host}"


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "serve"
    if command == "serve":
        host, _, port = os.environ["OLLAMA_HOST"].rpartition(":")
        model = os.environ["OLLAMA_MODEL"].split(",")[0].strip()
        args = ["-m", "ai_services.ollama_api", "--host", host, "--port", port]
        os.execv(sys.executable, [sys.executable, *args, "--model-name", model, "--n-ctx", "2048"])
    if command == "list":
        try:
            with urllib.request.urlopen(f"{_base()}/api/tags", timeout=2) as response:
                models = json.load(response)["models"]
        except (OSError, ValueError):
            return 1
        print("NAME                ID              SIZE      MODIFIED")
        for model in models:
            print(f"{model['name']}    0123456789ab    491 MB    now")
        return 0
    if command == "pull":
        body = json.dumps({"model": argv[1]}).encode()
        request = urllib.request.Request(f"{_base()}/api/pull", data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                lines = [json.loads(line) for line in response.read().splitlines() if line]
        except (OSError, ValueError) as exc:
            print(f"pull failed: {exc}", file=sys.stderr)
            return 1
        return 0 if lines and lines[-1].get("status") == "success" else 1
    print(f"ollama stand-in: unsupported command {command!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""`ollama_catalog.router` alone: what the server says about its one model."""

from __future__ import annotations

import json

from ai_services import ollama_catalog
from ai_services.ollama_catalog import NO_MANIFEST, OLLAMA_VERSION
from tests.unit.ai_services.llm_double import MODEL


async def test_root_and_version(client) -> None:
    async with client(ollama_catalog.router) as http:
        root = await http.get("/")
        head = await http.head("/")
        version = await http.get("/api/version")
    assert root.text == "Ollama is running" and head.status_code == 200
    assert version.json() == {"version": OLLAMA_VERSION}


async def test_ps_lists_the_model_only_once_loaded_and_tags_waits_for_it(client, engine) -> None:
    async with client(ollama_catalog.router) as http:
        before = await http.get("/api/ps")
        tags = await http.get("/api/tags")  # waits for the load
        after = await http.get("/api/ps")
    assert before.json() == {"models": []}
    (listed,) = tags.json()["models"]
    assert listed["name"] == listed["model"] == MODEL
    assert listed["digest"] == "ab" * 32 and listed["size"] == 4096
    assert listed["details"]["quantization_level"] == "Q4_K_M"
    (running,) = after.json()["models"]
    assert running == {
        **listed,
        "expires_at": "2318-01-01T00:00:00Z",
        "size_vram": 0,
        "context_length": engine.n_ctx,
    }


async def test_show_reports_metadata_as_numbers_and_tool_capability(client, gguf) -> None:
    async with client(ollama_catalog.router) as http:
        shown = await http.post("/api/show", json={"model": "qwen2.5-coder:0.5b"})
        other = await http.post("/api/show", json={"name": "llama3"})
    info = shown.json()
    assert info["capabilities"] == ["completion", "tools"]
    assert info["license"] == "apache-2.0"
    assert info["modelfile"].endswith(f"FROM {gguf}\n")
    assert info["model_info"]["qwen2.context_length"] == 32768
    assert info["model_info"]["qwen2.rope.freq_base"] == 1e6
    assert not any(key.startswith("tokenizer.") for key in info["model_info"])
    assert (other.status_code, other.json()) == (404, {"error": "model 'llama3' not found"})


async def test_pull_succeeds_for_the_served_model_and_fails_as_ollama_for_others(client) -> None:
    async with client(ollama_catalog.router) as http:
        served = await http.post("/api/pull", json={"model": MODEL})
        quiet = await http.post("/api/pull", json={"model": MODEL, "stream": False})
        other = await http.post("/api/pull", json={"model": "llama3"})
        other_quiet = await http.post("/api/pull", json={"model": "llama3", "stream": False})
    lines = [json.loads(line) for line in served.text.splitlines()]
    assert lines[0] == {"status": "pulling manifest"} and lines[-1] == {"status": "success"}
    assert lines[1]["digest"] == "sha256:" + "ab" * 32
    assert quiet.json() == {"status": "success"}
    assert [json.loads(line) for line in other.text.splitlines()] == [
        {"status": "pulling manifest"},
        {"error": NO_MANIFEST},
    ]
    assert (other_quiet.status_code, other_quiet.json()) == (500, {"error": NO_MANIFEST})

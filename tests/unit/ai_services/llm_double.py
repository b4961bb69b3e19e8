"""`ScriptedEngine`, a stand-in for `ai_services.llm_engine.LlamaEngine` in route tests.

It has the engine's surface the Ollama-API routes use (`model`, `info`, `gguf`, `n_ctx`,
`stream_chat`, `stream_completion`) and keeps its contract: `QueueFullError` before streaming
when busy, text pieces then one `GenerationStats`. Instead of llama.cpp it replays scripted
pieces and records what each call asked for, so a router can be tested without a model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ai_services.errors import QueueFullError
from ai_services.llm_engine import GenerationParams, GenerationStats, ModelInfo
from ai_services.metrics import ServiceMetrics
from ai_services.model_slot import ModelSlot

MODEL = "qwen2.5-coder:0.5b"  # the name the routes serve it as
GGUF_MTIME = 1_700_000_000  # the GGUF file's mtime in the tests
TEMPLATE = "{% if tools %}<tools>{{ tools }}</tools>{% endif %}{{ messages }}"


def model_info(gguf: Path) -> ModelInfo:
    """What `LlamaEngine` reports after loading a small Qwen2 GGUF."""
    return ModelInfo(
        path=gguf,
        size=4096,
        digest="ab" * 32,
        modified_at="2025-01-02T03:04:05+00:00",
        metadata={
            "general.architecture": "qwen2",
            "general.file_type": "15",
            "general.size_label": "494M",
            "general.license": "apache-2.0",
            "qwen2.context_length": "32768",
            "qwen2.rope.freq_base": "1000000.0",
            "tokenizer.ggml.model": "gpt2",
        },
        chat_template=TEMPLATE,
    )


@dataclass
class Call:
    """One generation the routes asked for."""

    messages: list[dict[str, Any]] | None
    prompt: str | None
    params: GenerationParams
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None


@dataclass
class ScriptedEngine:
    """Replays `pieces` (then stats with `done_reason`) for every generation."""

    gguf: Path
    pieces: list[str] = field(default_factory=lambda: ["Paris", " is", " the capital."])
    done_reason: str = "stop"
    busy: bool = False
    fail_after: int | None = None  # raise after this many pieces, as a crashed generation would
    n_ctx: int = 2048
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.info: ModelInfo | None = None
        self.model: ModelSlot[Any] = ModelSlot(self.gguf.name, self._load, ServiceMetrics("test"))

    def _load(self) -> object:
        self.info = model_info(self.gguf)
        return object()

    async def stream_chat(
        self,
        messages: list[dict[str, Any]],
        params: GenerationParams,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> AsyncIterator[str | GenerationStats]:
        await self.model.get()
        return self._replay(Call(messages, None, params, tools, response_format))

    async def stream_completion(
        self, prompt: str, params: GenerationParams
    ) -> AsyncIterator[str | GenerationStats]:
        await self.model.get()
        return self._replay(Call(None, prompt, params))

    def _replay(self, call: Call) -> AsyncIterator[str | GenerationStats]:
        if self.busy:
            raise QueueFullError()
        self.calls.append(call)

        async def iterate() -> AsyncIterator[str | GenerationStats]:
            for i, piece in enumerate(self.pieces):
                if i == self.fail_after:
                    raise RuntimeError("llama_decode returned -1")
                yield piece
            yield GenerationStats(
                done_reason=self.done_reason,
                prompt_eval_count=11,
                eval_count=len(self.pieces),
                prompt_eval_duration=2_000,
                eval_duration=3_000,
                total_duration=5_000,
            )

        return iterate()

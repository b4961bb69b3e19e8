"""llama.cpp (llama-cpp-python `Llama`) behind an async, serialized, cancellable token stream.

Both LLM servers (`ollama_api`, `llama_ws_server`) use this: llama.cpp is not thread-safe, so every
generation runs on one dedicated thread, one at a time, in arrival order, with a bounded waiting
room; the event loop stays free meanwhile. Closing the stream early (the client went away) stops
the generation at the next token, so a hung-up caller does not hold the model.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ai_services.errors import ServiceError
from ai_services.metrics import ServiceMetrics
from ai_services.model_slot import ModelSlot
from ai_services.work_queue import WorkQueue, stream_from_thread
from voice_connector_core.devices import Device, llama_gpu_layers

log = logging.getLogger("ai_services.llm")

# llama.cpp `general.file_type` -> Ollama's quantization_level names.
FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    32: "BF16",
}
ROLES = ("system", "user", "assistant", "tool")
TOOL_TAG = "<tool_call>"
TOOL_CALL_RE = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)


@dataclass
class GenerationParams:
    """Sampling options; defaults are Ollama's."""

    temperature: float = 0.8
    top_p: float = 0.9
    top_k: int = 40
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_penalty: float = 1.1
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None

    # Ollama option / legacy key -> (attribute, type)
    KEYS: ClassVar[dict[str, tuple[str, type]]] = {
        "temperature": ("temperature", float),
        "top_p": ("top_p", float),
        "top_k": ("top_k", int),
        "min_p": ("min_p", float),
        "typical_p": ("typical_p", float),
        "repeat_penalty": ("repeat_penalty", float),
        "presence_penalty": ("presence_penalty", float),
        "frequency_penalty": ("frequency_penalty", float),
        "num_predict": ("max_tokens", int),
        "max_tokens": ("max_tokens", int),
        "seed": ("seed", int),
        "stop": ("stop", list),
    }

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None) -> GenerationParams:
        """Parse Ollama `options` (or legacy request keys); unknown keys are ignored and logged."""
        params = cls()
        ignored = []
        for key, value in (options or {}).items():
            if value is None:
                continue
            if key not in cls.KEYS:
                ignored.append(key)
                continue
            attr, kind = cls.KEYS[key]
            if kind is list:
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
                    raise ServiceError(400, f"option {key!r} must be a string or list of strings")
            else:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ServiceError(400, f"option {key!r} must be a number, got {value!r}")
                if kind is int and value != int(value):
                    raise ServiceError(400, f"option {key!r} must be an integer, got {value!r}")
                value = kind(value)
            setattr(params, attr, value)
        if params.max_tokens is not None and params.max_tokens < 0:
            params.max_tokens = None  # Ollama: -1 = until the model stops, -2 = fill the context
        if ignored:
            log.debug("ignoring options %s", ", ".join(ignored))
        return params

    def llama_kwargs(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "typical_p": self.typical_p,
            "repeat_penalty": self.repeat_penalty,
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
            "max_tokens": self.max_tokens,
            "stop": self.stop,
            "seed": self.seed,
        }


@dataclass
class GenerationStats:
    """Counts and durations (ns) of one generation, in Ollama's terms."""

    done_reason: str
    prompt_eval_count: int
    eval_count: int
    prompt_eval_duration: int
    eval_duration: int
    total_duration: int
    load_duration: int = 0

    def as_ollama(self) -> dict[str, Any]:
        return {
            "done_reason": self.done_reason,
            "total_duration": self.total_duration,
            "load_duration": self.load_duration,
            "prompt_eval_count": self.prompt_eval_count,
            "prompt_eval_duration": self.prompt_eval_duration,
            "eval_count": self.eval_count,
            "eval_duration": self.eval_duration,
        }


def check_messages(raw: object) -> list[dict[str, Any]]:
    """Chat messages in llama.cpp's (OpenAI) shape from Ollama-style ones, or a 400 error."""
    if not isinstance(raw, list):
        raise ServiceError(400, "messages must be a list")
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(raw):
        if not isinstance(msg, dict) or msg.get("role") not in ROLES:
            raise ServiceError(400, f"messages[{i}] needs a role among {', '.join(ROLES)}")
        content = msg.get("content") or ""
        if not isinstance(content, str):
            raise ServiceError(400, f"messages[{i}].content must be a string")
        item: dict[str, Any] = {"role": msg["role"], "content": content}
        if msg.get("tool_calls"):
            item["tool_calls"] = [
                {"type": "function", "function": call.get("function", call)}
                for call in msg["tool_calls"]
                if isinstance(call, dict)
            ]
        if msg.get("tool_name"):
            item["name"] = msg["tool_name"]
        out.append(item)
    return out


def check_tools(raw: object) -> list[Any] | None:
    """A request's `tools` (None when absent or empty), or a 400 error if not a list."""
    tools = raw or None
    if tools is not None and not isinstance(tools, list):
        raise ServiceError(400, "tools must be a list")
    return tools


def _as_call(block: str, names: set[str] | None) -> dict[str, Any] | None:
    try:
        data = json.loads(block)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    if names is not None and data["name"] not in names:
        return None
    args = data.get("arguments", data.get("parameters")) or {}
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            args = {"value": args}
    return {"function": {"name": data["name"], "arguments": args}}


def parse_tool_calls(text: str, names: set[str] | None = None) -> tuple[str, list[dict[str, Any]]]:
    """(remaining text, tool calls) from generated text.

    Handles Qwen/Hermes-style `<tool_call>{json}</tool_call>` blocks and, because llama.cpp drops
    the special `<tool_call>` tokens when detokenizing, a bare `{"name", "arguments"}` object (or
    one per line) naming one of the offered tools.
    """
    calls = [c for b in TOOL_CALL_RE.findall(text) if (c := _as_call(b, names))]
    if calls:
        return TOOL_CALL_RE.sub("", text).strip(), calls
    lines = [line for line in text.strip().splitlines() if line.strip()]
    bare = [_as_call(line, names) for line in lines] if lines else []
    if bare and all(bare):
        return "", [c for c in bare if c]
    whole = _as_call(text.strip(), names)
    return ("", [whole]) if whole else (text, [])


class ToolCallFilter:
    """Holds back streamed text that may be a tool call, so calls arrive parsed, not as text.

    Text is held from a `<tool_call>` tag on, or entirely when the answer starts with `{` (llama.cpp
    drops Qwen's special tag tokens, leaving a bare JSON call); plain answers stream through.
    """

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.pending = ""
        self.captured: str | None = None
        self.started = False

    def feed(self, text: str) -> str:
        if self.captured is not None:
            self.captured += text
            return ""
        self.pending += text
        if not self.started:
            head = self.pending.lstrip()
            if not head:
                return ""
            self.started = True
            if head.startswith("{"):
                self.captured, self.pending = self.pending, ""
                return ""
        idx = self.pending.find(TOOL_TAG)
        if idx >= 0:
            out, self.captured, self.pending = self.pending[:idx], self.pending[idx:], ""
            return out
        keep = next(
            (k for k in range(len(TOOL_TAG) - 1, 0, -1) if self.pending.endswith(TOOL_TAG[:k])), 0
        )
        out = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(self.pending) - keep :]
        return out

    def finish(self) -> tuple[str, list[dict[str, Any]]]:
        """(text still held back, parsed tool calls)."""
        if self.captured is None:
            return self.pending, []
        rest, calls = parse_tool_calls(self.captured, self.names)
        return self.pending + rest, calls


def tool_names(tools: list[Any]) -> set[str]:
    """Names of the offered function tools."""
    names = set()
    for tool in tools:
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
            name = tool["function"].get("name")
            if isinstance(name, str):
                names.add(name)
    return names


@dataclass
class ModelInfo:
    """What the Ollama API reports about the served GGUF."""

    path: Path
    size: int
    digest: str
    modified_at: str
    metadata: dict[str, str]
    chat_template: str

    @property
    def details(self) -> dict[str, Any]:
        family = self.metadata.get("general.architecture", "unknown")
        try:
            quant = FILE_TYPES.get(int(self.metadata.get("general.file_type", "-1")), "unknown")
        except ValueError:
            quant = "unknown"
        return {
            "parent_model": "",
            "format": "gguf",
            "family": family,
            "families": [family],
            "parameter_size": self.metadata.get("general.size_label", "unknown"),
            "quantization_level": quant,
        }

    @property
    def context_length(self) -> int | None:
        arch = self.metadata.get("general.architecture", "")
        value = self.metadata.get(f"{arch}.context_length")
        return int(value) if value and value.isdigit() else None


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's cpuset).

    llama-cpp-python's own default is half of `os.cpu_count()`: one thread on a 2-core machine,
    which halves generation speed there (measured: 10-13 → 17-22 tokens/s with 2 threads).
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class LlamaEngine:
    """One GGUF model, loaded once, generating one request at a time."""

    def __init__(
        self,
        gguf: Path,
        metrics: ServiceMetrics,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        max_queue: int = 64,
        device: Device = "auto",
    ) -> None:
        self.gguf = gguf
        self.n_ctx = n_ctx
        self.n_threads = n_threads or available_cores()
        self.device = device
        self.metrics = metrics
        self.model: ModelSlot[Any] = ModelSlot(gguf.name, self._load, metrics)
        self.queue = WorkQueue(1, max_queue, metrics, "llama")
        self.info: ModelInfo | None = None

    def _load(self) -> Any:
        import hashlib
        from datetime import UTC, datetime

        from llama_cpp import Llama

        llm = Llama(
            model_path=str(self.gguf),
            n_ctx=self.n_ctx,
            n_threads=self.n_threads,
            n_gpu_layers=llama_gpu_layers(self.device),
            verbose=False,
        )
        stat = self.gguf.stat()
        # A cheap stable identifier (hashing 0.5 GB at start-up would delay readiness).
        head = hashlib.sha256()
        with self.gguf.open("rb") as fh:
            head.update(fh.read(1 << 20))
        head.update(str(stat.st_size).encode())
        self.info = ModelInfo(
            path=self.gguf,
            size=stat.st_size,
            digest=head.hexdigest(),
            modified_at=datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(),
            metadata=dict(llm.metadata),
            chat_template=llm.metadata.get("tokenizer.chat_template", ""),
        )
        return llm

    async def stream_chat(
        self,
        messages: list[dict[str, Any]],
        params: GenerationParams,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> AsyncIterator[str | GenerationStats]:
        """Text pieces then one `GenerationStats`; raises `QueueFullError` before streaming."""
        llm = await self.model.get()
        kwargs = params.llama_kwargs()
        if tools:
            kwargs["tools"] = tools
        if response_format:
            kwargs["response_format"] = response_format

        def chunks() -> Iterator[tuple[str, str | None]]:
            for chunk in llm.create_chat_completion(messages=messages, stream=True, **kwargs):
                choice = chunk["choices"][0]
                yield choice["delta"].get("content") or "", choice.get("finish_reason")

        return self._stream(llm, chunks)

    async def stream_completion(
        self, prompt: str, params: GenerationParams
    ) -> AsyncIterator[str | GenerationStats]:
        """Raw completion of `prompt` (no chat template), same stream shape as `stream_chat`."""
        llm = await self.model.get()

        def chunks() -> Iterator[tuple[str, str | None]]:
            stream = llm.create_completion(prompt=prompt, stream=True, **params.llama_kwargs())
            for chunk in stream:
                choice = chunk["choices"][0]
                yield choice.get("text") or "", choice.get("finish_reason")

        return self._stream(llm, chunks)

    def _stream(
        self, llm: Any, chunks: Callable[[], Iterator[tuple[str, str | None]]]
    ) -> AsyncIterator[str | GenerationStats]:
        self.queue.admit()  # QueueFullError now, before any response has started

        def produce(emit: Callable[[str | GenerationStats], None], stop: threading.Event) -> None:
            started = time.perf_counter_ns()
            first: int | None = None
            count, reason = 0, "stop"
            if stop.is_set():  # the client left while this job waited for the model
                return
            gen = chunks()
            try:
                for text, finish in gen:
                    if stop.is_set():
                        reason = "cancelled"
                        break
                    if text:
                        if first is None:
                            first = time.perf_counter_ns()
                        count += 1
                        emit(text)
                    if finish:
                        reason = finish
            finally:
                gen.close()
            end = time.perf_counter_ns()
            first = first or end
            stats = GenerationStats(
                done_reason=reason,
                prompt_eval_count=max(llm.n_tokens - count, 0),
                eval_count=count,
                prompt_eval_duration=first - started,
                eval_duration=end - first,
                total_duration=end - started,
            )
            self._record(stats)  # here, not in the consumer: it may be gone (cancelled)
            emit(stats)

        async def iterate() -> AsyncIterator[str | GenerationStats]:
            try:
                async for item in stream_from_thread(produce, self.queue.submit_raw):
                    yield item
            except ValueError as exc:  # llama.cpp's word for bad input, e.g. prompt > n_ctx
                raise ServiceError(400, str(exc)) from None
            finally:
                self.queue.release()

        return iterate()

    def _record(self, stats: GenerationStats) -> None:
        service = self.metrics.service
        self.metrics.requests.labels(service, "generation", stats.done_reason).inc()
        self.metrics.tokens.labels(service).inc(stats.eval_count)
        self.metrics.first_output.labels(service, "generation").observe(
            stats.prompt_eval_duration / 1e9
        )
        self.metrics.latency.labels(service, "generation").observe(stats.total_duration / 1e9)
        log.info(
            "generated %d tokens (%s), prompt %d tokens, first token after %.0f ms, %.1f tok/s",
            stats.eval_count,
            stats.done_reason,
            stats.prompt_eval_count,
            stats.prompt_eval_duration / 1e6,
            stats.eval_count / (stats.eval_duration / 1e9) if stats.eval_duration else 0.0,
        )

"""Per-provider settings of `[stt]`, `[llm]` and `[tts]`, one model per provider.

Why: one flat model of every provider's knobs let `beam_size` be set for Vosk and silently do
nothing. Each section is a discriminated union keyed by `provider` (as Pipecat's per-service
`Settings`/`InputParams`): the keys of the `...Common` base are shared by every provider of the
section, the rest belong to one provider, and a key of another provider is a config error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal, Self

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from voice_connector_core.config.schema import Section, existing_path, require_scheme
from voice_connector_core.devices import Device

FIRST_CHUNK_WORDS = 4
"""`[tts] first_chunk_words` by default. An answer such as "The capital of France is Paris." has
no clause to cut at, so the caller waited for the whole sentence to be generated; four words
are enough for a natural first phrase. Called alternately with the clause-only node
(`benchmarks.voice_to_voice --variant`, 2 cores at load average 6), first LLM token → first TTS
audio fell from 5.2 s to 1.6 s at p50; the cost is a phrase break after the fourth word of such a
sentence."""


def _blank_is_none(value: object) -> object:
    return None if value == "" else value


OptionalPath = Annotated[
    Path | None, BeforeValidator(_blank_is_none), AfterValidator(existing_path)
]
"""A path key: empty means the bundled default; a configured path must exist at start-up."""


class LocalOrRemote(Section):
    """A service run in this process (mode = local) or reached over the network at `url`."""

    remote_schemes: ClassVar[tuple[str, ...]] = ("ws://", "wss://")

    provider: str
    mode: Literal["local", "remote"] = Field(
        "local",
        description="local: the model runs in this process; remote: a network service at url.",
    )
    url: str = Field("", description="Remote service URL.")

    @model_validator(mode="after")
    def _url_when_remote(self) -> Self:
        if self.mode == "remote" and not self.url:
            raise ValueError("url is required when mode = remote")
        if self.mode == "remote":
            when = f"provider = {self.provider} and mode = remote"
            require_scheme(self.url, self.remote_schemes, when)
        return self


class STTCommon(LocalOrRemote):
    """Keys every speech-to-text provider takes."""

    provider: Literal["faster_whisper", "vosk"] = Field(
        "faster_whisper",
        description="faster_whisper (buffered per utterance) or vosk (streaming); decides which "
        "provider keys below apply.",
    )
    model_path: OptionalPath = Field(
        None,
        description="Local model directory. Empty: the bundled model (Whisper tiny.en; "
        "Vosk Korean).",
    )
    language: str = Field("en", description="Spoken language (ISO code).")
    url: str = Field(
        "",
        description="Remote service URL (Whisper service http://, vosk-server ws://). Whisper: "
        "several, comma-separated, fail over in order when one is unreachable.",
    )


class FasterWhisperSTT(STTCommon):
    """faster-whisper: in process (CTranslate2), or the Whisper HTTP service."""

    remote_schemes: ClassVar[tuple[str, ...]] = ("http://", "https://")

    provider: Literal["faster_whisper"] = Field("faster_whisper", description="faster_whisper.")
    compute_type: str = Field("int8", description="faster-whisper compute type on CPU.")
    device: Device = Field(
        "auto",
        description="Where the local Whisper model runs: auto (the GPU when CTranslate2 sees a "
        "CUDA device, else the CPU), cpu or cuda (start-up fails without one).",
    )
    beam_size: int = Field(
        5,
        ge=1,
        le=10,
        description="faster-whisper beam size. 5 (Pipecat's and faster-whisper's default) is the "
        "most accurate on short phone segments (benchmarks/results/word_accuracy.md); 1 decodes "
        "faster.",
    )
    decode_window: Literal["fitted", "full"] = Field(
        "fitted",
        description="Whisper's audio window: fitted (the utterance plus 3 s, at least 10 s; "
        "a decode that fails faster-whisper's checks or repeats itself is redone on the full "
        "window) or full (always 30 s, as faster-whisper pads). fitted decoded a phone turn in "
        "about a third of the time with no loss of words (benchmarks/results/word_accuracy.md).",
    )


class VoskSTT(STTCommon):
    """Vosk: streaming, in process or a vosk-server over WebSocket."""

    provider: Literal["vosk"] = Field("vosk", description="vosk.")
    sample_rate: int = Field(16000, description="Rate sent to a remote Vosk server.")


class LLMCommon(Section):
    """Keys every LLM provider takes."""

    url_schemes: ClassVar[tuple[str, ...]] = ("http://", "https://")

    provider: Literal["ollama", "llama_ws"] = Field(
        "ollama",
        description="ollama (native API) or llama_ws (legacy Llama WebSocket service); decides "
        "which provider keys below apply.",
    )
    url: str = Field(
        "http://127.0.0.1:11434", description="Ollama host, or the Llama WebSocket URL (ws://...)."
    )
    system_prompt: str = Field(
        "You are a friendly phone assistant. Answer in one or two short spoken sentences.",
        description="System prompt opening every conversation.",
    )
    temperature: float = Field(0.2, ge=0, le=2, description="Sampling temperature.")
    max_tokens: int = Field(80, ge=1, description="Longest answer, in tokens.")
    greeting: str = Field(
        "Hello! How can I help you?",
        description="Spoken when the call starts; empty: wait silently.",
    )
    tools: bool = Field(
        True,
        description="Offer call-control tools (hang up, transfer) to models that support them.",
    )

    @model_validator(mode="after")
    def _url_scheme(self) -> Self:
        require_scheme(self.url, self.url_schemes, f"provider = {self.provider}")
        return self


class OllamaLLM(LLMCommon):
    """Ollama's native API; on a loopback url with no Ollama, the bundled local server."""

    provider: Literal["ollama"] = Field("ollama", description="ollama.")
    model: str = Field("qwen2.5-coder:0.5b", description="Model name asked of Ollama.")
    model_path: str = Field(
        "",
        description="GGUF file the bundled local LLM server serves under `model` when no Ollama "
        "answers on a loopback `url` (empty: the bundled Qwen2.5-Coder 0.5B). Another GGUF is "
        "this one key.",
    )
    server_threads: int = Field(
        0,
        ge=0,
        description="llama.cpp threads of the bundled local LLM server (0: every core this "
        "process may use but one, left to the node's own STT, TTS and VAD; at least one).",
    )
    device: Device = Field(
        "auto",
        description="Where the bundled local LLM server runs the model: auto (every layer on the "
        "GPU when llama.cpp is a GPU build, else the CPU), cpu or cuda (start-up fails "
        "without a GPU build).",
    )
    keep_alive: str = Field("30m", description="How long Ollama keeps the model loaded.")
    pull_missing: bool = Field(False, description="On start-up, pull the model if Ollama lacks it.")


class LlamaWSLLM(LLMCommon):
    """The legacy Llama WebSocket service: it serves its own model."""

    url_schemes: ClassVar[tuple[str, ...]] = ("ws://", "wss://")

    provider: Literal["llama_ws"] = Field("llama_ws", description="llama_ws.")


class TTSCommon(LocalOrRemote):
    """Keys every text-to-speech provider takes."""

    provider: Literal["piper"] = Field("piper", description="Text-to-speech engine.")
    url: str = Field("", description="Remote Piper WebSocket URL, e.g. ws://piper:8000/tts.")


class PiperTTS(TTSCommon):
    """Piper: in process (onnxruntime), or the Piper WebSocket service."""

    provider: Literal["piper"] = Field("piper", description="piper.")
    voice_path: OptionalPath = Field(
        None,
        description="Piper voice .onnx (its .onnx.json beside). Empty: bundled en_US-joe-medium.",
    )
    voice: str = Field(
        "en_US-joe-medium", description="Voice name asked of a remote Piper service."
    )
    device: Device = Field(
        "auto",
        description="Where the local Piper voice runs: auto (the GPU when onnxruntime has its "
        "CUDA provider, onnxruntime-gpu), cpu or cuda (start-up fails without it).",
    )
    first_chunk_words: int = Field(
        FIRST_CHUNK_WORDS,
        ge=0,
        description="Each answer's first chunk goes to synthesis at its first clause or "
        "sentence end, or after this many words if that comes first (0: no word limit). Later "
        "chunks are whole sentences.",
    )


STTSettings = Annotated[FasterWhisperSTT | VoskSTT, Field(discriminator="provider")]
LLMSettings = Annotated[OllamaLLM | LlamaWSLLM, Field(discriminator="provider")]
TTSSettings = PiperTTS
"""One provider so far; a second makes it a union like the others."""

PROVIDERS: dict[str, dict[str, type[Section]]] = {
    "stt": {"faster_whisper": FasterWhisperSTT, "vosk": VoskSTT},
    "llm": {"ollama": OllamaLLM, "llama_ws": LlamaWSLLM},
    "tts": {"piper": PiperTTS},
}
"""Section → provider → its model; the first provider is the section's default."""

COMMON: dict[str, type[Section]] = {"stt": STTCommon, "llm": LLMCommon, "tts": TTSCommon}
"""Section → the keys all its providers share."""

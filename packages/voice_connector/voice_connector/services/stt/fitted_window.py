"""Whisper decoding on a window fitted to the utterance instead of a fixed 30 s.

faster-whisper pads every utterance to Whisper's 30 s window, so a 2 s question costs the
encoder (and every decoder step's cross-attention) as much as 30 s of speech. CTranslate2's
Whisper takes shorter feature windows; on phone turns of 2-9 s a window of the utterance plus
3 s, rounded up to 5 s and at least 10 s, decoded in about a third of the time (2 cores,
tiny.en int8, 35 utterances: median 100 ms against 310 ms, 3 decodes redone) with no loss of
words (WER 0.043 against 0.056; benchmarks/results/word_accuracy.md has the call-path figures).

The decode is faster-whisper's own (timestamp tokens on: without them, the same model on the
same phone segments dropped a leading "four" and wrote "4567" for "four five six seven"), on
the shorter window. A short window makes Whisper likelier to run on past the speech and say it
again: words it places after the audio's end are dropped, and every decode is checked with
faster-whisper's own failure tests (compression ratio, average log probability, hitting the
length cap) plus a self-repetition test; one that fails is decoded again on the full 30 s window
by faster-whisper's `transcribe`, exactly as before. That fallback also takes utterances near
30 s and decodes that use a prompt or hot words.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

SAMPLE_RATE = 16000
FULL_WINDOW_SECS = 30
FRAMES_PER_SECOND = 100
SECONDS_PER_TIMESTAMP = 0.02
MARGIN_SECS = 3.0
"""Silence after the speech inside the window: less made Whisper repeat itself more often."""
STEP_SECS = 5
"""Windows come in a few sizes (10, 15, ... s): CTranslate2 reuses its buffers between them."""
MIN_WINDOW_SECS = 10
"""A 5 s window made Whisper run on past a short question in 8 of 35 decodes; 10 s, in 3."""
TOKENS_PER_SECOND = 8
"""Length cap: fast speech is about 4 tokens a second; a decode that reaches twice that loops."""
MAX_INITIAL_TIMESTAMP_INDEX = 50
"""The first segment starts within 1 s (faster-whisper's `max_initial_timestamp`)."""
MAX_COMPRESSION_RATIO = 2.4
MIN_AVG_LOGPROB = -1.0
"""faster-whisper's own thresholds for a failed decode (`compression_ratio_threshold`,
`log_prob_threshold`)."""


@dataclass(frozen=True)
class Segment:
    """What Pipecat's `WhisperSTTService.run_stt` reads of a faster-whisper segment."""

    text: str
    no_speech_prob: float


def window_secs(duration: float) -> int:
    """The window for `duration` seconds of audio: speech + margin, rounded up to a step."""
    fitted = math.ceil((duration + MARGIN_SECS) / STEP_SECS) * STEP_SECS
    return min(FULL_WINDOW_SECS, max(MIN_WINDOW_SECS, fitted))


def repeats_itself(text: str) -> bool:
    """Whether the words read as a phrase of two or more words said again ("How far is the
    moon? How far is the moon"): Whisper's typical run-on past the end of the speech."""
    words = re.findall(r"[\w']+", text.lower())
    count = len(words)
    return any(count - p >= 2 and words[p:] == words[: count - p] for p in range(1, count))


def spoken_tokens(generated: list[int], tokenizer: Any, duration: float) -> list[int]:
    """The text tokens of a decode with timestamps, up to the first timestamp at or past the
    audio's end (words the model places after the audio are a run-on, not speech)."""
    tokens = []
    for token in generated:
        if token >= tokenizer.timestamp_begin:
            if (token - tokenizer.timestamp_begin) * SECONDS_PER_TIMESTAMP >= duration:
                break
        elif token < tokenizer.eot:
            tokens.append(token)
    return tokens


def compression_ratio(text: str) -> float:
    from faster_whisper.transcribe import get_compression_ratio

    return float(get_compression_ratio(text)) if text else 0.0


class FittedWindowWhisper:
    """A shared faster-whisper model, with `transcribe` decoding on a fitted window.

    Stands in for the model in Pipecat's `WhisperSTTService`, which calls `transcribe(audio,
    language=..., hotwords=..., initial_prompt=...)` and reads each segment's `text` and
    `no_speech_prob`. `fitted=False` keeps faster-whisper's 30 s window for every utterance.
    """

    def __init__(self, model: Any, *, beam_size: int = 5, fitted: bool = True) -> None:
        self._model = model
        self._beam_size = beam_size
        self._fitted = fitted
        self._prompts: dict[str, tuple[Any, list[int]]] = {}
        self.fallbacks = 0
        """Fitted decodes that failed a check and were decoded again on the full window."""

    def transcribe(self, audio: np.ndarray, **kwargs: Any) -> tuple[list[Any], Any]:
        duration = len(audio) / SAMPLE_RATE
        plain = not (kwargs.get("hotwords") or kwargs.get("initial_prompt"))
        if self._fitted and plain and window_secs(duration) < FULL_WINDOW_SECS:
            segment = self._decode_fitted(audio, kwargs.get("language") or "en")
            if segment is not None:
                return [segment], None
            self.fallbacks += 1
        segments, info = self._model.transcribe(
            audio, **{**kwargs, "beam_size": self._beam_size, "vad_filter": False}
        )
        return list(segments), info

    def _tokenizer(self, language: str) -> tuple[Any, list[int]]:
        """faster-whisper's tokenizer for `language` and the tokens it suppresses, built once."""
        if language not in self._prompts:
            from faster_whisper.tokenizer import Tokenizer
            from faster_whisper.transcribe import get_suppressed_tokens

            multilingual = self._model.model.is_multilingual
            tokenizer = Tokenizer(
                self._model.hf_tokenizer,
                multilingual,
                task="transcribe",
                language=language if multilingual else "en",
            )
            self._prompts[language] = (tokenizer, get_suppressed_tokens(tokenizer, [-1]))
        return self._prompts[language]

    def _decode_fitted(self, audio: np.ndarray, language: str) -> Segment | None:
        """One decode on the fitted window; None when it fails a check."""
        import ctranslate2

        duration = len(audio) / SAMPLE_RATE
        seconds = window_secs(duration)
        padded = np.zeros(seconds * SAMPLE_RATE, dtype=np.float32)
        padded[: len(audio)] = audio
        features = self._model.feature_extractor(padded)[:, : seconds * FRAMES_PER_SECOND]
        tokenizer, suppressed = self._tokenizer(language)
        cap = int(duration * TOKENS_PER_SECOND) + 10
        result = self._model.model.generate(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None])),
            [tokenizer.sot_sequence],  # with timestamps, as faster-whisper decodes by default
            beam_size=self._beam_size,
            max_length=cap,
            suppress_blank=True,
            suppress_tokens=suppressed,
            max_initial_timestamp_index=MAX_INITIAL_TIMESTAMP_INDEX,
            return_scores=True,
            return_no_speech_prob=True,
        )[0]
        generated = result.sequences_ids[0]
        text = tokenizer.decode(spoken_tokens(generated, tokenizer, duration))
        avg_logprob = result.scores[0] * len(generated) / (len(generated) + 1)
        if (
            len(generated) >= cap - 2
            or compression_ratio(text) > MAX_COMPRESSION_RATIO
            or avg_logprob < MIN_AVG_LOGPROB
            or repeats_itself(text)
        ):
            return None
        return Segment(text=text, no_speech_prob=result.no_speech_prob)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

"""Speak the first clause of each answer as soon as it is complete.

Pipecat's TTS services aggregate LLM tokens into sentences before synthesis, so the caller hears
nothing until the whole first sentence has been generated. `FirstClauseAggregator` is Pipecat's
`SimpleTextAggregator` with one change: until the first chunk of a response has been released,
a clause boundary (a comma, semicolon, colon or dash followed by a space) releases it too, and so
does, with `first_words` set, the first that many words when no boundary came sooner (`[tts]
first_chunk_words`: an answer like "The capital of France is Paris." has no clause to cut at).
Later chunks stay sentence-sized, which keeps Piper's prosody natural; a new response (flush,
reset or barge-in) starts with a clause again. It is installed the way Pipecat's own services
install theirs: by replacing the service's `_text_aggregator`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from pipecat.services.tts_service import TTSService
from pipecat.utils.text.base_text_aggregator import Aggregation, TextType
from pipecat.utils.text.simple_text_aggregator import SimpleTextAggregator, _LookaheadState

CLAUSE_MARKS = frozenset(",;:—–")
"""Punctuation that ends a clause when a space follows (so "1,000" and "10:30" stay whole)."""
SPACED_DASHES = (" - ", " -- ")


class FirstClauseAggregator(SimpleTextAggregator):
    """Sentence aggregation whose first chunk per response may end at a clause boundary."""

    def __init__(self, *, first_words: int = 0, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._first_released = False
        self._first_words = first_words

    async def aggregate(self, text: str) -> AsyncIterator[Aggregation]:
        if self._first_released or self._aggregation_type == TextType.TOKEN:
            async for aggregation in super().aggregate(text):
                yield aggregation
            return
        for index, char in enumerate(text):
            self._text += char
            result = (
                await self._check_sentence_with_lookahead(char)
                or self._clause_end(char)
                or self._words_end(char)
            )
            if result is not None:
                self._first_released = True
                yield result
                async for aggregation in super().aggregate(text[index + 1 :]):
                    yield aggregation
                return

    def _clause_end(self, char: str) -> Aggregation | None:
        """The buffered clause, if `char` (a space) just completed one."""
        if not char.isspace():
            return None
        before = self._text[:-1].rstrip(" ")
        ends_clause = before[-1:] in CLAUSE_MARKS or self._text.endswith(SPACED_DASHES)
        clause = before.rstrip(" -").strip() if self._text.endswith(SPACED_DASHES) else before
        if not ends_clause or not clause.strip(" ,;:—–"):
            return None
        self._text = ""
        # A sentence candidate still pending (an abbreviation's period) went out with the clause.
        self._lookahead_state = _LookaheadState.IDLE
        return Aggregation(text=clause.strip(" "), type=TextType.SENTENCE)

    def _words_end(self, char: str) -> Aggregation | None:
        """The buffered words, if `char` (a space) ended the `first_words`-th of them."""
        if not self._first_words or not char.isspace():
            return None
        if (
            len(self._text.split()) < self._first_words
            or self._lookahead_state != _LookaheadState.IDLE
        ):
            return None
        chunk = self._text.strip()
        self._text = ""
        return Aggregation(text=chunk, type=TextType.SENTENCE)

    async def reset(self) -> None:
        """Pipecat flushes (and so resets) at each response's end: the next starts clause-first."""
        await super().reset()
        self._first_released = False

    async def handle_interruption(self) -> None:
        await super().handle_interruption()
        self._first_released = False


def speak_first_clause_early(service: TTSService, first_words: int = 0) -> None:
    """Give `service` the clause-first aggregator, keeping its aggregation mode and language."""
    current = service._text_aggregator
    service._text_aggregator = FirstClauseAggregator(
        first_words=first_words,
        aggregation_type=current.aggregation_type,
        language=current.language,
    )

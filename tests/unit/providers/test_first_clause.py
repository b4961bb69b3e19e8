"""The TTS speaks each answer's first clause as soon as it is complete, then whole sentences."""

from __future__ import annotations

from pathlib import Path

from voice_connector.services.tts.first_clause import FirstClauseAggregator
from voice_connector.services.tts.piper_local import LocalPiperTTSService
from voice_connector_core import models


async def chunks(aggregator: FirstClauseAggregator, tokens: list[str]) -> list[str]:
    """What the TTS would synthesize, token by token as an LLM streams them, then the flush."""
    out = []
    for token in tokens:
        out += [a.text async for a in aggregator.aggregate(token)]
    rest = await aggregator.flush()
    return [*out, *([rest.text] if rest else [])]


def tokens(text: str) -> list[str]:
    """Word-sized tokens, as an LLM sends them."""
    words = text.split(" ")
    return [words[0], *(" " + w for w in words[1:])]


async def test_first_clause_released_then_sentences() -> None:
    answer = "Sure, a week has seven days, Monday to Sunday. Anything else, perhaps? Bye."
    assert await chunks(FirstClauseAggregator(), tokens(answer)) == [
        "Sure,",
        "a week has seven days, Monday to Sunday.",
        "Anything else, perhaps?",
        "Bye.",
    ]


async def test_clause_marks_and_spaced_dash() -> None:
    for text, first in [
        ("Paris; the capital. Yes.", "Paris;"),
        ("Note this: it rains. Ok.", "Note this:"),
        ("Well - maybe not. Ok.", "Well"),
        ("Well — maybe not. Ok.", "Well —"),
    ]:
        assert (await chunks(FirstClauseAggregator(), tokens(text)))[0] == first


async def test_numbers_and_times_are_not_clauses() -> None:
    text = "It costs 1,000 dollars at 10:30 today. Ok."
    assert await chunks(FirstClauseAggregator(), tokens(text)) == [
        "It costs 1,000 dollars at 10:30 today.",
        "Ok.",
    ]


async def test_each_response_starts_clause_first_again() -> None:
    aggregator = FirstClauseAggregator()
    assert await chunks(aggregator, tokens("Yes, it is. Fine, good.")) == [
        "Yes,",
        "it is.",
        "Fine, good.",
    ]
    assert await chunks(aggregator, tokens("No, never.")) == ["No,", "never."]
    [_ async for _ in aggregator.aggregate("Hello there")]
    await aggregator.handle_interruption()
    assert await chunks(aggregator, tokens("Ok, go.")) == ["Ok,", "go."]


async def test_a_sentence_ending_first_is_released_as_a_sentence() -> None:
    assert await chunks(FirstClauseAggregator(), tokens("Hello. How are you, friend?")) == [
        "Hello.",
        "How are you, friend?",
    ]


def test_local_piper_uses_it() -> None:
    voice, config = models.piper_joe_voice()
    service = LocalPiperTTSService(voice_path=Path(voice), config_path=Path(config))
    assert isinstance(service._text_aggregator, FirstClauseAggregator)


async def test_first_words_release_an_answer_without_a_clause() -> None:
    aggregator = FirstClauseAggregator(first_words=4)
    assert await chunks(aggregator, tokens("The capital of France is Paris. It is big.")) == [
        "The capital of France",
        "is Paris.",
        "It is big.",
    ]
    assert await chunks(aggregator, tokens("Yes, of course. Bye.")) == [
        "Yes,",
        "of course.",
        "Bye.",
    ]
    assert await chunks(aggregator, tokens("Hi there. Fine.")) == ["Hi there.", "Fine."]

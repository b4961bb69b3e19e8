"""Pipecat `LLMSettings` for our LLM services: what we set, and None for what we do not offer."""

from __future__ import annotations

from pipecat.services.settings import LLMSettings


def llm_settings(
    *, model: str | None, system_prompt: str, temperature: float, max_tokens: int
) -> LLMSettings:
    """Pipecat wants every field given (None for unsupported), or it logs an error per call."""
    return LLMSettings(
        model=model,
        system_instruction=system_prompt or None,
        temperature=temperature,
        max_tokens=max_tokens,
        top_p=None,
        top_k=None,
        frequency_penalty=None,
        presence_penalty=None,
        seed=None,
        filter_incomplete_user_turns=None,
        user_turn_completion_config=None,
    )

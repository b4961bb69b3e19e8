"""Fixtures of the infra tests (helpers live in `tests.infra.harness`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.infra.harness import Stack, run_stack


@pytest.fixture(scope="session")
def stacks() -> Iterator[Callable[..., Stack]]:
    """Mocked runs, cached per (stack, extra config): each takes a couple of seconds."""
    cache: dict[tuple[str, tuple[tuple[str, str], ...]], Stack] = {}

    def get(stack: str, **config: str) -> Stack:
        key = (stack, tuple(sorted(config.items())))
        if key not in cache:
            cache[key] = run_stack(stack, config)
        return cache[key]

    yield get

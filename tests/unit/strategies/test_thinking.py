"""Thinking is kept apart from the final answer, whole or streamed in any pieces."""

from __future__ import annotations

import pytest

from ponder.strategies.thinking import ThinkingFilter, split_thinking

CASES = [
    ("<think>2+2 is 4</think>\nThe answer is 4.", ("2+2 is 4", "The answer is 4.")),
    ("2+2 is 4</think>The answer is 4.", ("2+2 is 4", "The answer is 4.")),  # opened by template
    ("The answer is 4.", ("", "The answer is 4.")),
    ("<think>still thinking when cut", ("still thinking when cut", "")),
    ("Use <think> tags like this.", ("", "Use <think> tags like this.")),
]


@pytest.mark.parametrize(("text", "parts"), CASES)
def test_split(text: str, parts: tuple[str, str]) -> None:
    assert split_thinking(text) == parts


@pytest.mark.parametrize(("text", "parts"), [case for case in CASES if "</think>T" not in case[0]])
@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_a_stream_in_any_pieces_splits_as_the_whole(
    text: str, parts: tuple[str, str], size: int
) -> None:
    stream = ThinkingFilter()
    thinking, final = "", ""
    for start in range(0, len(text), size):
        t, f = stream.feed(text[start : start + size])
        thinking, final = thinking + t, final + f
    t, f = stream.close()
    thinking, final = thinking + t, final + f
    assert (thinking.strip(), final) == parts

"""Text under a token bound, cut at a sentence boundary, the cut recorded."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

#: Counts ``text`` in the engine's own tokenizer.
TokenCounter = Callable[[str], Awaitable[int]]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass(frozen=True, slots=True)
class Cut:
    """What bounding removed: the text was ``original_tokens`` long."""

    bound: int
    original_tokens: int
    kept_tokens: int
    dropped_chars: int
    at: str  # "sentence", or "word" when even the first sentence was too long


@dataclass(frozen=True, slots=True)
class Workspace:
    text: str
    tokens: int
    cut: Cut | None = None


def sentence_ends(text: str) -> list[int]:
    """Offsets just after each sentence (and line) of ``text``, the last being its end."""
    ends = [match.start() for match in _SENTENCE_END.finditer(text) if match.start() > 0]
    if not ends or ends[-1] != len(text.rstrip()):
        ends.append(len(text.rstrip()))
    return sorted(set(ends))


async def bound_text(text: str, max_tokens: int, count: TokenCounter) -> Workspace:
    """``text`` if it fits in ``max_tokens``, else its longest prefix that ends a sentence.

    The prefix is found by bisection over sentence ends, so a cut costs
    O(log sentences) calls of ``count``.
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    total = await count(text)
    if total <= max_tokens:
        return Workspace(text, total)
    kept, tokens = await longest_prefix(text, sentence_ends(text), max_tokens, count)
    unit = "sentence"
    if not kept:
        words = [match.end() for match in re.finditer(r"\S+", text)]
        kept, tokens = await longest_prefix(text, words, max_tokens, count)
        unit = "word"
    cut = Cut(
        bound=max_tokens,
        original_tokens=total,
        kept_tokens=tokens,
        dropped_chars=len(text) - len(kept),
        at=unit,
    )
    return Workspace(kept, tokens, cut)


async def longest_prefix(
    text: str, ends: Sequence[int], max_tokens: int, count: TokenCounter
) -> tuple[str, int]:
    """The longest ``text[:end]`` over ``ends`` (ascending) within ``max_tokens``, by
    bisection; ``("", 0)`` when none fits."""
    low, high = 0, len(ends) - 1
    best, best_tokens = "", 0
    while low <= high:
        middle = (low + high) // 2
        prefix = text[: ends[middle]].rstrip()
        tokens = await count(prefix)
        if tokens <= max_tokens:
            best, best_tokens = prefix, tokens
            low = middle + 1
        else:
            high = middle - 1
    return best, best_tokens

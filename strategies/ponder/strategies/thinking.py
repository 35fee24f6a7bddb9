"""A reasoning model's thinking, kept apart from its final answer.

Engines return thinking in a field of its own (vLLM's reasoning parsers and
llama.cpp's ``--reasoning-format`` put it in ``reasoning_content``) or inline,
as ``<think>...</think>`` before the answer. Votes, rankings, workspaces and
answers use the final part only; the thinking stays in the trace.
"""

from __future__ import annotations

OPEN = "<think>"
CLOSE = "</think>"


def split_thinking(text: str) -> tuple[str, str]:
    """``(thinking, final)`` of a generation.

    A ``</think>`` with no ``<think>`` before it is a template that opened the
    block in the prompt: what precedes it is thinking. A ``<think>`` that is
    never closed (the generation was cut) leaves no final part.
    """
    start = text.find(OPEN)
    end = text.find(CLOSE)
    if end != -1 and (start == -1 or start > end):
        return text[:end].strip(), text[end + len(CLOSE) :].lstrip()
    if start == -1 or text[:start].strip():
        return "", text  # no think block leads the text
    end = text.find(CLOSE, start)
    if end == -1:
        return text[start + len(OPEN) :].strip(), ""
    return text[start + len(OPEN) : end].strip(), text[end + len(CLOSE) :].lstrip()


class ThinkingFilter:
    """Splits a stream of text deltas into thinking and final text as it arrives.

    Tags may be split across deltas, so text that could be the start of a tag
    is held back until the next delta decides it. A block the template opened
    in the prompt (no ``<think>``, only a ``</think>`` later) cannot be told
    from an answer until its end, so a stream passes such text on as final;
    :func:`split_thinking` of the whole text still separates it.
    """

    def __init__(self) -> None:
        self._pending = ""
        self._state = "start"  # start -> (thinking -> closed ->) final

    def feed(self, delta: str) -> tuple[str, str]:
        """The ``(thinking, final)`` text this delta completes."""
        self._pending += delta
        thinking, final = "", ""
        while self._pending:
            if self._state == "start":
                stripped = self._pending.lstrip()
                if not stripped:
                    return thinking, final
                if stripped.startswith(OPEN):
                    self._pending = stripped[len(OPEN) :]
                    self._state = "thinking"
                elif OPEN.startswith(stripped):
                    return thinking, final  # maybe "<thi": wait for more
                else:
                    self._state = "final"
            elif self._state == "thinking":
                end = self._pending.find(CLOSE)
                if end == -1:
                    keep = _partial_suffix(self._pending, CLOSE)
                    thinking += self._pending[: len(self._pending) - keep]
                    self._pending = self._pending[len(self._pending) - keep :]
                    return thinking, final
                thinking += self._pending[:end]
                self._pending = self._pending[end + len(CLOSE) :]
                self._state = "closed"
            elif self._state == "closed":  # the answer starts at its first visible character
                self._pending = self._pending.lstrip()
                if self._pending:
                    self._state = "final"
            else:
                final += self._pending
                self._pending = ""
        return thinking, final

    def close(self) -> tuple[str, str]:
        """What was held back, once the stream has ended."""
        pending, self._pending = self._pending, ""
        if self._state == "thinking":
            return pending, ""
        return "", pending


def _partial_suffix(text: str, tag: str) -> int:
    """The length of the longest end of ``text`` that begins ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0

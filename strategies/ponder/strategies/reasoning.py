"""The work behind an answer, as the client is shown it (``ponder.reasoning``).

Three levels: ``none`` shows nothing; ``summary`` (the default) shows the
strategy's progress notes (``round 2 of 3: 2 drafts``) and the workspaces it
distilled; ``full`` shows as well every intermediate text an engine wrote:
drafts, summaries, critiques, verdicts, sub-questions. A chat client reads
it as ``delta.reasoning_content`` while it streams and as
``message.reasoning_content`` in the response, the convention of vLLM's
reasoning parsers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

ReasoningLevel = Literal["none", "summary", "full"]

#: Sends reasoning text to a streaming client: (the run's answer index, text).
ReasoningSink = Callable[[int, str], Awaitable[None]]

_RANK: dict[ReasoningLevel, int] = {"none": 0, "summary": 1, "full": 2}


@dataclass
class Reasoning:
    """What one run shows of its work: collected per answer, and streamed when a sink is set.

    Each piece is a paragraph of its own, so that the concatenation of the
    streamed pieces is the text the response carries.
    """

    level: ReasoningLevel = "none"
    sink: ReasoningSink | None = None
    _texts: dict[int, list[str]] = field(default_factory=dict)
    _streamed: set[int] = field(default_factory=set)

    def shows(self, level: ReasoningLevel) -> bool:
        """Whether text of ``level`` is shown at this run's level."""
        return _RANK[self.level] >= _RANK[level] > 0

    async def note(self, text: str, *, index: int = 0) -> None:
        """A progress note (summary level)."""
        await self._add("summary", text.strip() + "\n\n", index)

    async def section(
        self, title: str, text: str, *, level: ReasoningLevel, index: int = 0
    ) -> None:
        """A titled text, a workspace (summary level) or a draft (full level)."""
        await self._add(level, f"[{title}]\n{text.strip()}\n\n", index)

    async def stream(self, text: str, *, index: int = 0) -> None:
        """A piece of a text that arrives as it is generated (summary level): a worked answer
        that a last call then writes in the form the request asked for."""
        self._streamed.add(index)
        await self._add("summary", text, index)

    async def worked_answer(self, text: str, *, index: int = 0) -> None:
        """The strategy's answer, when a last call writes it again in the request's form
        (summary level); nothing if it was streamed as it was generated."""
        if index not in self._streamed:
            await self._add("summary", text.strip() + "\n\n", index)

    def text(self, index: int = 0) -> str | None:
        """Everything shown for answer ``index`` (None: nothing)."""
        pieces = self._texts.get(index)
        if not pieces:
            return None
        return "".join(pieces).strip() or None

    async def _add(self, level: ReasoningLevel, text: str, index: int) -> None:
        if not self.shows(level) or not text:
            return
        self._texts.setdefault(index, []).append(text)
        if self.sink is not None:
            await self.sink(index, text)

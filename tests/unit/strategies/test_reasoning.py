"""What a run shows of its work at each ``ponder.reasoning`` level."""

from __future__ import annotations

import pytest

from ponder.strategies.reasoning import Reasoning, ReasoningLevel


async def shown(level: ReasoningLevel) -> tuple[str | None, list[tuple[int, str]]]:
    sent: list[tuple[int, str]] = []

    async def sink(index: int, text: str) -> None:
        sent.append((index, text))

    reasoning = Reasoning(level, sink)
    await reasoning.note("round 1 of 2: 2 drafts")
    await reasoning.section("draft 1, round 1", "six sevens", level="full")
    await reasoning.section("workspace after round 1", " 42 \n", level="summary")
    await reasoning.note("elsewhere", index=1)
    return reasoning.text(), sent


async def test_none_shows_and_sends_nothing() -> None:
    assert await shown("none") == (None, [])


async def test_summary_shows_notes_and_workspaces_not_drafts() -> None:
    text, sent = await shown("summary")
    assert text == "round 1 of 2: 2 drafts\n\n[workspace after round 1]\n42"
    assert [index for index, _ in sent] == [0, 0, 1]


async def test_full_shows_drafts_too_and_the_stream_joins_to_the_text() -> None:
    text, sent = await shown("full")
    assert text is not None
    assert "[draft 1, round 1]\nsix sevens" in text
    assert "".join(piece for index, piece in sent if index == 0).strip() == text


@pytest.mark.parametrize("streamed", [True, False])
async def test_a_worked_answer_is_shown_once(streamed: bool) -> None:
    reasoning = Reasoning("summary")
    if streamed:
        await reasoning.stream("The answer is 4.")
    await reasoning.worked_answer("The answer is 4.")
    assert reasoning.text() == "The answer is 4."

"""Drafts under one bound keep every draft's conclusion (the PDR workspace defect, fixed)."""

from __future__ import annotations

import pytest

from ponder.workspace import (
    WorkspaceTooSmall,
    bound_drafts,
    fair_shares,
    keep_conclusion,
    minimum_bound,
)


async def words(text: str) -> int:
    return len(text.split())


def long_draft(number: int, answer: int, sentences: int = 60) -> str:
    body = " ".join(
        f"Step {i} of attempt {number} adds a few more words here." for i in range(sentences)
    )
    return f"Attempt {number} starts by reading the problem. {body} So the answer is {answer}."


async def test_a_long_draft_keeps_its_opening_and_its_conclusion() -> None:
    draft = long_draft(1, 42)
    kept = await keep_conclusion(draft, 60, words)
    assert kept.tokens <= 60
    assert kept.text.startswith("Attempt 1 starts by reading the problem.")
    assert kept.text.endswith("So the answer is 42.")
    assert "tokens elided ...]" in kept.text
    assert kept.cut is not None
    assert kept.cut.at == "middle"
    assert kept.cut.original_tokens == await words(draft)


async def test_a_draft_within_its_share_is_whole() -> None:
    kept = await keep_conclusion("Two and two. The answer is 4.", 60, words)
    assert (kept.text, kept.cut) == ("Two and two. The answer is 4.", None)


async def test_every_selected_draft_and_its_answer_reach_the_workspace() -> None:
    # The case: 4 long drafts, k=2 kept, a 256-token workspace.
    drafts = [long_draft(1, 17), long_draft(2, 23)]
    bound = await bound_drafts(drafts, 256, words)
    text = bound.workspace.text
    assert bound.workspace.tokens <= 256
    assert "### Attempt 1" in text
    assert "### Attempt 2" in text
    assert "So the answer is 17." in text
    assert "So the answer is 23." in text
    assert all(cut is not None and cut.kept_tokens <= 128 for cut in bound.cuts)
    assert bound.workspace.cut is not None
    assert bound.workspace.cut.at == "per-draft"


async def test_short_drafts_leave_their_share_to_long_ones() -> None:
    drafts = ["The answer is 5.", long_draft(2, 23)]
    bound = await bound_drafts(drafts, 200, words)
    assert bound.cuts[0] is None  # whole
    assert bound.cuts[1] is not None
    assert bound.cuts[1].kept_tokens > 150  # took what the short one left
    assert fair_shares([4, 500, 500], 200) == [4, 98, 98]
    assert fair_shares([10, 20], 100) == [10, 20]


async def test_a_bound_too_small_for_k_conclusions_names_the_smallest_workable() -> None:
    with pytest.raises(WorkspaceTooSmall) as refused:
        await bound_drafts([long_draft(1, 1), long_draft(2, 2), long_draft(3, 3)], 100, words)
    assert refused.value.minimum == minimum_bound(3)
    assert str(minimum_bound(3)) in str(refused.value)


async def test_a_conclusion_longer_than_its_share_is_cut_at_words_from_the_end() -> None:
    draft = "Intro. " + " ".join(["word"] * 100) + " so the answer is 9"
    kept = await keep_conclusion(draft, 30, words)
    assert kept.tokens <= 30
    assert kept.text.endswith("so the answer is 9")
    assert kept.cut is not None
    assert kept.cut.at == "middle-word"

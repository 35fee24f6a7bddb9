import pytest

from ponder.workspace import (
    agreement_ranking,
    bound_text,
    per_sample_top_k,
    random_k,
    render_drafts,
    score_ranking,
    shared_top_k,
    summary_prompt,
    verified,
)


class WordCounter:
    """Counts words, and how often it was asked."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, text: str) -> int:
        self.calls += 1
        return len(text.split())


async def test_text_within_the_bound_is_kept_whole() -> None:
    workspace = await bound_text("One two three. Four five.", 10, WordCounter())
    assert (workspace.text, workspace.tokens, workspace.cut) == (
        "One two three. Four five.",
        5,
        None,
    )


async def test_text_over_the_bound_is_cut_at_a_sentence_and_the_cut_recorded() -> None:
    text = "One two three. Four five six. Seven eight nine ten. Eleven."
    counter = WordCounter()
    workspace = await bound_text(text, 7, counter)
    assert workspace.text == "One two three. Four five six."
    assert workspace.tokens == 6 <= 7
    assert workspace.cut is not None
    assert (workspace.cut.original_tokens, workspace.cut.kept_tokens) == (11, 6)
    assert workspace.cut.at == "sentence"
    assert workspace.cut.dropped_chars == len(text) - len(workspace.text)
    assert counter.calls <= 1 + 3  # the whole, then a bisection over 4 sentences


async def test_lines_count_as_sentence_ends() -> None:
    workspace = await bound_text("a b c\nd e f\ng h i", 6, WordCounter())
    assert workspace.text == "a b c\nd e f"


async def test_a_first_sentence_too_long_is_cut_at_a_word() -> None:
    workspace = await bound_text("one two three four five six seven. eight.", 3, WordCounter())
    assert workspace.text == "one two three"
    assert workspace.cut is not None
    assert workspace.cut.at == "word"


async def test_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await bound_text("x", 0, WordCounter())


def test_agreement_ranking_puts_the_majority_first_stably() -> None:
    assert agreement_ranking(["5", "7", None, "7", "5", "7"]) == [1, 3, 5, 0, 4, 2]


def test_score_ranking() -> None:
    assert score_ranking([0.0, 1.0, 0.0, 1.0]) == [1, 3, 0, 2]


def test_shared_and_per_sample_top_k() -> None:
    ranking = [3, 1, 0, 2]
    assert shared_top_k(ranking, 2, 3) == [[3, 1], [3, 1], [3, 1]]
    assert per_sample_top_k(ranking, 2, 3) == [[3, 1], [1, 0], [0, 2]]
    assert per_sample_top_k(ranking, 9, 1) == [[3, 1, 0, 2]]


def test_random_k_is_seeded_and_distinct_per_call() -> None:
    first = random_k(8, 3, 4, seed=1)
    assert first == random_k(8, 3, 4, seed=1)
    assert first != random_k(8, 3, 4, seed=2)
    assert all(len(set(chosen)) == 3 and all(0 <= i < 8 for i in chosen) for chosen in first)
    assert len({tuple(chosen) for chosen in first}) > 1


def test_prompts_and_verification() -> None:
    prompt = summary_prompt("What is 2+2?", ["It is 4.", "It is 5."])
    for part in (
        "Agreements",
        "Contradictions",
        "Derived facts",
        "Unresolved sub-goals",
        "Next actions",
        "### Attempt 2\nIt is 5.",
    ):
        assert part in prompt
    assert render_drafts(["a"]) == "### Attempt 1\na"
    assert verified("Yes, it is correct.") == 1.0
    assert verified("**Yes**") == 1.0
    assert verified("No.") == 0.0

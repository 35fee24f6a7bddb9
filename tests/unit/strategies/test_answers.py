import pytest

from ponder.strategies.answers import (
    explicit_answer,
    extract_answer,
    last_boxed,
    normalise,
    read_answer,
    stated_answer,
    vote,
)


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("Janet has 3 eggs left.\n#### 18", "18"),
        ("So the total is \\boxed{\\frac{1}{2}} and done", "\\frac{1}{2}"),
        ("first \\boxed{3} then \\boxed{x^{2}+1}", "x^{2}+1"),
        ("Adding them up, the answer is 42.", "42"),
        ("The answer is $1,250.50. That is all.", "$1,250.50"),
        ("Therefore, the answer (arabic numerals) is 7", None),
        ("Final Answer: The final answer is 025. I hope it is correct.", "025"),
        ("Final Answer: 12", "12"),
        ("We think it is about 5 or 6.", None),
    ],
)
def test_explicit_answer(text: str, answer: str | None) -> None:
    assert explicit_answer(text) == answer


def test_kojima_trigger_output_is_read_by_the_fallback() -> None:
    assert extract_answer("Therefore, the answer (arabic numerals) is 7") == "7"


def test_last_number_is_the_fallback() -> None:
    assert extract_answer("We think it is about 5 or 6.") == "6"
    assert extract_answer("no numbers here") is None


def test_boxed_with_nested_braces_and_unbalanced() -> None:
    assert last_boxed("\\boxed{\\sqrt{\\frac{a}{b}}}") == "\\sqrt{\\frac{a}{b}}"
    assert last_boxed("\\boxed{1") is None
    assert last_boxed("no box") is None


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("1,000", "1000"),
        ("$18.00", "18"),
        ("50%", "50"),
        ("42.", "42"),
        ("025", "25"),
        ("000", "0"),
        ("-0.50", "-0.5"),
        (".5", "0.5"),
        ("\\frac{3}{4}", "3/4"),
        ("\\dfrac{6}{8}", "6/8"),
        ("18 apples", "18"),
        ("\\text{Paris}", "paris"),
        ("  Yes ", "yes"),
    ],
)
def test_normalise(raw: str, canonical: str) -> None:
    assert normalise(raw) == canonical


def test_vote_majority_and_first_occurrence_on_ties() -> None:
    result = vote(["18", "$18.00", None, "20", "20.0", "7"])
    assert result.counts == {"18": 2, "20": 2, "7": 1}
    assert (result.winner, result.winner_index) == ("18", 0)
    assert vote([None, None]).winner is None
    assert vote(["5", "6", "6"]).winner_index == 1


@pytest.mark.parametrize(
    ("text", "fmt", "answer"),
    [
        ("So the answer is 42 apples.", "numeric", "42"),
        ("The answer is $1,000.", "numeric", "1000"),
        ("The answer is \\frac{3}{4}.", "numeric", "3/4"),
        ("The answer is (B) 12.", "choice", "B"),
        ("Comparing the options, it must be C.", "choice", "C"),
        ("The answer is Yes, it does.", "yes_no", "yes"),
        ("After all that: no.", "yes_no", "no"),
        ("The answer is Paris.", "free", "Paris"),
        ("I think it is Paris.", "free", None),
    ],
)
def test_answers_are_read_in_the_requested_format(text: str, fmt: str, answer: str | None) -> None:
    assert extract_answer(text, fmt) == answer  # type: ignore[arg-type]


def test_a_statement_without_an_answer_is_no_answer() -> None:
    assert stated_answer("The answer is not obvious yet. We have 3 and 4.") is None
    assert stated_answer("The answer is not obvious yet.", "choice") is None


def test_an_extraction_reply_is_read_for_its_first_answer() -> None:
    # Kojima et al.: the reply after "Therefore, the answer (arabic numerals) is" is read
    # for its first number, not its last.
    assert read_answer(" 12. Then 3 more make 15.") == "12"
    assert read_answer(" (D), since C and E are wrong.", "choice") == "D"
    assert read_answer(" not clear.") is None

"""Graders on hand-written cases."""

from __future__ import annotations

import pytest

from ponder.clients.evaluation.graders import (
    drop_scores,
    grade,
    integer_equal,
    latex_equal,
    normalise_latex,
    numeric_equal,
    parse_number,
    prediction_from,
)


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [("39", "39"), ("39.0", "39"), ("1,234", "1234"), ("$12", "12"), ("3/4", "0.75"),
     ("\\frac{3}{4}", "0.75"), ("-\\frac{1}{2}", "-0.5"), ("40%", "40"), ("12.", "12"),
     ("0.33333", "0.3333333")],
)  # fmt: skip
def test_numbers_that_are_equal(prediction: str, gold: str) -> None:
    assert numeric_equal(prediction, gold)


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [("38", "39"), ("39 apples", "39"), ("", "39"), ("1/0", "0"), ("0.334", "0.3333"),
     ("twelve", "12")],
)  # fmt: skip
def test_numbers_that_are_not(prediction: str, gold: str) -> None:
    assert not numeric_equal(prediction, gold)


def test_parse_number_reads_only_numbers() -> None:
    assert parse_number("2,500.5") == parse_number("2500.5")
    assert parse_number("x = 3") is None


def test_aime_answers_are_integers_with_their_zero_padding_ignored() -> None:
    assert integer_equal("25", "025")
    assert integer_equal("025", "25")
    assert integer_equal("336", "336^\\circ")
    assert integer_equal("336^{\\circ}", "336")
    assert not integer_equal("25.5", "025")
    assert not integer_equal("24", "025")
    assert grade("integer", "070", "70").correct


def test_latex_equivalence() -> None:
    assert latex_equal("\\dfrac{1}{2}", "\\frac{1}{2}")
    assert latex_equal("0.5", "\\frac{1}{2}")
    assert latex_equal("(3, \\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)")
    assert latex_equal("\\boxed{\\frac{\\sqrt{3}}{3}}", "\\frac{1}{\\sqrt{3}}")
    assert latex_equal("90^\\circ", "90")
    assert not latex_equal("\\frac{1}{3}", "\\frac{1}{2}")
    assert not latex_equal("x^2", "x^3")


def test_nested_boxes_are_read_whole() -> None:
    text = (
        "So the answer is \\boxed{\\frac{1}{\\sqrt{2}}} and not \\boxed{3}? "
        "No: \\boxed{\\frac{a}{b_{1}}}"
    )
    assert normalise_latex(text) == "\\frac{a}{b_{1}}"
    assert prediction_from(text, None, "latex") == "\\frac{a}{b_{1}}"
    assert grade("latex", "\\boxed{\\frac{2}{4}}", "\\frac{1}{2}").correct


def test_drop_exact_match_and_f1() -> None:
    assert drop_scores(
        "Pakistanis and Filipinos", "Pakistanis and Filipinos|Pakistani and Filipino"
    ) == (True, 1.0)
    exact, f1 = drop_scores("the Pakistanis", "Pakistanis and Filipinos")
    assert not exact
    assert f1 == pytest.approx(2 * (1 / 1) * (1 / 3) / (1 + 1 / 3), abs=1e-4)  # P=1, R=1/3
    assert drop_scores("The Pakistanis.", "pakistanis") == (
        True,
        1.0,
    )  # articles, case, punctuation
    exact, f1 = drop_scores("1,500 people", "1500")
    assert not exact
    assert f1 == pytest.approx(2 / 3, abs=1e-4)
    # A number answer scores nothing without its number, however many words match.
    assert drop_scores("about 20 years", "about 30 years") == (False, 0.0)


def test_drop_grade_uses_f1_as_the_score() -> None:
    graded = grade("drop", "Pakistanis", "Pakistanis and Filipinos")
    assert not graded.correct
    assert 0 < graded.score < 1


def test_missing_predictions_are_wrong() -> None:
    for grader in ("numeric", "integer", "latex", "drop"):
        assert grade(grader, None, "1") == grade(grader, "  ", "1")
        assert not grade(grader, None, "1").correct


def test_predictions_prefer_the_servers_answer_then_the_text() -> None:
    assert prediction_from("blah 12 then 13", "12", "numeric") == "12"
    assert prediction_from("so 7 + 5 = 12.\n#### 12", None, "numeric") == "12"
    assert prediction_from("Passage ... Answer: Pakistanis\nmore", None, "drop") == "Pakistanis"

"""Graders: is a prediction right, and how right (DROP's F1)?

- ``numeric``: numbers equal within a relative tolerance (GSM8K, the MAWPS
  sets, SVAMP); fractions and thousands separators are read.
- ``integer``: integers equal (AIME: "025" is 25, ``336^\\circ`` is 336).
- ``latex``: mathematically equivalent LaTeX, by math-verify (sympy underneath),
  after an exact match of the normalised strings (MATH-500).
- ``drop``: DROP's exact match and token F1, the best over the gold alternatives
  (``|``-separated), with its rule that numbers must match.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from ponder.strategies.answers import extract_answer, last_boxed

GraderName = Literal["numeric", "integer", "latex", "drop"]


@dataclass(frozen=True, slots=True)
class Grade:
    correct: bool
    #: 1.0 or 0.0, except DROP's F1.
    score: float


def grade(grader: GraderName, prediction: str | None, gold: str) -> Grade:
    if prediction is None or not prediction.strip():
        return Grade(False, 0.0)
    if grader == "numeric":
        return _binary(numeric_equal(prediction, gold))
    if grader == "integer":
        return _binary(integer_equal(prediction, gold))
    if grader == "latex":
        return _binary(latex_equal(prediction, gold))
    exact, f1 = drop_scores(prediction, gold)
    return Grade(exact, f1)


def _binary(correct: bool) -> Grade:
    return Grade(correct, 1.0 if correct else 0.0)


# -- numbers -------------------------------------------------------------------

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*-?\d+)?|-?\.\d+")


def parse_number(text: str) -> Fraction | None:
    """The number ``text`` states, or ``None`` when it is not just a number.

    Reads ``1,234``, ``-3.5``, ``3/4``, ``\\frac{3}{4}``, ``$12``, ``40%``.
    """
    text = text.strip().replace("$", "").replace("\\!", "").replace("\\%", "%")
    frac = re.fullmatch(r"-?\\d?frac\{(-?\d+)\}\{(-?\d+)\}", text)
    if frac:
        sign = -1 if text.startswith("-") else 1
        numerator, denominator = int(frac.group(1)), int(frac.group(2))
        return sign * Fraction(numerator, denominator) if denominator else None
    text = text.rstrip(".%").strip()
    if not re.fullmatch(_NUMBER.pattern, text):
        return None
    try:
        if "/" in text:
            top, bottom = (int(part.strip().replace(",", "")) for part in text.split("/"))
            return Fraction(top, bottom) if bottom else None
        return Fraction(text.replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None


def numeric_equal(prediction: str, gold: str, *, rel_tol: float = 1e-4) -> bool:
    predicted, expected = parse_number(prediction), parse_number(gold)
    if predicted is None or expected is None:
        return False
    return abs(predicted - expected) <= rel_tol * max(Fraction(1), abs(expected))


def integer_equal(prediction: str, gold: str) -> bool:
    predicted, expected = _as_integer(prediction), _as_integer(gold)
    return predicted is not None and predicted == expected


def _as_integer(text: str) -> int | None:
    text = re.sub(r"\^\s*\{?\\circ\}?|°", "", text.strip())
    number = parse_number(text)
    if number is None or number.denominator != 1:
        return None
    return int(number)


# -- LaTeX ---------------------------------------------------------------------

_LATEX_NOISE = [
    (r"\\left|\\right|\\!|\\,|\\;|\\:|\\ ", ""),
    (r"\\dfrac|\\tfrac", r"\\frac"),
    (r"\^\s*\{?\\circ\}?", ""),
    (r"\\text\{\s*([^{}]*)\}", r"\1"),
    (r"\\mbox\{\s*([^{}]*)\}", r"\1"),
    (r"\$", ""),
    (r"\s+", ""),
]


def normalise_latex(text: str) -> str:
    boxed = last_boxed(text)
    text = boxed if boxed is not None else text
    for pattern, replacement in _LATEX_NOISE:
        text = re.sub(pattern, replacement, text)
    return text.rstrip(".")


def latex_equal(prediction: str, gold: str) -> bool:
    if normalise_latex(prediction) == normalise_latex(gold):
        return True
    from math_verify import parse, verify  # sympy underneath: imported when needed

    def parsed(text: str) -> object:
        boxed = last_boxed(text)
        return parse(f"${boxed if boxed is not None else text}$", parsing_timeout=None)

    try:
        return bool(verify(parsed(gold), parsed(prediction), timeout_seconds=None))
    except Exception:  # an expression sympy cannot read is not an equal one
        return False


# -- DROP ----------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.IGNORECASE)
_PUNCTUATION = set(string.punctuation)


def _normalise_token(token: str) -> str:
    token = token.lower()
    if _is_number(token):
        return str(float(token.replace(",", "")))
    token = "".join(ch for ch in token if ch not in _PUNCTUATION)
    token = _ARTICLES.sub(" ", token)
    return " ".join(token.split())


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def _bag(answer: str) -> list[str]:
    tokens = [_normalise_token(token) for token in re.split(r"[ \-]", answer)]
    return [token for token in " ".join(tokens).split() if token]


def _f1(predicted: list[str], gold: list[str]) -> float:
    common = sum((Counter(predicted) & Counter(gold)).values())
    if not common:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def drop_scores(prediction: str, gold: str) -> tuple[bool, float]:
    """Exact match and F1 against the best of ``gold``'s ``|``-separated alternatives."""
    best_exact, best_f1 = False, 0.0
    predicted = _bag(prediction)
    for alternative in gold.split("|"):
        expected = _bag(alternative)
        exact = predicted == expected and bool(expected)
        f1 = _f1(predicted, expected)
        gold_numbers = {token for token in expected if _is_number(token)}
        if gold_numbers and not gold_numbers & {t for t in predicted if _is_number(t)}:
            f1 = 0.0  # DROP: a numeric answer scores only with its number
        best_exact, best_f1 = best_exact or exact, max(best_f1, f1)
    return best_exact, round(best_f1, 4)


def prediction_from(text: str, answer: str | None, grader: GraderName) -> str | None:
    """What a response answers: the server's extracted answer, else found in the text.

    DROP answers are spans, not numbers: the first line of the text after a
    final "Answer:" if there is one.
    """
    if grader == "drop":
        tail = re.split(r"answer\s*(?:is|:)\s*", text, flags=re.IGNORECASE)[-1]
        lines = [line.strip() for line in tail.strip().splitlines() if line.strip()]
        return lines[0].rstrip(".") if lines else None
    if grader == "latex":
        boxed = last_boxed(text)
        if boxed is not None:
            return boxed
    return answer if answer is not None else extract_answer(text)

"""Finding the final answer in a solution, normalising it, and voting.

Shared by every strategy (and the evaluation harness): GSM8K's ``#### N``,
the last ``\\boxed{...}`` (nested braces and all), "The answer is ...",
"Final Answer: ...". What is stated there is read in the request's answer
format: a number (``numeric``), a letter A-E (``choice``), yes or no
(``yes_no``), or the clause itself (``free``); a statement with no such
thing ("The answer is not obvious yet") is no answer. Failing a statement,
the last number / letter / yes-no of the text is the answer (not for
``free``). A short extraction reply (Kojima et al.'s second stage) is read
for its first one.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ponder.strategies.engine import Choice
from ponder.strategies.prompts import AnswerFormat

_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")
_GSM8K = re.compile(r"####\s*(.+)")
_ANSWER_IS = re.compile(r"(?:the\s+)?(?:final\s+)?answer\s+is\s*:?\s*(.+)", re.IGNORECASE)
_FINAL_ANSWER = re.compile(r"final\s+answer\s*:\s*(.+)", re.IGNORECASE)


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` or ``\\fbox{...}``, braces balanced."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0:
        return None
    depth = 0
    for position in range(brace, len(text)):
        if text[position] == "{":
            depth += 1
        elif text[position] == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1 : position]
    return None


def explicit_answer(text: str) -> str | None:
    """The answer the text states, or ``None`` when it states none."""
    candidates: list[tuple[int, str]] = []
    for pattern in (_GSM8K, _ANSWER_IS, _FINAL_ANSWER):
        for match in pattern.finditer(text):
            candidates.append((match.start(), _first_clause(match.group(1))))
    boxed = last_boxed(text)
    if boxed is not None:
        candidates.append((max(text.rfind("\\boxed"), text.rfind("\\fbox")), boxed.strip()))
    candidates = [(position, answer) for position, answer in candidates if answer]
    if not candidates:
        return None
    return max(candidates, key=lambda candidate: candidate[0])[1]


_CHOICE = re.compile(r"\(([A-E])\)|\b([A-E])\b")
_CHOICE_MARKED = re.compile(r"\(([A-E])\)|(?:^|\s)([A-E])[.):]", re.MULTILINE)
_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


def _found(match: re.Match[str] | None, fmt: AnswerFormat) -> str | None:
    if match is None:
        return None
    value = next(group for group in match.groups() if group) if match.groups() else match[0]
    if fmt == "numeric":
        return normalise_number(value)
    return value.lower() if fmt == "yes_no" else value


def _kinds(text: str, fmt: AnswerFormat, *, marked: bool = False) -> list[re.Match[str]]:
    if fmt == "numeric":
        return list(_NUMBER.finditer(text))
    if fmt == "choice":
        return list((_CHOICE_MARKED if marked else _CHOICE).finditer(text))
    if fmt == "yes_no":
        return list(_YES_NO.finditer(text))
    return []


def read_answer(text: str, fmt: AnswerFormat = "numeric") -> str | None:
    """The first answer of ``fmt``'s kind in ``text`` (a stated clause, or an extraction
    reply), or ``None``: "not obvious yet" holds no number."""
    if fmt == "free":
        clause = _first_clause(text)
        return clause or None
    if fmt == "numeric":
        whole = normalise(text)
        if re.fullmatch(r"-?\d+(?:\.\d+)?|-?\d+/\d+", whole):
            return whole  # "$1,000", "3/4", "\\frac{3}{4}" as a whole
    found = _kinds(text, fmt)
    return _found(found[0], fmt) if found else None


def stated_answer(text: str, fmt: AnswerFormat = "numeric") -> str | None:
    """The answer the text states, read in ``fmt``; ``None`` when it states none."""
    clause = explicit_answer(text)
    return read_answer(clause, fmt) if clause is not None else None


def extract_answer(text: str, fmt: AnswerFormat = "numeric") -> str | None:
    """The stated answer, else the last of ``fmt``'s kind in the text, else ``None``."""
    answer = stated_answer(text, fmt)
    if answer is not None or fmt == "free":
        return answer
    found = _kinds(text, fmt, marked=True)
    return _found(found[-1], fmt) if found else None


def _first_clause(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    # "42. Next, ..." -> "42"; a decimal point followed by a digit is kept.
    line = re.split(r"\.(?:\s|$)", line, maxsplit=1)[0]
    return line.strip().rstrip(".").strip()


def normalise_number(text: str) -> str | None:
    """``"1,000.50"`` -> ``"1000.5"``; ``"025"`` -> ``"25"``; ``None`` if not a number."""
    cleaned = text.replace(",", "").strip()
    if not re.fullmatch(r"-?(?:\d+(?:\.\d*)?|\.\d+)", cleaned):
        return None
    negative = cleaned.startswith("-")
    whole, _, fraction = cleaned.lstrip("-").partition(".")
    whole = whole.lstrip("0") or "0"
    fraction = fraction.rstrip("0")
    number = whole + ("." + fraction if fraction else "")
    return "-" + number if negative and number != "0" else number


def normalise(answer: str) -> str:
    """A canonical form for comparing and voting: numbers by value, text by words."""
    text = answer.strip()
    text = re.sub(r"\\text\{([^{}]*)\}", r"\1", text)
    text = re.sub(r"\\d?frac\{([^{}]*)\}\{([^{}]*)\}", r"\1/\2", text)
    for token in ("\\$", "$", "\\%", "%", "\\!", "\\,", "\\left", "\\right"):
        text = text.replace(token, "")
    text = text.strip().rstrip(".").strip()
    whole = normalise_number(text)
    if whole is not None:
        return whole
    fraction = re.fullmatch(r"(-?\d+)\s*/\s*(\d+)", text)
    if fraction:
        return f"{int(fraction.group(1))}/{int(fraction.group(2))}"
    leading = re.match(r"(-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)\b", text)
    if leading:
        number = normalise_number(leading.group(1))
        if number is not None:
            return number
    return " ".join(text.lower().split())


@dataclass(frozen=True, slots=True)
class Vote:
    """A majority vote; ``winner`` is ``None`` when no sample had an answer."""

    winner: str | None
    winner_index: int | None
    counts: dict[str, int]
    #: Weighted votes: the summed weight per answer (None: every vote weighs 1).
    weights: dict[str, float] | None = None


def vote(answers: Sequence[str | None], weights: Sequence[float] | None = None) -> Vote:
    """Majority over normalised answers, each vote weighted when ``weights`` are given;
    a tie goes to the answer seen first."""
    normalised = [normalise(a) if a is not None else None for a in answers]
    counts = Counter(a for a in normalised if a is not None)
    if not counts:
        return Vote(None, None, {})
    totals: dict[str, float] = {}
    for answer, weight in zip(normalised, weights or [1.0] * len(normalised), strict=True):
        if answer is not None:
            totals[answer] = totals.get(answer, 0.0) + weight
    best = max(totals.values())
    winner = next(a for a in normalised if a is not None and totals[a] == best)
    shown = None if weights is None else {a: round(w, 6) for a, w in totals.items()}
    return Vote(winner, normalised.index(winner), dict(counts), shown)


def stated(text: str, fmt: AnswerFormat = "numeric") -> str | None:
    """The normalised answer of a solution (see :func:`extract_answer`)."""
    answer = extract_answer(text, fmt)
    return normalise(answer) if answer is not None else None


def answer_note(choice: Choice, fmt: AnswerFormat = "numeric") -> dict[str, Any]:
    """A sample's trace note: the answer it reached."""
    return {"answer": stated(choice.text, fmt)}


def noting(fmt: AnswerFormat) -> Callable[[Choice], dict[str, Any]]:
    """:func:`answer_note` in ``fmt``, as a strategy's ``annotate``."""
    return lambda choice: answer_note(choice, fmt)

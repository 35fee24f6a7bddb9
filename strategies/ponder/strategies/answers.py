"""Finding the final answer in a solution, normalising it, and voting.

Shared by every strategy (and the evaluation harness): GSM8K's ``#### N``,
the last ``\\boxed{...}`` (nested braces and all), "The answer is ...",
"Final Answer: ...", and as a last resort the last number in the text.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ponder.strategies.engine import Choice

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


def extract_answer(text: str) -> str | None:
    """The stated answer, else the last number in the text, else ``None``."""
    answer = explicit_answer(text)
    if answer is not None:
        return answer
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


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


def vote(answers: Sequence[str | None]) -> Vote:
    """Majority over normalised answers; a tie goes to the answer seen first."""
    normalised = [normalise(a) if a is not None else None for a in answers]
    counts = Counter(a for a in normalised if a is not None)
    if not counts:
        return Vote(None, None, {})
    best = max(counts.values())
    winner = next(a for a in normalised if a is not None and counts[a] == best)
    return Vote(winner, normalised.index(winner), dict(counts))


def stated(text: str) -> str | None:
    """The normalised answer of a solution (the last number when it states none)."""
    answer = extract_answer(text)
    return normalise(answer) if answer is not None else None


def answer_note(choice: Choice) -> dict[str, Any]:
    """A sample's trace note: the answer it reached."""
    return {"answer": stated(choice.text)}

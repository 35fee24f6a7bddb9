"""Few-shot demonstrations: read from JSONL files the operator names, or given inline."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class Demo(BaseModel):
    """One worked example: ``Q: question / A: Let's think step by step. rationale ...``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    question: str = Field(min_length=1)
    rationale: str = Field(min_length=1)
    answer: str = Field(min_length=1)


class Decomposition(BaseModel):
    """One worked decomposition for Successive Prompting."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    question: str = Field(min_length=1)
    steps: list[tuple[str, str]] = Field(min_length=1, description="(sub-question, answer)")


@dataclass(frozen=True)
class Resources:
    """Files the operator configured, by name; requests refer to them by name only."""

    demo_sets: Mapping[str, Path] = field(default_factory=dict)
    question_pools: Mapping[str, Path] = field(default_factory=dict)
    decompositions: Path | None = None
    cache_dir: Path | None = None


def read_jsonl(path: Path) -> list[dict[str, object]]:
    rows = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError(f"{path}:{number}: a JSON object per line is expected")
                rows.append(row)
    return rows


def load_demos(path: Path) -> list[Demo]:
    return [Demo.model_validate(row) for row in read_jsonl(path)]


def load_decompositions(path: Path) -> list[Decomposition]:
    return [Decomposition.model_validate(row) for row in read_jsonl(path)]


def load_questions(path: Path) -> list[str]:
    """A question pool: JSONL rows with a ``question``, ``problem`` or ``input`` field
    (the field names of GSM8K, MATH and the MAWPS sets), or SVAMP's ``Body`` and
    ``Question``."""
    questions = []
    for row in read_jsonl(path):
        question = row.get("question") or row.get("problem") or row.get("input")
        if question is None and isinstance(row.get("Question"), str):
            question = f"{row.get('Body', '')} {row['Question']}"
        if isinstance(question, str) and question.strip():
            questions.append(question.strip())
    return questions

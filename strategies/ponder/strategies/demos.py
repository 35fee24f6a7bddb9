"""Few-shot demonstrations: read from JSONL files the operator names, or given inline."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


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


class UnknownResource(LookupError):
    """A request named a demo set or question pool the operator did not configure."""


class FileMemo:
    """Parsed files, read once and again only when the file changes (size or mtime).

    Requests name the same few operator files over and over; parsing them per
    request would cost a read and a JSON parse each time.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[Path, str], tuple[tuple[int, int], Any]] = {}
        self._lock = threading.Lock()

    def read(self, path: Path, parse: Callable[[Path], T]) -> T:
        stat = path.stat()
        identity = (stat.st_size, stat.st_mtime_ns)
        key = (path, parse.__qualname__)
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry[0] == identity:
            value: T = entry[1]
            return value
        value = parse(path)
        with self._lock:
            self._entries[key] = (identity, value)
        return value


@dataclass(frozen=True)
class Resources:
    """Files the operator configured, by name; requests refer to them by name only."""

    demo_sets: Mapping[str, Path] = field(default_factory=dict)
    question_pools: Mapping[str, Path] = field(default_factory=dict)
    decompositions: Path | None = None
    cache_dir: Path | None = None
    memo: FileMemo = field(default_factory=FileMemo, compare=False, repr=False)

    def demos(self, name: str) -> list[Demo]:
        """The demo set ``name``, parsed (once per version of its file)."""
        return self.memo.read(_named(self.demo_sets, name, "demo set"), load_demos)

    def questions(self, name: str) -> list[str]:
        """The question pool ``name`` (once per version of its file)."""
        return self.memo.read(_named(self.question_pools, name, "question pool"), load_questions)

    def worked_decompositions(self) -> list[Decomposition]:
        """Successive Prompting's worked examples; none when the operator set none."""
        if self.decompositions is None:
            return []
        return self.memo.read(self.decompositions, load_decompositions)


def _named(files: Mapping[str, Path], name: str, what: str) -> Path:
    path = files.get(name)
    if path is None:
        known = ", ".join(sorted(files)) or "none configured"
        raise UnknownResource(f"unknown {what} {name!r} (known: {known})")
    return path


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

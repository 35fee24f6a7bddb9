"""Datasets: problems with a question, a gold answer and the grader that compares them.

Built-in formats are those of the benchmark files Ponder is tested with (GSM8K,
MultiArith, AddSub, SingleEq, SVAMP, MATH-500, AIME 2024 and 2025, DROP in
OpenAI simple-evals' form); any other JSONL is read with a field mapping.
Problems keep the file's order, so two runs compare item by item.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast, get_args

from ponder.clients.evaluation.graders import GraderName


@dataclass(frozen=True, slots=True)
class Problem:
    #: The problem's position in its file, from 0: stable across runs.
    id: int
    question: str
    gold: str


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    grader: GraderName
    problems: list[Problem]


Reader = Callable[[dict[str, Any]], tuple[str, str]]


def _mawps(row: dict[str, Any]) -> tuple[str, str]:
    return row["input"], _number_text(row["target"])


def _gsm8k(row: dict[str, Any]) -> tuple[str, str]:
    final = row["answer"].rsplit("####", 1)[1]
    return row["question"], final.strip().replace(",", "")


def _svamp(row: dict[str, Any]) -> tuple[str, str]:
    body = row["Body"].strip()
    joiner = " " if body.endswith((".", "?", "!")) else ". "
    return body + joiner + row["Question"].strip(), _number_text(row["Answer"])


def _math500(row: dict[str, Any]) -> tuple[str, str]:
    return row["problem"], row["answer"]


def _aime(row: dict[str, Any]) -> tuple[str, str]:
    question = row.get("problem") or row["question"]
    return question, str(row["answer"])


def _drop(row: dict[str, Any]) -> tuple[str, str]:
    return row["context"], row["ref_text"]


def _number_text(value: Any) -> str:
    # 39.0 in the file is the answer 39.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


#: Built-in formats: (reader, grader). Names are the files' stems in ../shared/datasets.
FORMATS: dict[str, tuple[Reader, GraderName]] = {
    "gsm8k": (_gsm8k, "numeric"),
    "multiarith": (_mawps, "numeric"),
    "addsub": (_mawps, "numeric"),
    "singleeq": (_mawps, "numeric"),
    "svamp": (_svamp, "numeric"),
    "math500": (_math500, "latex"),
    "aime24": (_aime, "integer"),
    "aime25": (_aime, "integer"),
    "drop": (_drop, "drop"),
}


class DatasetError(ValueError):
    pass


def format_of(path: Path) -> str:
    """The built-in format a file's name says: ``gsm8k_train.jsonl`` is gsm8k."""
    stem = path.name.split(".", 1)[0].lower()
    for name in sorted(FORMATS, key=len, reverse=True):
        if re.fullmatch(rf"{name}([_-].*)?", stem):
            return name
    raise DatasetError(
        f"cannot tell the format of {path.name}; name one of {', '.join(FORMATS)} "
        "or give --question-field and --answer-field"
    )


def rows(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as error:
                raise DatasetError(f"{path}:{number}: not JSON ({error.msg})") from None


def load(
    path: Path,
    *,
    fmt: str | None = None,
    question_field: str | None = None,
    answer_field: str | None = None,
    grader: str | None = None,
    limit: int | None = None,
) -> Dataset:
    """The first ``limit`` problems of ``path``, read in a built-in format or by field names."""
    if not path.is_file():
        raise DatasetError(f"dataset file {path} does not exist")
    if question_field or answer_field:
        if not (question_field and answer_field):
            raise DatasetError("give both --question-field and --answer-field")
        q_field, a_field = question_field, answer_field

        def by_fields(row: dict[str, Any]) -> tuple[str, str]:
            return str(row[q_field]), _number_text(row[a_field])

        reader: Reader = by_fields
        chosen: GraderName = "numeric"
        name = path.name.split(".", 1)[0]
    else:
        name = fmt or format_of(path)
        if name not in FORMATS:
            raise DatasetError(f"unknown format {name!r}; built in: {', '.join(FORMATS)}")
        reader, chosen = FORMATS[name]
    if grader is not None:
        if grader not in get_args(GraderName):
            raise DatasetError(f"unknown grader {grader!r}; one of {get_args(GraderName)}")
        chosen = cast(GraderName, grader)
    problems: list[Problem] = []
    for index, row in enumerate(rows(path)):
        if limit is not None and index >= limit:
            break
        try:
            question, gold = reader(row)
        except (KeyError, IndexError, AttributeError) as error:
            raise DatasetError(f"{path}: problem {index} lacks {error}") from None
        problems.append(Problem(index, question, gold))
    if not problems:
        raise DatasetError(f"{path} has no problems")
    return Dataset(name, chosen, problems)

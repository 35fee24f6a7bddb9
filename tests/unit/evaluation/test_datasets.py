"""Loaders on every benchmark file: the full copies in ../shared/datasets when they are
beside the checkout, else the three-problem samples in tests/data/datasets (same names)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from ponder.clients.evaluation.datasets import FORMATS, DatasetError, format_of, load

ROOT = Path(__file__).parents[3]
SAMPLES = ROOT / "tests" / "data" / "datasets"
SHARED = ROOT.parent / "shared" / "datasets"
FOLDER = SHARED if SHARED.is_dir() else SAMPLES
FILES = sorted(p for p in FOLDER.iterdir() if ".jsonl" in p.name)

EXPECTED_GRADER = {
    "gsm8k": "numeric",
    "multiarith": "numeric",
    "addsub": "numeric",
    "singleeq": "numeric",
    "svamp": "numeric",
    "math500": "latex",
    "aime24": "integer",
    "aime25": "integer",
    "drop": "drop",
}


def test_every_format_has_a_file() -> None:
    assert {format_of(path) for path in FILES} == set(FORMATS)
    assert {format_of(path) for path in SAMPLES.iterdir() if ".jsonl" in path.name} == set(FORMATS)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_file_loads_whole(path: Path) -> None:
    dataset = load(path)
    assert dataset.grader == EXPECTED_GRADER[dataset.name]
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as lines:
        rows = sum(1 for line in lines if line.strip())
    assert len(dataset.problems) == rows
    assert [p.id for p in dataset.problems] == list(range(rows))
    for problem in dataset.problems:
        assert problem.question.strip()
        assert problem.gold.strip()


def test_golds_are_read_as_the_formats_write_them() -> None:
    gsm8k = load(SAMPLES / "gsm8k_train.jsonl").problems[0]
    assert gsm8k.gold == "72"  # the number after ####
    assert load(SAMPLES / "multiarith.jsonl").problems[0].gold == "39"  # 39, not 39.0
    svamp = load(SAMPLES / "svamp.jsonl").problems[0]
    assert svamp.gold == "145"
    assert svamp.question.endswith("How big is each group of bananas?")
    assert "Philip's collection" in svamp.question
    assert load(SAMPLES / "aime24.jsonl").problems[0].gold == "204"
    assert load(SAMPLES / "aime25.jsonl").problems[0].gold == "70"
    drop = load(SAMPLES / "drop_dev.jsonl.gz").problems[1]
    assert drop.gold == "Pakistanis and Filipinos|Pakistani and Filipino"
    assert drop.question.startswith("Passage:")
    assert load(SAMPLES / "math500.jsonl").problems[0].gold.startswith("\\left( 3")


def test_limit_keeps_the_files_order() -> None:
    problems = load(SAMPLES / "multiarith.jsonl", limit=2).problems
    assert [p.id for p in problems] == [0, 1]


def test_a_local_file_with_a_field_mapping(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text(
        json.dumps({"q": "1+1?", "a": 2.0}) + "\n\n" + json.dumps({"q": "2+2?", "a": "4"}) + "\n"
    )
    dataset = load(path, question_field="q", answer_field="a")
    assert [(p.question, p.gold) for p in dataset.problems] == [("1+1?", "2"), ("2+2?", "4")]
    assert dataset.grader == "numeric"
    assert load(path, question_field="q", answer_field="a", grader="integer").grader == "integer"


def test_bad_datasets_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load(tmp_path / "none.jsonl")
    odd = tmp_path / "odd.jsonl"
    odd.write_text('{"x": 1}\n')
    with pytest.raises(DatasetError, match="cannot tell the format"):
        load(odd)
    with pytest.raises(DatasetError, match="lacks"):
        load(odd, fmt="multiarith")
    with pytest.raises(DatasetError, match="both"):
        load(odd, question_field="x")
    broken = tmp_path / "multiarith.jsonl"
    broken.write_text('{"input": "q", "target": 1}\nnot json\n')
    with pytest.raises(DatasetError, match=r"multiarith\.jsonl:2"):
        load(broken)
    with pytest.raises(DatasetError, match="unknown grader"):
        load(SAMPLES / "multiarith.jsonl", grader="vibes")

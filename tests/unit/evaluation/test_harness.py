"""Reports from the items of an earlier run, asking nothing; runs with other settings
refused rather than mixed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from ponder.clients.client import AsyncPonder
from ponder.clients.evaluation.configs import Configuration
from ponder.clients.evaluation.harness import Outputs, report_only
from ponder.clients.evaluation.runner import (
    ITEMS_FILE,
    ItemsError,
    Runner,
    RunOptions,
    check_settings,
)
from tests.unit.evaluation.test_runner import DATASET, PDR, FakeServer

DIRECT = Configuration("direct", "direct", {})
OPTIONS = RunOptions(model="m", seed=7, max_tokens=64)


async def answered(out: Path, *configurations: Configuration) -> FakeServer:
    server = FakeServer()
    transport = httpx.MockTransport(server)
    async with AsyncPonder("http://ponder/v1", transport=transport, max_retries=0) as client:
        runner = Runner(client, DATASET, OPTIONS, out)
        for configuration in configurations:
            await runner.run(configuration)
    return server


def quiet() -> Console:
    return Console(quiet=True)


async def test_a_report_is_written_from_the_items_alone(tmp_path: Path) -> None:
    await answered(tmp_path, PDR, DIRECT)
    console = Console(record=True, width=200)
    options = RunOptions(seed=7, max_tokens=64)  # the model: the one the items name
    summaries = report_only(DATASET, [PDR, DIRECT], options, tmp_path, console=console)
    assert [(s.config, s.items, s.correct) for s in summaries] == [
        ("pdr [2,1]", 4, 3),
        ("direct", 4, 3),
    ]
    outputs = Outputs(tmp_path)
    with outputs.summary.open() as summary:
        assert [row["config"] for row in csv.DictReader(summary)] == ["pdr [2,1]", "direct"]
    assert "| pdr [2,1] | 4 | 75.0%" in outputs.report.read_text()
    assert outputs.plot.read_bytes()[:4] == b"\x89PNG"
    assert json.loads(outputs.frontier.read_text())["model"] == "m"
    assert "model m; seed 7; max_tokens 64" in console.export_text()


async def test_an_unfinished_configuration_is_reported_as_such(tmp_path: Path) -> None:
    await answered(tmp_path, PDR)
    items = tmp_path / ITEMS_FILE
    items.write_text("".join(items.read_text().splitlines(keepends=True)[:2]))
    console = Console(record=True, width=200)
    report_only(DATASET, [PDR, DIRECT], OPTIONS, tmp_path, console=console)
    said = console.export_text()
    assert "pdr [2,1]: 2 of 4 problems answered" in said
    assert "direct: 0 of 4 problems answered" in said


async def test_items_of_other_settings_are_refused(tmp_path: Path) -> None:
    await answered(tmp_path, PDR)
    report = Outputs(tmp_path).report
    for other in (
        RunOptions(model="m", seed=8, max_tokens=64),
        RunOptions(model="m", seed=None, max_tokens=64),
        RunOptions(model="m", seed=7, max_tokens=32),
        RunOptions(model="other", seed=7, max_tokens=64),
    ):
        with pytest.raises(ItemsError, match=r"were asked with .* give the same --"):
            report_only(DATASET, [PDR], other, tmp_path, console=quiet())
    assert not report.exists()  # nothing written from a refused run


async def test_records_that_name_no_settings_pass_and_need_a_model_named(
    tmp_path: Path,
) -> None:
    await answered(tmp_path, DIRECT)
    items = tmp_path / ITEMS_FILE
    old = [json.loads(line) for line in items.read_text().splitlines()]
    for record in old:  # as written before records named their settings
        for name in ("model", "seed", "max_tokens"):
            del record[name]
    items.write_text("".join(json.dumps(r) + "\n" for r in old))
    check_settings(old, RunOptions(model="any", seed=1), tmp_path)
    with pytest.raises(ItemsError, match="do not name their model: give --model"):
        report_only(DATASET, [DIRECT], RunOptions(seed=7), tmp_path, console=quiet())
    summaries = report_only(DATASET, [DIRECT], OPTIONS, tmp_path, console=quiet())
    assert [(s.items, s.correct) for s in summaries] == [(4, 3)]


def test_a_folder_without_these_items_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ItemsError, match="holds no item of these configurations"):
        report_only(DATASET, [DIRECT], OPTIONS, tmp_path, console=quiet())


async def test_a_report_of_some_configurations_names_the_others_in_the_folder(
    tmp_path: Path,
) -> None:
    await answered(tmp_path, PDR, DIRECT)
    console = Console(record=True, width=400)
    report_only(DATASET, [DIRECT], OPTIONS, tmp_path, console=console)
    said = " ".join(console.export_text().split())
    assert "cover the 1 configuration(s) given" in said
    assert "also answers 1 other(s): pdr [2,1]. One report of them all" in said
    assert "| pdr [2,1] |" not in Outputs(tmp_path).report.read_text()
    console = Console(record=True, width=400)
    report_only(DATASET, [DIRECT, PDR], OPTIONS, tmp_path, console=console)
    assert "also answers" not in console.export_text()

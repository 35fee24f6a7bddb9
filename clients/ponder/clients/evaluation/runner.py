"""Running problems through configurations against a server, resumably.

Every finished item is appended to ``items.jsonl`` as soon as it is graded, so
an interrupted run loses at most the items in flight; run again with the same
output folder and only the missing items (and those that failed) are asked.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ponder.clients.client import AsyncPonder
from ponder.clients.errors import PonderError
from ponder.clients.evaluation.configs import Configuration
from ponder.clients.evaluation.datasets import Dataset, Problem
from ponder.clients.evaluation.graders import grade, prediction_from
from ponder.clients.strategies import Custom

ITEMS_FILE = "items.jsonl"


@dataclass(frozen=True, slots=True)
class RunOptions:
    model: str | None = None
    max_tokens: int | None = None
    seed: int | None = None
    concurrency: int = 4
    #: Keep every engine call of every item in items.jsonl.
    trace: bool = False
    #: Let the server answer from its cache (off: latencies are the strategies' own).
    cache: bool = False


def item_key(configuration: Configuration, problem: Problem) -> tuple[str, int]:
    return configuration.key, problem.id


def latest_records(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """The last record of every (configuration key, item); a success is never displaced
    by a later failure. Lines cut short by an interruption are skipped."""
    latest: dict[tuple[str, int], dict[str, Any]] = {}
    if not path.is_file():
        return latest
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "total_tokens" in record:  # written before B_total was named all_tokens
            record["all_tokens"] = record.pop("total_tokens")
        key = (record["config_key"], record["item"])
        if record.get("error") and key in latest and not latest[key].get("error"):
            continue
        latest[key] = record
    return latest


#: The run's settings each record keeps: items asked with other settings are another run.
RUN_SETTINGS = ("model", "seed", "max_tokens")


class ItemsError(ValueError):
    """The items in an output folder cannot serve as asked (other settings, no model)."""


def check_settings(records: Iterable[dict[str, Any]], options: RunOptions, folder: Path) -> None:
    """Refuse to mix runs: every record that names a setting must name ``options``' value.

    Records written before the settings were recorded name none and pass.
    """
    for record in records:
        for name in RUN_SETTINGS:
            if name in record and record[name] != getattr(options, name):
                option = "--" + name.replace("_", "-")
                raise ItemsError(
                    f"the items in {folder} were asked with {name} {record[name]!r}, not "
                    f"{getattr(options, name)!r}: give the same {option} or another --out"
                )


def recorded_model(records: Iterable[dict[str, Any]]) -> str | None:
    """The model the records were asked of, if they name one."""
    return next((r["model"] for r in records if r.get("model")), None)


def load_finished(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """Records of items already graded: a failed item is not finished."""
    return {key: r for key, r in latest_records(path).items() if not r.get("error")}


class Runner:
    def __init__(
        self,
        client: AsyncPonder,
        dataset: Dataset,
        options: RunOptions,
        out: Path,
        on_item: Callable[[Configuration, dict[str, Any]], None] | None = None,
    ) -> None:
        self.client = client
        self.dataset = dataset
        self.options = options
        self.items_path = out / ITEMS_FILE
        self.on_item = on_item
        out.mkdir(parents=True, exist_ok=True)

    def pending(self, configuration: Configuration) -> list[Problem]:
        finished = load_finished(self.items_path)
        return [p for p in self.dataset.problems if item_key(configuration, p) not in finished]

    async def run(self, configuration: Configuration) -> None:
        """Every pending problem of ``configuration``, ``concurrency`` at a time."""
        semaphore = asyncio.Semaphore(self.options.concurrency)
        self._end_cut_line()

        async def one(problem: Problem) -> None:
            async with semaphore:
                record = await self._ask(configuration, problem)
            with self.items_path.open("a", encoding="utf-8") as items:
                items.write(json.dumps(record, ensure_ascii=False) + "\n")
            if self.on_item is not None:
                self.on_item(configuration, record)

        await asyncio.gather(*(one(problem) for problem in self.pending(configuration)))

    def _end_cut_line(self) -> None:
        # An interrupted run may have left half a line: new records start on a line of their own.
        if self.items_path.is_file() and self.items_path.stat().st_size:
            with self.items_path.open("rb+") as items:
                items.seek(-1, 2)
                if items.read(1) != b"\n":
                    items.write(b"\n")

    async def _ask(self, configuration: Configuration, problem: Problem) -> dict[str, Any]:
        options = self.options
        record: dict[str, Any] = {
            "config": configuration.name,
            "config_key": configuration.key,
            "strategy": configuration.strategy,
            "params": dict(configuration.params),
            "item": problem.id,
            "question": problem.question,
            "gold": problem.gold,
            **{name: getattr(options, name) for name in RUN_SETTINGS},
        }
        request: dict[str, Any] = {"trace": options.trace}
        if configuration.budget is not None:
            request["budget"] = configuration.budget
        else:
            request["strategy"] = Custom(
                strategy_name=configuration.strategy, **configuration.params
            )
        if not options.cache:
            request["cache"] = "no-store"
        for name in ("model", "max_tokens", "seed"):
            if getattr(options, name) is not None:
                request[name] = getattr(options, name)
        started = time.perf_counter()
        try:
            result = await self.client.chat(problem.question, **request)
        except PonderError as error:
            record.update(error=str(error), latency_s=round(time.perf_counter() - started, 4))
            return record
        details = dict(result.ponder.details or {})
        chosen = details.pop("budget", None)
        if chosen is not None:
            record["budget"] = chosen
        if details:
            # What the strategy decided (a vote's counts, where an adaptive run stopped, PDR's
            # rounds): how an item's answer came about, for reading a result afterwards.
            record["details"] = details
        latency = time.perf_counter() - started
        prediction = prediction_from(result.text, result.answer, self.dataset.grader)
        graded = grade(self.dataset.grader, prediction, problem.gold)
        usage = result.usage
        record.update(
            response=result.text,
            # "length" marks an answer cut by max_tokens or by a budget's deadline.
            finish_reason=result.choices[0].finish_reason if result.choices else None,
            prediction=prediction,
            correct=graded.correct,
            score=graded.score,
            latency_s=round(latency, 4),
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            sequential_tokens=usage.sequential_tokens,
            all_tokens=usage.all_tokens,
            calls=usage.ponder.calls,
        )
        if options.trace and result.ponder.trace is not None:
            record["trace"] = [call.model_dump() for call in result.ponder.trace]
        return record

"""One evaluation: run, then report (table, CSV, Markdown, plot, server metrics); or
report the items of an earlier run without asking anything."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ponder.clients.client import AsyncPonder
from ponder.clients.evaluation.configs import Configuration
from ponder.clients.evaluation.datasets import Dataset
from ponder.clients.evaluation.plot import plot
from ponder.clients.evaluation.report import (
    SUMMARY_FILE,
    Paired,
    Summary,
    frontier,
    markdown,
    paired,
    publish,
    row_by_row,
    summarise,
    table,
    write_csv,
)
from ponder.clients.evaluation.runner import (
    ITEMS_FILE,
    ItemsError,
    Runner,
    RunOptions,
    check_settings,
    latest_records,
    recorded_model,
)

PLOT_FILE = "tradeoffs.png"
REPORT_FILE = "report.md"
FRONTIER_FILE = "frontier.json"


@dataclass(frozen=True, slots=True)
class Outputs:
    folder: Path

    @property
    def items(self) -> Path:
        return self.folder / ITEMS_FILE

    @property
    def summary(self) -> Path:
        return self.folder / SUMMARY_FILE

    @property
    def report(self) -> Path:
        return self.folder / REPORT_FILE

    @property
    def plot(self) -> Path:
        return self.folder / PLOT_FILE

    @property
    def frontier(self) -> Path:
        return self.folder / FRONTIER_FILE


async def evaluate(
    server: str,
    dataset: Dataset,
    configurations: Sequence[Configuration],
    options: RunOptions,
    out: Path,
    *,
    console: Console,
    api_key: str | None = None,
    publish_results: bool = True,
    baseline: str | None = None,
) -> list[Summary]:
    """Run every configuration, then report; ``baseline`` names the configuration the
    others are compared with, item by item (default: one named ``cot``, if any)."""
    outputs = Outputs(out)
    async with AsyncPonder(server, api_key=api_key, timeout=3600) as client:
        if options.model is None:
            plain = [m for m in await client.models() if ":" not in m]
            if not plain:
                raise RuntimeError(f"{server} serves no model")
            options = replace(options, model=plain[0])
        check_settings(_records(outputs, dataset, configurations), options, out)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            runner = Runner(client, dataset, options, out)
            tasks = {}
            for configuration in configurations:
                pending = len(runner.pending(configuration))
                tasks[configuration.key] = progress.add_task(
                    configuration.name,
                    total=len(dataset.problems),
                    completed=len(dataset.problems) - pending,
                )
            runner.on_item = lambda c, _: progress.advance(tasks[c.key])
            for configuration in configurations:
                await runner.run(configuration)
    return write_reports(
        dataset,
        configurations,
        options,
        outputs,
        _records(outputs, dataset, configurations),  # read again: the run added items
        console=console,
        baseline=baseline,
        publish_to=server if publish_results else None,
        api_key=api_key,
    )


def report_only(
    dataset: Dataset,
    configurations: Sequence[Configuration],
    options: RunOptions,
    out: Path,
    *,
    console: Console,
    baseline: str | None = None,
    publish_to: str | None = None,
    api_key: str | None = None,
) -> list[Summary]:
    """The reports of the items already in ``out``, asking nothing: a report redrawn, or
    the results of a finished run published again, with no engine running."""
    outputs = Outputs(out)
    records = _records(outputs, dataset, configurations)
    if not records:
        raise ItemsError(f"{outputs.items} holds no item of these configurations and problems")
    if options.model is None:
        model = recorded_model(records)
        if model is None:  # written before records named their model
            raise ItemsError(f"the items in {out} do not name their model: give --model")
        options = replace(options, model=model)
    check_settings(records, options, out)
    answered = Counter(r["config_key"] for r in records if not r.get("error"))
    for configuration in configurations:
        count, total = answered[configuration.key], len(dataset.problems)
        if count < total:  # a run still going, or stopped: say so rather than look finished
            console.print(f"[yellow]{configuration.name}: {count} of {total} problems answered[/]")
    return write_reports(
        dataset,
        configurations,
        options,
        outputs,
        records,
        console=console,
        baseline=baseline,
        publish_to=publish_to,
        api_key=api_key,
    )


def write_reports(
    dataset: Dataset,
    configurations: Sequence[Configuration],
    options: RunOptions,
    outputs: Outputs,
    records: list[dict[str, Any]],
    *,
    console: Console,
    baseline: str | None,
    publish_to: str | None,
    api_key: str | None,
) -> list[Summary]:
    """summary.csv, report.md, the plot, frontier.json and the terminal table from
    ``records`` (the items of ``outputs``); the results sent to ``publish_to``'s metrics
    when given."""
    summaries = summarise(configurations, records)
    write_csv(summaries, outputs.summary)
    against = _against(baseline, configurations, records)
    outputs.report.write_text(markdown(summaries, row_by_row(summaries, configurations, against)))
    title = (
        f"{dataset.name}, first {len(dataset.problems)} problems; model {options.model}; "
        f"seed {options.seed if options.seed is not None else 'none'}; max_tokens "
        f"{options.max_tokens if options.max_tokens is not None else 'the server default'}"
    )
    plot(summaries, outputs.plot, title)
    console.print(table(summaries, title))
    report = frontier(dataset.name, options.model or "", summaries, configurations)
    if report["results"]:
        outputs.frontier.write_text(json.dumps(report, indent=1) + "\n")
    console.print(
        f"items: {outputs.items}\nsummary: {outputs.summary}\nplot: {outputs.plot}\n"
        f"frontier (ponder serve --frontier): {outputs.frontier}"
    )
    left_out = _left_out(outputs, dataset, configurations)
    if left_out:  # a run of a few configurations into a shared folder reports those alone
        console.print(
            f"[yellow]these reports cover the {len(configurations)} configuration(s) given; "
            f"{outputs.items} also answers {len(left_out)} other(s): "
            f"{', '.join(left_out)}. One report of them all: list them in --configs and "
            "add --report-only (nothing is asked again)[/]"
        )
    if publish_to is not None and report["results"]:
        try:
            publish(publish_to, report, api_key)
        except httpx.HTTPError as error:  # the results are on disk; the metrics can wait
            console.print(f"[yellow]could not publish the results to {publish_to}: {error}[/]")
        else:
            console.print(f"published to {publish_to.rstrip('/')}/eval/results (ponder_eval_*)")
    return summaries


def _records(
    outputs: Outputs, dataset: Dataset, configurations: Sequence[Configuration]
) -> list[dict[str, Any]]:
    """The latest record of each of these configurations' items on these problems."""
    wanted = {p.id for p in dataset.problems}
    keys = {c.key for c in configurations}
    return [
        r
        for r in latest_records(outputs.items).values()
        if r["item"] in wanted and r["config_key"] in keys
    ]


def _left_out(
    outputs: Outputs, dataset: Dataset, configurations: Sequence[Configuration]
) -> list[str]:
    """The names of the other configurations with answers to these problems in the folder."""
    wanted = {p.id for p in dataset.problems}
    keys = {c.key for c in configurations}
    names: dict[str, str] = {}
    for record in latest_records(outputs.items).values():
        other = record["item"] in wanted and record["config_key"] not in keys
        if other and not record.get("error"):
            names.setdefault(record["config_key"], record["config"])
    return list(names.values())


def _against(
    baseline: str | None, configurations: Sequence[Configuration], records: list[dict[str, Any]]
) -> dict[str, Paired]:
    names = {c.name: c for c in configurations}
    chosen = names.get(baseline) if baseline is not None else names.get("cot")
    if baseline is not None and chosen is None:
        raise ValueError(f"baseline {baseline!r} is not one of the configurations")
    return paired(chosen, configurations, records) if chosen is not None else {}

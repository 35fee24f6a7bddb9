"""Evaluations of several datasets read as one: each configuration's accuracy over all
their problems, and its paired difference from a baseline problem by problem.

A hundred problems rarely separate two strategies a few points apart; two
datasets of a hundred, run with the same configurations, often do. Problems
stay paired (the same problem under two configurations) and independent across
datasets, so McNemar's test applies to the pool as it does to one dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ponder.clients.evaluation.configs import Configuration
from ponder.clients.evaluation.report import Paired, Summary, paired, row_by_row, summarise
from ponder.clients.evaluation.runner import ITEMS_FILE, ItemsError, latest_records


@dataclass(frozen=True, slots=True)
class Pool:
    """The configurations every evaluation ran, with their records under pooled item ids."""

    configurations: list[Configuration]
    records: list[dict[str, Any]]
    #: Problems per folder, in the order given (the largest count of any configuration).
    problems: dict[str, int]


def pool(
    folders: Sequence[Path], names: Sequence[str] | None = None, limit: int | None = None
) -> Pool:
    """The records of ``folders`` (``ponder eval`` output folders), the first ``limit``
    problems of each; ``names`` picks configurations (default: every one each folder ran,
    in the first folder's order). A configuration is the same in two folders when its
    name and parameters are."""
    if not folders:
        raise ItemsError("name at least one evaluation folder")
    found: list[dict[str, Configuration]] = []
    records: list[dict[str, Any]] = []
    problems: dict[str, int] = {}
    for index, folder in enumerate(folders):
        items = folder / ITEMS_FILE
        latest = [
            r for r in latest_records(items).values() if limit is None or int(r["item"]) < limit
        ]
        if not latest:
            raise ItemsError(f"{items} holds no item")
        here: dict[str, Configuration] = {}
        for record in latest:
            configuration = Configuration(record["config"], record["strategy"], record["params"])
            if configuration.key == record["config_key"]:
                here.setdefault(configuration.name, configuration)
        found.append(here)
        counts: dict[str, int] = {}
        for record in latest:
            counts[record["config_key"]] = counts.get(record["config_key"], 0) + 1
            # Item 3 of one dataset is not item 3 of another.
            records.append({**record, "item": f"{index}:{record['item']}"})
        problems[str(folder)] = max(counts.values())
    common = [
        configuration
        for name, configuration in found[0].items()
        if all(here.get(name) == configuration for here in found[1:])
    ]
    if names is None:
        chosen = common
    else:
        by_name = {c.name: c for c in common}
        missing = [name for name in names if name not in by_name]
        if missing:
            raise ItemsError(
                f"not run with the same parameters in every folder: {', '.join(missing)}"
            )
        chosen = [by_name[name] for name in names]
    keys = {c.key for c in chosen}
    return Pool(chosen, [r for r in records if r["config_key"] in keys], problems)


def compare(pooled: Pool, baseline: str | None) -> tuple[list[Summary], list[Paired | None]]:
    """Each configuration's summary over the pool and, with a ``baseline`` (a configuration
    name), its paired comparison with it on the problems both answered."""
    summaries = summarise(pooled.configurations, pooled.records)
    if baseline is None:
        return summaries, [None] * len(summaries)
    chosen = next((c for c in pooled.configurations if c.name == baseline), None)
    if chosen is None:
        names = ", ".join(c.name for c in pooled.configurations)
        raise ItemsError(f"baseline {baseline!r} is not a configuration of every folder ({names})")
    against = paired(chosen, pooled.configurations, pooled.records)
    return summaries, row_by_row(summaries, pooled.configurations, against)


def pairs(pooled: Pool, references: Sequence[str]) -> list[Paired]:
    """Every configuration against each of ``references`` (configuration names), each
    unordered pair once (the first reference that reaches it names its side): the family
    over which :func:`~ponder.clients.evaluation.report.pairs_markdown` adjusts p-values."""
    by_name = {c.name: c for c in pooled.configurations}
    unknown = [name for name in references if name not in by_name]
    if unknown:
        names = ", ".join(by_name)
        raise ItemsError(f"not a configuration of every folder: {', '.join(unknown)} ({names})")
    seen: set[frozenset[str]] = set()
    result: list[Paired] = []
    for reference in dict.fromkeys(references):
        against = paired(by_name[reference], pooled.configurations, pooled.records)
        for configuration in pooled.configurations:
            pair = frozenset((configuration.name, reference))
            comparison = against.get(configuration.key)
            if len(pair) == 1 or pair in seen or comparison is None:
                continue
            seen.add(pair)
            result.append(comparison)
    return result

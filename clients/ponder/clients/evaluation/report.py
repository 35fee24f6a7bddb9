"""Per-configuration figures: accuracy with its 95% interval, latency, tokens, calls."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.table import Table

from ponder.clients.evaluation.configs import Configuration

SUMMARY_FILE = "summary.csv"


@dataclass(frozen=True, slots=True)
class Summary:
    config: str
    strategy: str
    items: int
    correct: int
    errors: int
    accuracy: float
    ci_low: float
    ci_high: float
    #: Mean score: DROP's F1, else the accuracy again.
    mean_score: float
    latency_mean_s: float
    latency_p50_s: float
    latency_p95_s: float
    sequential_tokens_mean: float
    all_tokens_mean: float
    calls_mean: float


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion: sound at 0, at 1 and for few trials."""
    if trials == 0:
        return 0.0, 0.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, slots=True)
class Paired:
    """A configuration against the baseline on the items both answered (a paired test).

    ``gained``: the configuration right where the baseline was wrong; ``lost``: the
    reverse. McNemar's exact test reads only these discordant items.
    """

    config: str
    baseline: str
    items: int
    gained: int
    lost: int

    @property
    def difference(self) -> float:
        return (self.gained - self.lost) / self.items if self.items else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        """A 95% interval of the paired difference in accuracy (Wald, for paired data)."""
        if not self.items:
            return 0.0, 0.0
        n, d = self.items, self.difference
        variance = ((self.gained + self.lost) - n * d * d) / (n * n)
        half = 1.96 * math.sqrt(max(variance, 0.0))
        return d - half, d + half

    @property
    def shown_difference(self) -> str:
        """The difference with its interval, as the report tables print it."""
        low, high = self.interval
        return f"{self.difference:+.1%} ({low:+.1%} to {high:+.1%})"

    @property
    def p_value(self) -> float:
        """McNemar's exact two-sided p-value (a binomial test on the discordant items)."""
        return mcnemar_exact(self.gained, self.lost)


def mcnemar_exact(gained: int, lost: int) -> float:
    discordant = gained + lost
    if discordant == 0:
        return 1.0
    tail = sum(math.comb(discordant, k) for k in range(min(gained, lost) + 1))
    return min(1.0, 2.0 * tail / float(2**discordant))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment, in the order given: each p-value as the family of all
    of them allows (reject where the adjusted value is below the level). A report compares
    every configuration with the baseline, so one small p among many can be chance."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def paired(
    baseline: Configuration,
    configurations: Sequence[Configuration],
    records: Iterable[dict[str, Any]],
) -> dict[str, Paired]:
    """Each configuration (the baseline's included) against the baseline, by config key."""
    by_key: dict[str, dict[Any, bool]] = {}
    for record in records:
        by_key.setdefault(record["config_key"], {})[record["item"]] = bool(
            not record.get("error") and record.get("correct")
        )
    base = by_key.get(baseline.key, {})
    result = {}
    for configuration in configurations:
        mine = by_key.get(configuration.key)
        if not mine:
            continue
        shared = sorted(set(mine) & set(base), key=str)
        result[configuration.key] = Paired(
            config=configuration.name,
            baseline=baseline.name,
            items=len(shared),
            gained=sum(1 for i in shared if mine[i] and not base[i]),
            lost=sum(1 for i in shared if base[i] and not mine[i]),
        )
    return result


def row_by_row(
    summaries: Sequence[Summary],
    configurations: Sequence[Configuration],
    comparisons: dict[str, Paired],
) -> list[Paired | None]:
    """``comparisons`` (by configuration key) in the summaries' order, as ``markdown``
    takes them."""
    keys = {c.name: c.key for c in configurations}
    return [comparisons.get(keys[s.config]) for s in summaries]


def summarise(
    configurations: Sequence[Configuration], records: Iterable[dict[str, Any]]
) -> list[Summary]:
    """One summary per configuration that has records, in the configurations' order.

    A failed item counts as wrong (and in ``errors``); its latency counts, its
    tokens are unknown and left out of the token means.
    """
    by_key: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_key.setdefault(record["config_key"], []).append(record)
    summaries = []
    for configuration in configurations:
        rows = by_key.get(configuration.key)
        if not rows:
            continue
        answered = [row for row in rows if not row.get("error")]
        correct = sum(1 for row in answered if row["correct"])
        low, high = wilson_interval(correct, len(rows))
        latencies = np.array([row["latency_s"] for row in rows], dtype=float)

        def mean(name: str, answered: list[dict[str, Any]] = answered) -> float:
            return float(np.mean([row[name] for row in answered])) if answered else 0.0

        summaries.append(
            Summary(
                config=configuration.name,
                strategy=configuration.strategy,
                items=len(rows),
                correct=correct,
                errors=len(rows) - len(answered),
                accuracy=correct / len(rows),
                ci_low=low,
                ci_high=high,
                mean_score=sum(row["score"] for row in answered) / len(rows),
                latency_mean_s=float(latencies.mean()),
                latency_p50_s=float(np.percentile(latencies, 50)),
                latency_p95_s=float(np.percentile(latencies, 95)),
                sequential_tokens_mean=mean("sequential_tokens"),
                all_tokens_mean=mean("all_tokens"),
                calls_mean=mean("calls"),
            )
        )
    return summaries


def write_csv(summaries: Sequence[Summary], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=[f.name for f in fields(Summary)])
        writer.writeheader()
        for summary in summaries:
            writer.writerow(
                {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(summary).items()}
            )


def table(summaries: Sequence[Summary], title: str) -> Table:
    result = Table(title=title)
    for header in (
        "configuration",
        "n",
        "accuracy (95% CI)",
        "latency mean / p50 / p95 s",
        "sequential tok",
        "all tok (B_total)",
        "calls",
        "errors",
    ):
        result.add_column(header, justify="left" if header == "configuration" else "right")
    for s in summaries:
        result.add_row(
            s.config,
            str(s.items),
            f"{s.accuracy:.1%} ({s.ci_low:.1%}-{s.ci_high:.1%})",
            f"{s.latency_mean_s:.2f} / {s.latency_p50_s:.2f} / {s.latency_p95_s:.2f}",
            f"{s.sequential_tokens_mean:.0f}",
            f"{s.all_tokens_mean:.0f}",
            f"{s.calls_mean:.1f}",
            str(s.errors),
        )
    return result


def markdown(summaries: Sequence[Summary], against: Sequence[Paired | None] | None = None) -> str:
    """The report table as Markdown (for docs); with ``against``, each row's paired
    difference from the baseline, its 95% interval, McNemar's p-value, and that p-value
    adjusted by Holm's method over the rows compared."""
    paired_columns = against is not None and any(p is not None for p in against)
    head = (
        "| configuration | n | accuracy (95% CI) | latency mean / p50 / p95 (s) "
        "| sequential tokens (B_seq) | all tokens (B_total) | calls | errors |"
    )
    rule = "| --- | --: | --: | --: | --: | --: | --: | --: |"
    adjusted: dict[int, float] = {}
    if paired_columns:
        baseline = next(p for p in against or () if p is not None).baseline
        head += f" vs {baseline}: difference (95% CI) | McNemar p | Holm p |"
        rule += " --: | --: | --: |"
        compared = [
            (i, p) for i, p in enumerate(against or ()) if p is not None and p.config != p.baseline
        ]
        family = holm([p.p_value for _, p in compared])
        adjusted = {i: value for (i, _), value in zip(compared, family, strict=True)}
    lines = [head, rule]
    for index, s in enumerate(summaries):
        row = (
            f"| {s.config} | {s.items} | {s.accuracy:.1%} ({s.ci_low:.1%}-{s.ci_high:.1%}) "
            f"| {s.latency_mean_s:.2f} / {s.latency_p50_s:.2f} / {s.latency_p95_s:.2f} "
            f"| {s.sequential_tokens_mean:.0f} | {s.all_tokens_mean:.0f} "
            f"| {s.calls_mean:.1f} | {s.errors} |"
        )
        if paired_columns:
            p = against[index] if against is not None else None
            if p is None or p.config == p.baseline:
                row += " — | — | — |"
            else:
                row += (
                    f" {p.shown_difference}, {p.gained} gained, "
                    f"{p.lost} lost | {p.p_value:.3g} | {adjusted[index]:.3g} |"
                )
        lines.append(row)
    return "\n".join(lines) + "\n"


def pairs_markdown(comparisons: Sequence[Paired], level: float = 0.05) -> str:
    """Paired comparisons as one family: each difference, McNemar's p and that p adjusted
    by Holm's method over every row, with whether it stands at ``level``. Reading a table
    against several baselines makes more comparisons than any one column shows; this
    corrects for all of them."""
    family = holm([p.p_value for p in comparisons])
    lines = [
        "| configuration | against | n | difference (95% CI) | gained / lost | McNemar p "
        f"| Holm p ({len(comparisons)} pairs) | stands at {level:g} |",
        "| --- | --- | --: | --: | --: | --: | --: | --- |",
    ]
    for p, adjusted in zip(comparisons, family, strict=True):
        lines.append(
            f"| {p.config} | {p.baseline} | {p.items} "
            f"| {p.shown_difference} | {p.gained} / {p.lost} "
            f"| {p.p_value:.3g} | {adjusted:.3g} | {'yes' if adjusted < level else 'no'} |"
        )
    return "\n".join(lines) + "\n"


_LABEL = re.compile(r"[^A-Za-z0-9_.:=,+/\[\]() -]")


def label(text: str) -> str:
    """``text`` as the server accepts a metric label: plain characters, at most 80."""
    return _LABEL.sub("_", text)[:80] or "_"


def frontier(
    dataset: str,
    model: str,
    summaries: Sequence[Summary],
    configurations: Sequence[Configuration],
) -> dict[str, Any]:
    """The results as the server keeps them (``POST /v1/eval/results``, ``ponder serve
    --frontier``): with each configuration's parameters, so a budget can choose it."""
    # A budget configuration is not a configuration the server can run for a budget.
    params = {c.name: dict(c.params) for c in configurations if c.budget is None}
    return {
        "dataset": label(dataset),
        "model": label(model or "unknown"),
        "results": [
            {
                "strategy": label(s.strategy),
                "config": label(s.config),
                "accuracy": s.accuracy,
                "accuracy_ci_low": s.ci_low,
                "accuracy_ci_high": s.ci_high,
                "mean_latency_seconds": s.latency_mean_s,
                "mean_sequential_tokens": s.sequential_tokens_mean,
                "mean_all_tokens": s.all_tokens_mean,
                "items": s.items,
                "params": params.get(s.config),
            }
            for s in summaries
            if s.items > 0 and s.config in params
        ],
    }


def publish(server: str, report: dict[str, Any], api_key: str | None) -> None:
    """POST a :func:`frontier` report to the server's /v1/eval/results (its ``ponder_eval_*``
    gauges and the frontier budget requests choose from)."""
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    results = report["results"]
    for start in range(0, len(results), 64):
        response = httpx.post(
            server.rstrip("/") + "/eval/results",
            json={**report, "results": results[start : start + 64]},
            headers=headers,
            timeout=30,
        )
        response.raise_for_status()

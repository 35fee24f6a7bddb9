"""The trade-off figure: accuracy against latency and against sequential tokens.

One labelled marker per configuration; the Pareto-optimal ones (no other is
both cheaper and at least as accurate) joined by a line, as in the PDR paper.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

from ponder.clients.evaluation.report import Summary


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points (cost, accuracy) on the frontier, cheapest first."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -1.0
    for index in order:
        if points[index][1] > best:
            front.append(index)
            best = points[index][1]
    return front


def plot(summaries: Sequence[Summary], path: Path, title: str) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
    panels = (
        (axes[0], "mean latency per problem (s)", [s.latency_mean_s for s in summaries]),
        (
            axes[1],
            "mean sequential tokens per problem",
            [s.sequential_tokens_mean for s in summaries],
        ),
    )
    accuracy = [s.accuracy for s in summaries]
    for ax, xlabel, costs in panels:
        ax.scatter(costs, accuracy, zorder=3)
        for summary, x, y in zip(summaries, costs, accuracy, strict=True):
            ax.annotate(
                summary.config, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8
            )
        front = pareto_front(list(zip(costs, accuracy, strict=True)))
        ax.plot(
            [costs[i] for i in front],
            [accuracy[i] for i in front],
            "--",
            zorder=2,
            label="Pareto frontier",
        )
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    figure.suptitle(title)
    figure.savefig(path, dpi=120)
    plt.close(figure)

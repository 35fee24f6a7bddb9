"""The trade-off figure: accuracy against latency, sequential tokens and all tokens (B_total).

One marker per configuration with its 95% interval as an error bar, one colour
per strategy (the legend names them), every configuration labelled; the
Pareto-optimal ones (no other is both cheaper and at least as accurate) are
joined by a dashed line, as in the PDR paper. Labels are placed where they
overlap no other label and stay inside the panel; one that fits nowhere is
numbered, and the numbers are listed under the figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.transforms import Bbox

from ponder.clients.evaluation.report import Summary
from ponder.strategies.pareto import pareto_front

#: Where a label may sit around its marker, in points, tried in order.
OFFSETS = (
    (6, 6, "left", "bottom"),
    (6, -6, "left", "top"),
    (-6, 6, "right", "bottom"),
    (-6, -6, "right", "top"),
    (0, 12, "center", "bottom"),
    (0, -12, "center", "top"),
    (14, 0, "left", "center"),
    (-14, 0, "right", "center"),
    (10, 20, "left", "bottom"),
    (-10, -20, "right", "top"),
    (10, -20, "left", "top"),
    (-10, 20, "right", "bottom"),
)


def plot(summaries: Sequence[Summary], path: Path, title: str) -> list[str]:
    """Draw the figure into ``path``; returns the labels that had to be numbered."""
    figure, axes = plt.subplots(1, 3, figsize=(18, 6.5))
    strategies = list(dict.fromkeys(s.strategy for s in summaries))
    palette = plt.get_cmap("tab10")
    colours = {name: palette(i % 10) for i, name in enumerate(strategies)}
    accuracy = [s.accuracy for s in summaries]
    errors = [
        [max(0.0, s.accuracy - s.ci_low) for s in summaries],
        [max(0.0, s.ci_high - s.accuracy) for s in summaries],
    ]
    # Room above the highest interval for its label; the whole scale when accuracy is high.
    top = min(1.02, max((s.ci_high for s in summaries), default=1.0) * 1.2 + 0.05)
    panels = (
        (axes[0], "mean latency per problem (s)", [s.latency_mean_s for s in summaries]),
        (
            axes[1],
            "mean sequential tokens per problem",
            [s.sequential_tokens_mean for s in summaries],
        ),
        (axes[2], "mean all tokens per problem (cost)", [s.all_tokens_mean for s in summaries]),
    )
    for ax, xlabel, costs in panels:
        for i, summary in enumerate(summaries):
            ax.errorbar(
                costs[i],
                accuracy[i],
                yerr=[[errors[0][i]], [errors[1][i]]],
                fmt="o",
                color=colours[summary.strategy],
                ecolor=colours[summary.strategy],
                elinewidth=1,
                capsize=3,
                zorder=3,
            )
        front = pareto_front(list(zip(costs, accuracy, strict=True)))
        ax.plot(
            [costs[i] for i in front],
            [accuracy[i] for i in front],
            "--",
            color="0.4",
            zorder=2,
        )
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (95% CI)")
        ax.set_ylim(-0.02, top)
        ax.margins(x=0.12)
        ax.grid(alpha=0.3)
    handles = [
        Line2D([], [], marker="o", linestyle="", color=colours[name], label=name)
        for name in strategies
    ]
    handles.append(Line2D([], [], linestyle="--", color="0.4", label="Pareto frontier"))
    figure.legend(
        handles=handles,
        loc="upper center",
        ncol=min(len(handles), 8),
        bbox_to_anchor=(0.5, 0.93),
        frameon=False,
    )
    figure.suptitle(title, y=0.99)
    figure.subplots_adjust(left=0.05, right=0.98, top=0.84, bottom=0.2, wspace=0.22)
    numbered: list[str] = []
    for ax, _, costs in panels:
        for entry in _label(ax, [s.config for s in summaries], costs, accuracy):
            if entry not in numbered:
                numbered.append(entry)
    if numbered:
        figure.text(0.05, 0.02, "   ".join(numbered), fontsize=8, va="bottom", wrap=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return numbered


def _label(ax: Axes, names: Sequence[str], xs: Sequence[float], ys: Sequence[float]) -> list[str]:
    """Annotate each point where its label overlaps nothing placed and stays in the panel."""
    renderer = ax.figure.canvas.get_renderer()  # type: ignore[attr-defined]
    inside = ax.get_window_extent(renderer)
    # Markers count as taken: a label never covers a point.
    taken: list[Bbox] = []
    for x, y in zip(xs, ys, strict=True):
        px, py = ax.transData.transform((x, y))
        taken.append(Bbox.from_extents(px - 5, py - 5, px + 5, py + 5))
    numbered: list[str] = []
    for index, (name, x, y) in enumerate(zip(names, xs, ys, strict=True)):
        placed = False
        for dx, dy, ha, va in OFFSETS:
            text = ax.annotate(
                name,
                (x, y),
                textcoords="offset points",
                xytext=(dx, dy),
                ha=ha,
                va=va,
                fontsize=8,
            )
            box = text.get_window_extent(renderer).expanded(1.05, 1.15)
            if _contains(inside, box) and not any(box.overlaps(other) for other in taken):
                taken.append(box)
                placed = True
                break
            text.remove()
        if not placed:
            mark = f"[{index + 1}]"
            text = ax.annotate(mark, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
            taken.append(text.get_window_extent(renderer))
            numbered.append(f"{mark} {name}")
    return numbered


def _contains(outer: Bbox, inner: Bbox) -> bool:
    return bool(
        inner.x0 >= outer.x0
        and inner.x1 <= outer.x1
        and inner.y0 >= outer.y0
        and inner.y1 <= outer.y1
    )

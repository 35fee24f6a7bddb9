"""The trade-off figure: accuracy against latency, sequential tokens and all tokens (B_total).

One marker per configuration with its 95% interval as an error bar, one colour
per strategy (the legend names them), every configuration labelled; the
Pareto-optimal ones (no other is both cheaper and at least as accurate) are
joined by a dashed line, as in the PDR paper. Labels are placed where they
cover no other label, marker or error bar and stay inside the panel, off the
frontier's line and nearer their own marker than any other where there is
room; a label placed away from its marker, or nearer another, is joined to it
by a thin line; one that fits nowhere is numbered, and the
numbers are listed under the figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.path import Path as LinePath
from matplotlib.text import Annotation, Text
from matplotlib.transforms import Bbox

from ponder.clients.evaluation.report import Summary
from ponder.strategies.pareto import pareto_front

#: The directions a label may sit in from its marker, tried in this order at each distance.
DIRECTIONS = ((1, 1), (1, -1), (-1, 1), (-1, -1), (0, 1), (0, -1), (1, 0), (-1, 0))
#: Distances from the marker, in points, nearest first; from ``LEADER_FROM`` on, a thin
#: line joins the label to its marker so that a distant label still names its point.
DISTANCES = (6, 18, 30, 44, 60)
LEADER_FROM = 18
#: How much nearer its own marker than any other a label must be to need no line (pixels).
CLEARLY = 4.0
#: Space between the lowest panel's axis label and the note of numbered labels (pixels).
FOOTNOTE_GAP = 8.0


def _offsets() -> tuple[tuple[int, int, str, str], ...]:
    """Every place a label may take: offset in points and the text's alignment there."""
    places = []
    for distance in DISTANCES:
        for dx, dy in DIRECTIONS:
            # Straight up or down needs more room: the marker's interval is there.
            reach = 2 * distance if dx == 0 else distance
            places.append(
                (
                    dx * (distance + 8 * (dy == 0)),
                    dy * reach,
                    {1: "left", -1: "right", 0: "center"}[dx],
                    {1: "bottom", -1: "top", 0: "center"}[dy],
                )
            )
    return tuple(places)


OFFSETS = _offsets()


@dataclass(frozen=True)
class Point:
    """One configuration in one panel: its name, cost, accuracy and 95% interval."""

    name: str
    x: float
    y: float
    low: float
    high: float


def plot(summaries: Sequence[Summary], path: Path, title: str) -> list[str]:
    """Draw the figure into ``path``; returns the labels that had to be numbered."""
    figure, axes = plt.subplots(1, 3, figsize=(18, 6.5))
    strategies = list(dict.fromkeys(s.strategy for s in summaries))
    palette = plt.get_cmap("tab10")
    colours = {name: palette(i % 10) for i, name in enumerate(strategies)}
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
    labelling: list[tuple[Axes, list[Point], list[tuple[float, float]]]] = []
    for ax, xlabel, costs in panels:
        points = [
            Point(s.config, cost, s.accuracy, min(s.ci_low, s.accuracy), max(s.ci_high, s.accuracy))
            for s, cost in zip(summaries, costs, strict=True)
        ]
        for point, summary in zip(points, summaries, strict=True):
            ax.errorbar(
                point.x,
                point.y,
                yerr=[[point.y - point.low], [point.high - point.y]],
                fmt="o",
                color=colours[summary.strategy],
                ecolor=colours[summary.strategy],
                elinewidth=1,
                capsize=3,
                zorder=3,
            )
        front = pareto_front([(point.x, point.y) for point in points])
        frontier = [(points[i].x, points[i].y) for i in front]
        ax.plot([x for x, _ in frontier], [y for _, y in frontier], "--", color="0.4", zorder=2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (95% CI)")
        ax.set_ylim(-0.02, top)
        ax.margins(x=0.12)
        ax.grid(alpha=0.3)
        labelling.append((ax, points, frontier))
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
    for ax, points, frontier in labelling:
        for entry in place_labels(ax, points, frontier):
            if entry not in numbered:
                numbered.append(entry)
    if numbered:
        footnote(figure, "   ".join(numbered))
    figure.savefig(path, dpi=120, bbox_inches="tight", pad_inches=0.15)  # no blank margins
    plt.close(figure)
    return numbered


def place_labels(
    ax: Axes, points: Sequence[Point], frontier: Sequence[tuple[float, float]]
) -> list[str]:
    """Annotate each point; returns the labels that had to be numbered.

    A label covers no other label, no marker and no error bar, and stays inside
    the panel. Beside its marker it must be clearly nearer that marker than any
    other, or it would name another point; a label placed farther is joined to
    its marker by a leader line. Where some place allows it, a label is also
    kept off the frontier's line and off the leader lines of distant labels, and
    its own leader crosses no label and no other point's marker or interval (a
    line through text is hard to read, but a label there beats a number)."""
    # Autoscaling (the margins) is applied lazily: reading the limits applies it, so
    # that the places measured here are where the points are drawn.
    ax.get_xlim()
    ax.get_ylim()
    renderer = ax.figure.canvas.get_renderer()  # type: ignore[attr-defined]
    inside = ax.get_window_extent(renderer)
    marks = [_marks(ax, point) for point in points]
    anchors = [_anchor(ax, point) for point in points]
    taken = [box for boxes in marks for box in boxes]
    lines = [LinePath(ax.transData.transform(frontier))] if len(frontier) > 1 else []
    labels: list[Bbox] = []
    numbered: list[str] = []
    for index, point in enumerate(points):
        others = [box for j, boxes in enumerate(marks) if j != index for box in boxes]
        anchor = anchors[index]
        spots = [
            (offset, box)
            for offset in OFFSETS
            if _contains(inside, box := _extent(ax, point, offset, renderer))
            and not any(box.overlaps(other) for other in taken)
        ]
        # A label by its marker names it only when no other marker is as near; a distant
        # label is named by its leader line.
        named = [
            (offset, box)
            for offset, box in spots
            if _leads(offset) or _nearest_is_own(index, box, anchors)
        ]
        clear = [
            (offset, box)
            for offset, box in named
            if not any(line.intersects_bbox(box, filled=False) for line in lines)
            and not (
                _leads(offset)
                and any(
                    _leader(anchor, box).intersects_bbox(other, filled=False)
                    for other in labels + others
                )
            )
        ]
        if spots:
            offset, box = (clear or named or spots)[0]
            dx, dy, ha, va = offset
            leads = _leads(offset) or not _nearest_is_own(index, box, anchors)
            _annotate(ax, point, point.name, (dx, dy), ha, va, 8, leader=leads)
            if leads:
                lines.append(_leader(anchor, box))
            taken.append(box)
            labels.append(box)
            continue
        mark = f"[{index + 1}]"
        text = _annotate(ax, point, mark, (4, 4), "left", "bottom", 7)
        taken.append(text.get_window_extent(renderer))
        numbered.append(f"{mark} {point.name}")
    return numbered


def footnote(figure: Figure, text: str) -> Text:
    """``text`` just under the lowest panel's axis label: a fixed place at the figure's
    foot left a blank band between the panels and the note once the figure was cropped."""
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    boxes = [ax.get_tightbbox(renderer) for ax in figure.axes]
    lowest = min((box.y0 for box in boxes if box is not None), default=FOOTNOTE_GAP)
    _, y = figure.transFigure.inverted().transform((0.0, lowest - FOOTNOTE_GAP))
    return figure.text(0.05, y, text, fontsize=8, va="top", wrap=True)


def _leads(offset: tuple[int, int, str, str]) -> bool:
    """Whether a label this far from its marker is joined to it by a line."""
    return max(abs(offset[0]), abs(offset[1])) >= LEADER_FROM


def _anchor(ax: Axes, point: Point) -> tuple[float, float]:
    """The marker's centre in display units."""
    x, y = ax.transData.transform((point.x, point.y))
    return float(x), float(y)


def _gap(anchor: tuple[float, float], box: Bbox) -> float:
    """How far ``box`` is from ``anchor`` (0 when it covers it), in display units."""
    x, y = anchor
    dx = max(box.x0 - x, 0.0, x - box.x1)
    dy = max(box.y0 - y, 0.0, y - box.y1)
    return float((dx * dx + dy * dy) ** 0.5)


def _nearest_is_own(index: int, box: Bbox, anchors: Sequence[tuple[float, float]]) -> bool:
    """Whether the label at ``box`` is clearly nearer its own marker, ``index``, than any
    other (a tie reads as either's)."""
    own = _gap(anchors[index], box)
    return all(_gap(a, box) > own + CLEARLY for j, a in enumerate(anchors) if j != index)


def _leader(anchor: tuple[float, float], box: Bbox) -> LinePath:
    """The leader line from the marker to the nearest point of its label, in display units."""
    x, y = anchor
    return LinePath([(x, y), (min(max(x, box.x0), box.x1), min(max(y, box.y0), box.y1))])


def _marks(ax: Axes, point: Point) -> list[Bbox]:
    """What a label must not cover: the marker and the error bar, in display units."""
    px, py = ax.transData.transform((point.x, point.y))
    _, low = ax.transData.transform((point.x, point.low))
    _, high = ax.transData.transform((point.x, point.high))
    return [
        Bbox.from_extents(px - 5, py - 5, px + 5, py + 5),
        Bbox.from_extents(px - 4, low - 2, px + 4, high + 2),
    ]


def _extent(
    ax: Axes, point: Point, offset: tuple[int, int, str, str], renderer: RendererBase
) -> Bbox:
    """Where the label would sit at ``offset``, with a margin, in display units."""
    dx, dy, ha, va = offset
    text = _annotate(ax, point, point.name, (dx, dy), ha, va, 8)
    box = text.get_window_extent(renderer).expanded(1.05, 1.15)
    text.remove()
    return box


def _annotate(
    ax: Axes,
    point: Point,
    text: str,
    offset: tuple[int, int],
    ha: str,
    va: str,
    size: int,
    leader: bool = False,
) -> Annotation:
    return ax.annotate(
        text,
        (point.x, point.y),
        textcoords="offset points",
        xytext=offset,
        ha=ha,
        va=va,
        fontsize=size,
        arrowprops=(
            {
                "arrowstyle": "-",
                "color": "0.55",
                "linewidth": 0.6,
                "shrinkA": 1,
                "shrinkB": 4,
                # From the label's side or corner that faces the marker, as placing it
                # assumed (:func:`_leader`); from the text's centre the line would cross
                # the label and end beside whatever lies past it.
                "relpos": (_facing(offset[0]), _facing(offset[1])),
            }
            if leader
            else None
        ),
    )


def _facing(offset: float) -> float:
    """Where, across a label placed ``offset`` from its marker, the side facing it is:
    0 (left or bottom), 0.5 (the middle) or 1."""
    return 0.5 - 0.5 * ((offset > 0) - (offset < 0))


def _contains(outer: Bbox, inner: Bbox) -> bool:
    return bool(
        inner.x0 >= outer.x0
        and inner.x1 <= outer.x1
        and inner.y0 >= outer.y0
        and inner.y1 <= outer.y1
    )

"""The Pareto frontier of evaluated configurations: those no other beats on both accuracy
and a cost. The evaluation's figure joins them with a line, the gateway flags them on
/metrics (``ponder_eval_pareto``) for the trade-off dashboard to draw the same line."""

from __future__ import annotations

from collections.abc import Sequence


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points (cost, accuracy) on the frontier, cheapest first: each is more
    accurate than every cheaper point (of equally cheap ones, only the most accurate)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -1.0
    for index in order:
        if points[index][1] > best:
            front.append(index)
            best = points[index][1]
    return front

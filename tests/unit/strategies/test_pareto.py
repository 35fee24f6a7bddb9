"""The Pareto frontier the evaluation's figure and the trade-off dashboard draw."""

from __future__ import annotations

from ponder.strategies.pareto import pareto_front


def test_the_front_keeps_the_configurations_nothing_beats_cheapest_first() -> None:
    points = [(1.0, 0.2), (2.0, 0.5), (3.0, 0.4), (4.0, 0.6), (0.5, 0.1), (2.0, 0.3)]
    assert pareto_front(points) == [4, 0, 1, 3]


def test_a_dearer_configuration_as_accurate_as_a_cheaper_one_is_not_on_it() -> None:
    assert pareto_front([(2.0, 0.5), (1.0, 0.5)]) == [1]
    assert pareto_front([]) == []

"""The pace a deadline reads: learnt from calls, turned into tokens and seconds."""

from __future__ import annotations

from ponder.strategies.pace import Pace, Paces


def test_the_pace_follows_the_calls_it_sees() -> None:
    pace = Pace(tokens_per_second=20.0, overhead_seconds=0.5)
    pace.record(2.5, 200)  # the first call replaces the assumption: 200 tokens in 2 s
    assert pace.tokens_per_second == 100.0
    for _ in range(30):
        pace.record(4.5, 200)  # slower now: 50 tokens/s
    assert 50.0 <= pace.tokens_per_second < 51.0
    assert pace.tokens_within(2.5) == int(2.0 * pace.tokens_per_second)
    assert pace.tokens_within(0.4) == 0
    assert abs(pace.seconds_for(100) - (0.5 + 100 / pace.tokens_per_second)) < 1e-9


def test_calls_too_short_to_time_teach_nothing() -> None:
    pace = Pace(tokens_per_second=20.0)
    pace.record(5.0, 3)
    pace.record(0.0, 100)
    assert (pace.tokens_per_second, pace.calls_seen) == (20.0, 0)


def test_each_model_has_its_own_pace() -> None:
    paces = Paces(tokens_per_second=30.0, overhead_seconds=0.1)
    paces.of("a").record(1.1, 100)
    assert paces.of("a").tokens_per_second == 100.0
    assert paces.of("b").tokens_per_second == 30.0
    assert paces.of("a") is paces.of("a")

"""The pace a deadline reads: learnt from calls, turned into tokens and seconds."""

from __future__ import annotations

import pytest

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


def test_a_batched_call_teaches_the_batched_pace_not_one_streams() -> None:
    pace = Pace(tokens_per_second=20.0, overhead_seconds=0.0)
    pace.record(2.0, 100)  # one stream alone: 50 tokens/s
    pace.record(8.0, 100, samples=8)  # eight side by side: 12.5 tokens/s each, 100 in all
    assert pace.tokens_per_second == 50.0
    assert pace.batched_tokens_per_second == 100.0
    assert (pace.calls_seen, pace.batched_calls_seen) == (1, 1)
    assert pace.rate(1) == 50.0
    assert pace.rate(8) == 12.5
    assert pace.rate(2) == 50.0  # the engine's throughput is not what binds two samples
    assert pace.tokens_within(4.0) == 200
    assert pace.tokens_within(4.0, samples=8) == 50
    assert pace.seconds_for(100, samples=4) == 4.0


def test_before_a_batched_call_each_sample_is_assumed_as_fast_as_one_stream() -> None:
    pace = Pace(tokens_per_second=40.0, overhead_seconds=0.5)
    assert pace.batched_tokens_per_second is None
    assert pace.rate(8) == 40.0
    assert pace.tokens_within(2.5, samples=8) == 80


def test_a_frontier_run_compares_throughputs_not_latencies() -> None:
    pace = Pace()
    assert pace.frontier_scale == 1.0
    # Measured at 1,000 tokens in 10 s; here 500 tokens took 10 s: twice as slow.
    pace.record_frontier_run(
        config="sc8", measured_seconds=10, measured_tokens=1000, seconds=10, tokens=500
    )
    assert pace.frontier_scale == 2.0
    # A run cut at its deadline still counts at its throughput: 300 tokens in 6 s.
    for _ in range(30):
        pace.record_frontier_run(
            config="sc8", measured_seconds=10, measured_tokens=1000, seconds=6, tokens=300
        )
    assert 1.99 < pace.frontier_scale < 2.01
    # A short problem answered fast at the same throughput changes nothing.
    pace.record_frontier_run(
        config="sc8", measured_seconds=10, measured_tokens=1000, seconds=1, tokens=50
    )
    assert 1.99 < pace.frontier_scale < 2.01


def test_each_configuration_is_read_at_its_own_runs_ratio_once_it_has_run() -> None:
    pace = Pace()
    assert pace.latency_scale("sc8") == pace.latency_scale("direct") == 1.0
    # The vote was measured alone at 60 tokens/s and runs at 40 here.
    pace.record_frontier_run(
        config="sc8", measured_seconds=34, measured_tokens=2040, seconds=40, tokens=1600
    )
    assert pace.latency_scale("sc8") == pytest.approx(1.5)
    # A configuration not run yet is read at the ratio over every run so far.
    assert pace.latency_scale("direct") == pytest.approx(1.5)
    # The direct answer was measured four problems at a time (12 tokens/s): alone it runs
    # three times that. Its runs do not make the vote look fast again.
    for _ in range(20):
        pace.record_frontier_run(
            config="direct", measured_seconds=20, measured_tokens=240, seconds=6.5, tokens=234
        )
    assert pace.latency_scale("direct") == pytest.approx(1 / 3, rel=0.01)
    assert pace.latency_scale("sc8") == pytest.approx(1.5)
    # The runs together say "faster than measured"; a configuration not run yet is not
    # believed faster than measured until it has run.
    assert pace.frontier_scale < 0.5
    assert pace.latency_scale("cot") == 1.0


def test_a_frontier_run_too_short_or_absurd_teaches_little() -> None:
    pace = Pace()
    pace.record_frontier_run(
        config="sc8", measured_seconds=10, measured_tokens=1000, seconds=5, tokens=20
    )
    pace.record_frontier_run(
        config="sc8", measured_seconds=0, measured_tokens=1000, seconds=5, tokens=200
    )
    assert (pace.frontier_scale, pace.frontier_runs_seen) == (1.0, 0)
    pace.record_frontier_run(
        config="sc8", measured_seconds=1, measured_tokens=10_000, seconds=100, tokens=40
    )
    assert pace.frontier_scale == pace.latency_scale("sc8") == 8.0  # believed up to a bound

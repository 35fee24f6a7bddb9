"""How fast the engines answer, as measured on the calls they made: what a deadline reads.

A latency budget is turned into tokens with this: a call of ``n`` samples of
``k`` output tokens each takes about ``overhead + k / rate(n)`` (queueing,
prefill and the HTTP round trip are in ``overhead``, the operator's assumed
value). Samples decoded side by side share the engine: one sample alone
decodes at the single-stream speed, and ``n`` at once at most at the engine's
batched throughput divided by ``n``, so ``rate(n) = min(single, batched / n)``.
Both are moving averages over the gateway's recent calls (one-sample calls
teach the first, wider calls the second), so an eight-sample vote does not
make the next one-sample answer look eight times slower, and the estimates
follow the load the engines are under. Before a call of each kind the
operator's assumed rate stands (for batched calls: as fast per sample as one
stream, the optimistic side, as on an engine with spare compute).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Weight of the newest call in the moving averages: about the last ten calls count.
SMOOTHING = 0.2
#: Calls shorter than this say more about the clock than about the engine.
MIN_MEASURED_TOKENS = 8
#: A run's throughput against its frontier's is believed up to this factor either way: a
#: run of a few tokens that waited behind others says little about the server.
MAX_FRONTIER_SCALE = 8.0


@dataclass
class Pace:
    """Decode speed of one sample alone and of samples side by side, and the fixed cost
    of a call, learnt from calls."""

    tokens_per_second: float = 20.0
    overhead_seconds: float = 0.3
    #: Output tokens per second over all the samples of a batched call (None: no
    #: batched call measured yet).
    batched_tokens_per_second: float | None = None
    calls_seen: int = 0
    batched_calls_seen: int = 0
    #: How many times longer this server takes than the evaluation whose measurements a
    #: budget chooses from (above 1: slower), over the runs of every configuration: what a
    #: configuration not run yet is read times (when above 1).
    frontier_scale: float = 1.0
    frontier_runs_seen: int = 0
    #: The same ratio per configuration, from its own runs (scale, runs). An evaluation
    #: measures each configuration under its own load (four problems at a time, or one), so
    #: one configuration's ratio does not carry to another: a one-sample answer measured
    #: four at a time runs three times its measured throughput alone, while the vote
    #: beside it runs slower than measured.
    frontier_scales: dict[str, tuple[float, int]] = field(default_factory=dict)

    def record(self, seconds: float, tokens: int, samples: int = 1) -> None:
        """A call of ``samples`` samples whose longest produced ``tokens`` in ``seconds``."""
        if tokens < MIN_MEASURED_TOKENS or seconds <= 0:
            return
        rate = tokens / max(seconds - self.overhead_seconds, seconds / 2)
        if samples <= 1:
            self.tokens_per_second = self._averaged(self.tokens_per_second, rate, self.calls_seen)
            self.calls_seen += 1
            return
        batched = self.batched_tokens_per_second or 0.0
        self.batched_tokens_per_second = self._averaged(
            batched, rate * samples, self.batched_calls_seen
        )
        self.batched_calls_seen += 1

    def record_frontier_run(
        self,
        *,
        config: str,
        measured_seconds: float,
        measured_tokens: float,
        seconds: float,
        tokens: int,
    ) -> None:
        """A run of ``config``, chosen from a frontier, which measured it at
        ``measured_tokens`` (B_total) in ``measured_seconds`` on average, that made ``tokens``
        in ``seconds`` here. Throughputs are compared, not latencies: a run a deadline cut
        short still shows how fast this server worked (its latency only that it hit the
        deadline), and a short problem is not taken for a fast server."""
        if tokens < 4 * MIN_MEASURED_TOKENS or min(seconds, measured_seconds, measured_tokens) <= 0:
            return
        then, now = measured_tokens / measured_seconds, tokens / seconds
        scale = min(MAX_FRONTIER_SCALE, max(1 / MAX_FRONTIER_SCALE, then / now))
        self.frontier_scale = self._averaged(self.frontier_scale, scale, self.frontier_runs_seen)
        self.frontier_runs_seen += 1
        own, runs = self.frontier_scales.get(config, (1.0, 0))
        self.frontier_scales[config] = (self._averaged(own, scale, runs), runs + 1)

    def latency_scale(self, config: str) -> float:
        """How many times its measured latency ``config`` is expected to take here: its own
        runs' ratio once it has run; before, the ratio over every configuration's runs, but
        never below 1. A latency budget is a deadline, so a configuration is not believed
        faster than measured before it has shown it: configurations measured under a heavier
        load than this server's run faster here, and would make every other look fast too."""
        own = self.frontier_scales.get(config)
        return max(1.0, self.frontier_scale) if own is None else own[0]

    @staticmethod
    def _averaged(average: float, newest: float, seen: int) -> float:
        """The moving average with ``newest``: the first measurement replaces the assumption."""
        weight = 1.0 if seen == 0 else SMOOTHING
        return average + weight * (newest - average)

    def rate(self, samples: int = 1) -> float:
        """Output tokens per second of each sample of a call of ``samples`` samples."""
        if samples <= 1 or self.batched_tokens_per_second is None:
            return self.tokens_per_second
        return min(self.tokens_per_second, self.batched_tokens_per_second / samples)

    def seconds_for(self, tokens: int, samples: int = 1) -> float:
        """About how long a call of ``samples`` samples of ``tokens`` tokens each takes."""
        return self.overhead_seconds + tokens / self.rate(samples)

    def tokens_within(self, seconds: float, samples: int = 1) -> int:
        """About how many tokens each sample of a call of ``samples`` samples can generate in
        ``seconds`` (0: not even one)."""
        return max(0, int((seconds - self.overhead_seconds) * self.rate(samples)))


class Paces:
    """The pace of each model's engines, as one gateway has measured it."""

    def __init__(self, tokens_per_second: float = 20.0, overhead_seconds: float = 0.3) -> None:
        self._assumed = (tokens_per_second, overhead_seconds)
        self._by_model: dict[str, Pace] = {}

    def of(self, model: str) -> Pace:
        pace = self._by_model.get(model)
        if pace is None:
            rate, overhead = self._assumed
            pace = self._by_model[model] = Pace(rate, overhead)
        return pace

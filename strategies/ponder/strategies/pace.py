"""How fast the engines answer, as measured on the calls they made: what a deadline reads.

A latency budget is turned into tokens with this: a call of ``k`` output
tokens takes about ``overhead + k / tokens_per_second`` (queueing, prefill and
the HTTP round trip are in ``overhead``, the operator's assumed value). The
rate is a moving average over the gateway's recent calls, so the estimate
follows the load the engines are under; before the first call the operator's
assumed rate stands.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Weight of the newest call in the moving averages: about the last ten calls count.
SMOOTHING = 0.2
#: Calls shorter than this say more about the clock than about the engine.
MIN_MEASURED_TOKENS = 8


@dataclass
class Pace:
    """Decode speed of one sample and the fixed cost of a call, learnt from calls."""

    tokens_per_second: float = 20.0
    overhead_seconds: float = 0.3
    calls_seen: int = 0

    def record(self, seconds: float, tokens: int) -> None:
        """A call that produced ``tokens`` (its longest sample's) in ``seconds``."""
        if tokens < MIN_MEASURED_TOKENS or seconds <= 0:
            return
        rate = tokens / max(seconds - self.overhead_seconds, seconds / 2)
        weight = 1.0 if self.calls_seen == 0 else SMOOTHING
        self.tokens_per_second += weight * (rate - self.tokens_per_second)
        self.calls_seen += 1

    def seconds_for(self, tokens: int) -> float:
        """About how long a call generating ``tokens`` takes."""
        return self.overhead_seconds + tokens / self.tokens_per_second

    def tokens_within(self, seconds: float) -> int:
        """About how many tokens one call can generate in ``seconds`` (0: not even one)."""
        return max(0, int((seconds - self.overhead_seconds) * self.tokens_per_second))


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

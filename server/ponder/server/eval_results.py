"""Evaluation results pushed to the gateway, exposed as ``ponder_eval_*`` gauges.

``ponder eval`` (or any harness) posts what one run measured per strategy
configuration to ``POST /v1/eval/results``; Prometheus scrapes the gauges and
the Reasoning trade-offs dashboard draws accuracy against latency and against
sequential tokens. Labels here do come from the client, so they are checked
(short, plain characters) and their number is capped per gateway process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ponder.server.errors import InvalidRequest
from ponder.server.metrics import Metrics
from ponder.strategies.pareto import pareto_front

#: Letters, digits and the punctuation configuration names need: "pdr[4,2,1]",
#: "self_consistency n=8", "sr rounds=2". No quotes, braces or newlines.
Label = Annotated[
    str,
    StringConstraints(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.:=,+/\[\]() -]+$"),
]


class EvalResult(BaseModel):
    # Numbers are numbers: "0.5" is refused, not read as one.
    model_config = ConfigDict(extra="forbid", strict=True)

    strategy: Label
    config: Label = Field(description="the configuration's name, unique within the dataset")
    accuracy: float = Field(ge=0.0, le=1.0)
    accuracy_ci_low: float | None = Field(None, ge=0.0, le=1.0, description="95% interval")
    accuracy_ci_high: float | None = Field(None, ge=0.0, le=1.0)
    mean_latency_seconds: float = Field(ge=0.0)
    mean_sequential_tokens: float = Field(ge=0.0)
    mean_all_tokens: float = Field(ge=0.0)
    items: int = Field(ge=1, description="problems graded")
    params: dict[str, Any] | None = Field(
        None,
        description="the strategy's parameters: a configuration with them can be served "
        "for a budget (ponder.budget)",
    )


class EvalReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: Label
    model: Label = Field("unknown", description="the model the results were measured on")
    results: list[EvalResult] = Field(min_length=1, max_length=64)


#: The costs a configuration's place on the Pareto frontier is judged against, as the
#: ``cost`` label of ``ponder_eval_pareto`` names them.
COSTS: dict[str, Callable[[EvalResult], float]] = {
    "latency_seconds": lambda r: r.mean_latency_seconds,
    "sequential_tokens": lambda r: r.mean_sequential_tokens,
    "all_tokens": lambda r: r.mean_all_tokens,
}


class EvalBoard:
    """The evaluation results one gateway process exposes; at most ``max_series`` of them."""

    def __init__(self, metrics: Metrics, max_series: int) -> None:
        self._metrics = metrics
        self._max_series = max_series
        self._series: set[tuple[str, str, str, str]] = set()

    def __len__(self) -> int:
        return len(self._series)

    def record(self, report: EvalReport) -> int:
        """Set the gauges of every result; refuse the whole report if it would pass the cap."""
        keys = {(report.dataset, report.model, r.strategy, r.config) for r in report.results}
        new = keys - self._series
        if len(self._series) + len(new) > self._max_series:
            raise InvalidRequest(
                f"the report adds {len(new)} evaluation series to {len(self._series)}; the "
                f"server keeps at most {self._max_series} (max_eval_series)",
                param="results",
                code="over_cap",
            )
        self._series |= new
        m = self._metrics
        for result in report.results:
            labels = (report.dataset, report.model, result.strategy, result.config)
            m.eval_accuracy.labels(*labels).set(result.accuracy)
            low, high = result.accuracy_ci_low, result.accuracy_ci_high
            m.eval_accuracy_ci_low.labels(*labels).set(result.accuracy if low is None else low)
            m.eval_accuracy_ci_high.labels(*labels).set(result.accuracy if high is None else high)
            m.eval_latency.labels(*labels).set(result.mean_latency_seconds)
            m.eval_sequential_tokens.labels(*labels).set(result.mean_sequential_tokens)
            m.eval_all_tokens.labels(*labels).set(result.mean_all_tokens)
            m.eval_items.labels(*labels).set(result.items)
        return len(report.results)

    def flag_frontier(self, report: EvalReport) -> None:
        """Flag, for each cost, the configurations of ``report`` (every result known for its
        model and dataset: the frontier store's) that are on the Pareto frontier; those this
        process does not show are left out, so the flags stay within the series cap."""
        results = report.results
        for cost, of in COSTS.items():
            front = set(pareto_front([(of(r), r.accuracy) for r in results]))
            for index, result in enumerate(results):
                key = (report.dataset, report.model, result.strategy, result.config)
                if key in self._series:
                    flag = self._metrics.eval_pareto.labels(*key, cost)
                    flag.set(1 if index in front else 0)

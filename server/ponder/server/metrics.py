"""Prometheus metrics of one gateway.

Every family is named ``ponder_*`` and labelled only with values the server
chose (strategy and model names it serves, replica URLs it was configured
with, call roles, statuses): never a prompt, a request id or a user string.

Under several uvicorn workers, ``PROMETHEUS_MULTIPROC_DIR`` is set before any
worker starts (``ponder serve --workers`` does it); each worker then writes its
values to files there and :meth:`Metrics.render` adds them up, so a scrape of
any worker sees the whole gateway.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Seconds: a one-token answer on a GPU to a many-round PDR run on a CPU.
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640)
#: Per request: 0 for a strategy without rounds, up to the server's cap.
ROUND_BUCKETS = (0, 1, 2, 3, 4, 6, 8, 12, 16)
DRAFT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
TOKEN_BUCKETS = (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)

Family = TypeVar("Family", bound=MetricWrapperBase)


class Metrics:
    """The gateway's metric families, in a registry of their own (no global state)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        # Each family's series by label values, as `labels` gives them: served requests
        # look theirs up several times each, and `labels` checks its arguments and takes a
        # lock every time (a tenth of the gateway's own Python calls per request, in process).
        self._series: dict[tuple[MetricWrapperBase, tuple[str, ...]], MetricWrapperBase] = {}
        r = self.registry
        self.requests = Counter(
            "ponder_requests",
            "Completion requests answered, by strategy, model and HTTP status.",
            ["strategy", "model", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            "ponder_request_duration_seconds",
            "Seconds from a completion request's arrival to its last byte.",
            ["strategy", "model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.budget_requests = Counter(
            "ponder_budget_requests",
            "Requests served under a budget (ponder.budget or reasoning_effort), by where "
            "their configuration came from (frontier, ladder, named) and what stopped them "
            "short (deadline, sequential_tokens, all_tokens; none: the plan finished).",
            ["source", "stopped"],
            registry=r,
        )
        self.time_to_first_token = Histogram(
            "ponder_time_to_first_token_seconds",
            "Seconds from a streamed request's arrival to its first answer text.",
            ["strategy", "model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "ponder_tokens",
            "Tokens of answered requests that engines worked for (cache hits excluded), by "
            "kind: prompt and completion as in OpenAI's usage, sequential on the critical "
            "path, total over every call.",
            ["strategy", "kind"],
            registry=r,
        )
        self.engine_call_duration = Histogram(
            "ponder_engine_call_duration_seconds",
            "Seconds per engine call, by replica and the call's role in its strategy.",
            ["replica", "role"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.engine_call_errors = Counter(
            "ponder_engine_call_errors",
            "Failed engine calls, by replica, role and status (503 down, 504 timeout ...).",
            ["replica", "role", "status"],
            registry=r,
        )
        self.engine_replies_resumed = Counter(
            "ponder_engine_replies_resumed",
            "Streamed replies that a replica finished after another failed mid-reply, by "
            "the replica that took over and the call's role.",
            ["replica", "role"],
            registry=r,
        )
        self.rounds = Histogram(
            "ponder_rounds",
            "Rounds per answered request.",
            ["strategy"],
            buckets=ROUND_BUCKETS,
            registry=r,
        )
        self.drafts = Histogram(
            "ponder_drafts",
            "Drafts (samples of draft roles) per answered request.",
            ["strategy"],
            buckets=DRAFT_BUCKETS,
            registry=r,
        )
        self.workspace_tokens = Histogram(
            "ponder_workspace_tokens",
            "Size of each bounded workspace a strategy built, in the engine's tokens.",
            ["strategy"],
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.cache_hits = Counter(
            "ponder_cache_hits",
            "Cache lookups that found an entry, by level (response or engine call).",
            ["level"],
            registry=r,
        )
        self.cache_misses = Counter(
            "ponder_cache_misses",
            "Cache lookups that found none (the cache unreachable included), by level.",
            ["level"],
            registry=r,
        )
        self.cache_errors = Counter(
            "ponder_cache_errors",
            "Cache operations that failed or timed out, by back end and operation.",
            ["backend", "operation"],
            registry=r,
        )
        self.in_flight = Gauge(
            "ponder_in_flight_requests",
            "Completion requests being served now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        # Set through POST /v1/eval/results; the latest run of a configuration wins.
        self.eval_accuracy = self._eval_gauge(
            "ponder_eval_accuracy",
            "Accuracy of a strategy configuration on a dataset, from the last evaluation run.",
        )
        self.eval_accuracy_ci_low = self._eval_gauge(
            "ponder_eval_accuracy_ci_low",
            "Lower end of the accuracy's 95% interval (Wilson) in that evaluation run.",
        )
        self.eval_accuracy_ci_high = self._eval_gauge(
            "ponder_eval_accuracy_ci_high",
            "Upper end of the accuracy's 95% interval (Wilson) in that evaluation run.",
        )
        self.eval_latency = self._eval_gauge(
            "ponder_eval_mean_latency_seconds", "Mean seconds per problem of that evaluation run."
        )
        self.eval_sequential_tokens = self._eval_gauge(
            "ponder_eval_mean_sequential_tokens",
            "Mean sequential (critical-path) tokens per problem of that evaluation run.",
        )
        self.eval_all_tokens = self._eval_gauge(
            "ponder_eval_mean_all_tokens",
            "Mean tokens over every call per problem of that evaluation run.",
        )
        self.eval_items = self._eval_gauge(
            "ponder_eval_items", "Problems graded in that evaluation run."
        )
        self.eval_pareto = Gauge(
            "ponder_eval_pareto",
            "1 when no other configuration evaluated on the dataset for the model is both "
            "cheaper in `cost` (latency_seconds, sequential_tokens or all_tokens) and at least "
            "as accurate, else 0: the trade-off dashboard's Pareto line.",
            ["dataset", "model", "strategy", "config", "cost"],
            registry=r,
            multiprocess_mode="mostrecent",
        )

    def _eval_gauge(self, name: str, documentation: str) -> Gauge:
        return Gauge(
            name,
            documentation,
            ["dataset", "model", "strategy", "config"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )

    def series(self, family: Family, *values: str) -> Family:
        """``family.labels(*values)``, looked up once. Only for families whose series are
        never removed, labelled with values the server chose (bounded as the families are)."""
        key = (family, values)
        found = self._series.get(key)
        if found is None:
            found = self._series[key] = family.labels(*values)
        return found  # type: ignore[return-value]

    def render(self) -> bytes:
        """The exposition text: this process's values, or every worker's in multiprocess mode."""
        directory = os.environ.get(MULTIPROC_ENV)
        if not directory:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(merged)

    def observe_answer(
        self,
        *,
        strategy: str,
        prompt_tokens: int,
        completion_tokens: int,
        sequential_tokens: int,
        all_tokens: int,
        rounds: int,
        drafts: int,
        workspaces: Iterable[int],
    ) -> None:
        """What an answered (not cached) request cost."""
        for kind, value in (
            ("prompt", prompt_tokens),
            ("completion", completion_tokens),
            ("sequential", sequential_tokens),
            ("all", all_tokens),
        ):
            self.series(self.tokens, strategy, kind).inc(value)
        self.series(self.rounds, strategy).observe(rounds)
        self.series(self.drafts, strategy).observe(drafts)
        for tokens in workspaces:
            self.series(self.workspace_tokens, strategy).observe(tokens)

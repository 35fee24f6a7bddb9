"""The record of one served request: its JSON log line (no prompt text) and its metrics."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from ponder.server.metrics import Metrics
from ponder.server.planning import Plan
from ponder.server.running import Outcome

logger = logging.getLogger("ponder.requests")


def record_request(
    metrics: Metrics,
    plan: Plan,
    status: int,
    started: float,
    outcome: Outcome | None,
    *,
    cached: bool = False,
    first_text: float | None = None,
) -> None:
    strategy, model = plan.selection.strategy, plan.selection.model
    elapsed = time.perf_counter() - started
    metrics.series(metrics.requests, strategy, model, str(status)).inc()
    if status == 200:
        metrics.series(metrics.request_duration, strategy, model).observe(elapsed)
        if first_text is not None:
            metrics.series(metrics.time_to_first_token, strategy, model).observe(
                first_text - started
            )
    budget = plan.selection.budget_info
    run = outcome.run if outcome is not None else None
    stopped = run.stopped[0] if run is not None and run.stopped else None
    if run is not None and status == 200:
        usage = run.usage
        if budget is not None:
            metrics.series(metrics.budget_requests, budget.source, stopped or "none").inc()
        metrics.observe_answer(
            strategy=strategy,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            sequential_tokens=usage.sequential_tokens,
            all_tokens=usage.all_tokens,
            rounds=usage.rounds,
            drafts=usage.drafts,
            workspaces=[w.tokens for d in run.details for w in d.workspaces()],
        )
    # The line costs as much as the metrics: built only when it is written.
    if not logger.isEnabledFor(logging.INFO):
        return
    line: dict[str, Any] = {
        "event": "request",
        "id": plan.request_id,
        "endpoint": plan.endpoint.kind,
        "strategy": strategy,
        "model": model,
        "stream": plan.stream,
        "status": status,
        "latency_ms": round(elapsed * 1000, 1),
        "cache": "hit" if cached else "miss",
    }
    if run is not None:
        usage = run.usage
        if budget is not None and status == 200:
            line.update(budget=budget.config or budget.source, stopped=stopped)
        line.update(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            calls=usage.calls,
            sequential_tokens=usage.sequential_tokens,
            all_tokens=usage.all_tokens,
        )
    logger.info(json.dumps(line, separators=(",", ":")))

"""A finished outcome as the OpenAI response object, with Ponder's usage and ``ponder`` info."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.responses import Response

from ponder.server.endpoints import CompletionResponse
from ponder.server.planning import Plan
from ponder.server.protocol import (
    CompletionTokensDetails,
    PonderInfo,
    PonderUsage,
    TraceCall,
    Usage,
)
from ponder.server.running import Outcome
from ponder.strategies.budget import Usage as BudgetUsage


def usage_of(usage: BudgetUsage, answer_tokens: int) -> Usage:
    """OpenAI's usage (``total_tokens`` = prompt + completion, as OpenAI means it) and
    Ponder's; generated tokens that are not the answers' are reasoning tokens."""
    return Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.prompt_tokens + usage.completion_tokens,
        completion_tokens_details=CompletionTokensDetails(
            reasoning_tokens=max(0, usage.completion_tokens - answer_tokens)
        ),
        ponder=PonderUsage(
            calls=usage.calls,
            rounds=usage.rounds,
            drafts=usage.drafts,
            sequential_tokens=usage.sequential_tokens,
            all_tokens=usage.all_tokens,
        ),
    )


def info_of(plan: Plan, outcome: Outcome, *, caching: bool) -> PonderInfo:
    """``ponder`` in the response: strategy, parameters, answers, trace and details."""
    run = outcome.run
    params = plan.strategy.params
    trace = None
    if params.trace:
        trace = [
            TraceCall(
                role=r.role,
                round=r.round,
                index=r.index,
                step=r.step,
                prompt=r.prompt,
                output=r.output,
                prompt_tokens=r.prompt_tokens,
                completion_tokens=r.completion_tokens,
                meta=r.meta or None,
                reasoning=r.reasoning or None,
            )
            for r in run.records
        ]
    details: dict[str, Any] | None = None
    if run.details:
        shown = [d.to_json() for d in run.details]
        details = shown[0] if len(shown) == 1 else {"runs": shown}
    budget = plan.selection.budget_info
    if budget is not None:
        stopped = run.stopped[0] if run.stopped else None
        details = {
            **(details or {}),
            "budget": budget.model_copy(update={"stopped": stopped}).model_dump(
                mode="json", exclude_none=True
            ),
        }
    answers = [a.answer for a in run.answers]
    return PonderInfo(
        strategy=plan.selection.strategy,
        params=params.model_dump(),
        answers=answers if any(a is not None for a in answers) else None,
        trace=trace,
        details=details,
        cache="miss" if caching else None,
    )


def response_of(plan: Plan, outcome: Outcome, *, caching: bool) -> CompletionResponse:
    return plan.endpoint.response(
        id=plan.response_id,
        model=plan.response_model,
        answers=outcome.run.answers,
        usage=usage_of(outcome.run.usage, sum(a.tokens for a in outcome.run.answers)),
        info=info_of(plan, outcome, caching=caching),
        logprobs=plan.shape.logprobs,
    )


def json_of(response: BaseModel) -> bytes:
    """A response object's JSON as sent and cached: pydantic's own serializer (Starlette's
    JSONResponse would build a dict first and encode it again with :mod:`json`)."""
    return response.model_dump_json(exclude_none=True).encode()


class JSONResponse(Response):
    """A response whose JSON body is already encoded (:func:`json_of`)."""

    media_type = "application/json"

"""The budget a user names for one request (``ponder.budget``), and what reaching it does.

Three bounds, any of them: ``latency_s`` (a deadline from the request's
arrival), ``sequential_tokens`` (B_seq, the critical path) and
``all_tokens`` (B_total, every call's input and output; ``total_tokens`` is
accepted as its other name). Unlike the server's caps, reaching a budget is
not an error: a call that would pass it is not started (or is cut short to
fit), and the run answers with the best answer it has so far — the vote
leader, the latest refinement — marked ``stopped``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

#: Why a run stopped short of its plan.
BudgetStop = Literal["deadline", "sequential_tokens", "all_tokens"]
#: No call is started with room for fewer output tokens than this: it could not say much.
MIN_CALL_TOKENS = 16


class UserBudget(BaseModel):
    """``ponder.budget``: what the user will spend on this answer."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    latency_s: float | None = Field(
        None, gt=0, le=3600, strict=True, description="seconds from arrival to the answer"
    )
    sequential_tokens: int | None = Field(
        None, gt=0, strict=True, description="tokens on the critical path (B_seq)"
    )
    all_tokens: int | None = Field(
        None,
        gt=0,
        strict=True,
        validation_alias=AliasChoices("all_tokens", "total_tokens"),
        description="every call's input and output tokens (B_total); also 'total_tokens'",
    )

    @model_validator(mode="after")
    def _names_a_bound(self) -> UserBudget:
        if self.latency_s is None and self.sequential_tokens is None and self.all_tokens is None:
            raise ValueError("name at least one of latency_s, sequential_tokens, all_tokens")
        return self

    def starting_now(self) -> Deadline | None:
        """The deadline of a request that arrives now, if the budget sets one."""
        if self.latency_s is None:
            return None
        return Deadline(time.monotonic() + self.latency_s)


@dataclass(frozen=True, slots=True)
class Deadline:
    """A moment on the monotonic clock (the event loop's) by which the answer is due."""

    at: float

    def left(self) -> float:
        return self.at - time.monotonic()


class BudgetReached(Exception):
    """The next call would pass the user's budget; the run answers with what it has."""

    def __init__(self, reason: BudgetStop) -> None:
        super().__init__(f"the request's budget ({reason}) is reached")
        self.reason: BudgetStop = reason

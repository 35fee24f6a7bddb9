"""Token accounting for one request: every call, and the critical path.

A request's engine calls form a sequence of *steps*; the calls inside one
step run in parallel, and each step waits for the one before. Following the
PDR paper, every sample counts as one call of ``input + output`` tokens:

- ``all_tokens`` (B_total) sums every sample's input and output tokens;
- ``sequential_tokens`` (B_seq) sums, over steps, the largest sample of the
  step — the tokens on the critical path that latency follows.

``prompt_tokens`` and ``completion_tokens`` are what the engines billed:
a prompt shared by ``n`` samples of one batched call is prefilled, and so
counted, once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ponder.strategies.engine import Generation


class BudgetExhausted(ValueError):
    """The request has spent the tokens the server allows one request."""


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One sample an engine produced, as the trace shows it."""

    role: str
    round: int
    index: int
    step: int
    prompt: str
    output: str
    prompt_tokens: int
    completion_tokens: int
    #: What the strategy learnt of this sample: its answer, a workspace's cut, ...
    meta: dict[str, Any] = field(default_factory=dict)
    #: A reasoning model's thinking before ``output`` (empty for other models).
    reasoning: str = ""

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    calls: int
    rounds: int
    drafts: int
    sequential_tokens: int
    all_tokens: int


@dataclass
class Allowance:
    """The tokens a whole request may spend, shared by its strategy runs (one per answer
    of ``n``): ``n`` runs do not get ``n`` times the cap."""

    limit: int
    spent: int = 0


@dataclass
class Budget:
    """Counts the calls of one strategy run; caps the tokens it, and the request it is part
    of (``allowance``), may spend."""

    max_all_tokens: int | None = None
    allowance: Allowance | None = None
    records: list[CallRecord] = field(default_factory=list)
    _billed_prompt_tokens: int = 0
    _requests: int = 0
    _step: int = 0
    _in_parallel_block: bool = False

    @contextmanager
    def parallel(self) -> Iterator[None]:
        """Calls recorded inside this block share one step of the critical path."""
        if self._in_parallel_block:
            yield
            return
        self._step += 1
        self._in_parallel_block = True
        try:
            yield
        finally:
            self._in_parallel_block = False

    def record(
        self,
        generation: Generation,
        *,
        role: str,
        round: int,
        prompt: str,
        index: int | None = None,
    ) -> list[CallRecord]:
        """Record every choice of ``generation`` as parallel samples of one step.

        Choices are numbered from ``index``, or after the samples of the same
        role already in this step.
        """
        if not self._in_parallel_block:
            self._step += 1
        first_index = (
            index
            if index is not None
            else sum(1 for r in self.records if r.step == self._step and r.role == role)
        )
        added: list[CallRecord] = []
        for offset, choice in enumerate(generation.choices):
            added.append(
                CallRecord(
                    role=role,
                    round=round,
                    index=first_index + offset,
                    step=self._step,
                    prompt=prompt,
                    output=choice.text,
                    prompt_tokens=generation.prompt_tokens,
                    completion_tokens=choice.completion_tokens,
                    meta={"cached": True} if generation.cached else {},
                    reasoning=choice.reasoning,
                )
            )
        self.records.extend(added)
        if self.allowance is not None:
            self.allowance.spent += sum(record.tokens for record in added)
        self._billed_prompt_tokens += generation.prompt_tokens * generation.requests
        self._requests += generation.requests
        return added

    def record_failure(
        self, *, role: str, round: int, prompt: str, index: int, error: str
    ) -> CallRecord:
        """A call that failed while its step went on without it: in the trace, no tokens."""
        if not self._in_parallel_block:
            self._step += 1
        record = CallRecord(
            role=role,
            round=round,
            index=index,
            step=self._step,
            prompt=prompt,
            output="",
            prompt_tokens=0,
            completion_tokens=0,
            meta={"failed": error},
        )
        self.records.append(record)
        return record

    @property
    def all_tokens(self) -> int:
        return sum(record.tokens for record in self.records)

    @property
    def sequential_tokens(self) -> int:
        longest: dict[int, int] = {}
        for record in self.records:
            longest[record.step] = max(longest.get(record.step, 0), record.tokens)
        return sum(longest.values())

    def remaining(self) -> int | None:
        """Tokens left under the run's and the request's caps, or ``None`` when uncapped."""
        left = [] if self.max_all_tokens is None else [self.max_all_tokens - self.all_tokens]
        if self.allowance is not None:
            left.append(self.allowance.limit - self.allowance.spent)
        return max(0, min(left)) if left else None

    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=self._billed_prompt_tokens,
            completion_tokens=sum(r.completion_tokens for r in self.records),
            calls=self._requests,
            rounds=max((r.round for r in self.records), default=0),
            drafts=sum(1 for r in self.records if r.role == "draft" and "failed" not in r.meta),
            sequential_tokens=self.sequential_tokens,
            all_tokens=self.all_tokens,
        )


def combine_parallel(usages: list[Usage]) -> Usage:
    """The usage of independent runs made side by side (one per answer of ``n``).

    They overlap in time, so the critical path is the longest run's.
    """
    return Usage(
        prompt_tokens=sum(u.prompt_tokens for u in usages),
        completion_tokens=sum(u.completion_tokens for u in usages),
        calls=sum(u.calls for u in usages),
        rounds=max((u.rounds for u in usages), default=0),
        drafts=sum(u.drafts for u in usages),
        sequential_tokens=max((u.sequential_tokens for u in usages), default=0),
        all_tokens=sum(u.all_tokens for u in usages),
    )

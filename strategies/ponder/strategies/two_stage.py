"""Kojima et al.'s two stages, shared by ``cot`` and ``plan_and_solve``.

Stage 1 writes the rationale after a trigger. When the rationale states no
answer, stage 2 repeats the prompt and rationale followed by the
answer-extraction trigger of the answer's format, and reads the answer from
that short completion.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from ponder.strategies import prompts
from ponder.strategies.answers import normalise, noting, read_answer, stated_answer
from ponder.strategies.base import Answer, StrategyContext, StrategyParams


class TwoStageParams(StrategyParams):
    extract_max_tokens: int = Field(
        32, ge=1, le=512, description="output tokens of the extraction call"
    )


async def reason_then_extract(
    ctx: StrategyContext,
    params: TwoStageParams,
    trigger: str,
    *,
    demos: Sequence[str] = (),
    round: int = 1,
) -> Answer:
    sampling = ctx.sampling_for(params)
    first = prompts.with_demos(demos, prompts.qa(ctx.question, trigger))
    rationale = await ctx.final(
        ctx.chat(first),
        role="draft",
        round=round,
        sampling=sampling,
        annotate=noting(params.answer_format),
    )
    answer = stated_answer(rationale.text, params.answer_format)
    if answer is not None:
        return Answer(
            rationale.text,
            rationale.finish_reason,
            normalise(answer),
            logprobs=rationale.logprobs,
            tokens=rationale.completion_tokens,
        )
    ctx.offer(Answer.from_choice(rationale, params.answer_format))
    answer_trigger = prompts.ANSWER_TRIGGERS[params.answer_format]
    second = prompts.with_demos(
        demos, prompts.extraction(ctx.question, trigger, rationale.text, answer_trigger)
    )
    joint = f"\n\n{answer_trigger} "
    extracted = await ctx.final(
        ctx.chat(second),
        role="extract",
        round=round,
        prefix=joint,
        sampling=ctx.auxiliary_sampling(params, max_tokens=params.extract_max_tokens),
        annotate=lambda choice: {"answer": _read(choice.text, params)},
    )
    # The trigger between the two calls was not generated: it has no log-probabilities.
    logprobs = None
    if rationale.logprobs is not None and extracted.logprobs is not None:
        logprobs = rationale.logprobs + extracted.logprobs
    return Answer(
        rationale.text + joint + extracted.text.lstrip(),
        extracted.finish_reason,
        _read(extracted.text, params),
        logprobs=logprobs,
        tokens=rationale.completion_tokens + extracted.completion_tokens,
    )


def _read(reply: str, params: StrategyParams) -> str | None:
    """The extraction reply's first answer of the format, normalised (Kojima et al.)."""
    answer = read_answer(reply, params.answer_format)
    return normalise(answer) if answer is not None else None

"""``successive``: Successive Prompting (Dua et al. 2022).

Alternate a decomposition call, which writes the next simple sub-question or
the stop signal "There are no more questions left to ask.", and an answering
call for that sub-question. The prompt accumulates ``Q1: / A1: / Q2: /
A2: ...`` under the complex question. At the signal, or after ``max_steps``
sub-questions, a last call answers the complex question from the pairs
(streamed to a streaming client). Worked decompositions configured on the
server (``successive_demos``) are shown to the decomposer as examples.
"""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import BaseModel, Field

from ponder.strategies import prompts
from ponder.strategies.answers import noting
from ponder.strategies.base import (
    Answer,
    Strategy,
    StrategyContext,
    StrategyParams,
    StrategyResult,
)
from ponder.strategies.details import Details
from ponder.strategies.limits import Limits

_STEP_LABEL = re.compile(r"^\s*(?:Q\d+\s*[:.)-]|Question\s*\d*\s*:)\s*", re.IGNORECASE)


class SuccessiveParams(StrategyParams):
    max_steps: int = Field(4, ge=1, le=16, description="sub-questions at most")
    step_max_tokens: int = Field(
        96, ge=8, le=1024, description="output tokens of each sub-question and sub-answer"
    )


def is_stop(text: str) -> bool:
    """Whether the decomposer gave the stop signal (however it is cased or punctuated)."""
    flat = " ".join(text.lower().split())
    return "no more questions" in flat


def sub_question(text: str) -> str:
    """The sub-question a decomposition call wrote: its first line, label removed."""
    for line in text.strip().splitlines():
        cleaned = _STEP_LABEL.sub("", line).strip()
        if cleaned:
            return cleaned
    return ""


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


class SubQuestion(BaseModel):
    question: str
    answer: str


class SuccessiveDetails(Details):
    pairs: list[SubQuestion]
    #: The decomposer said there was nothing left to ask (else ``max_steps`` ended it).
    stopped_by_signal: bool


class Successive(Strategy[SuccessiveParams]):
    name: ClassVar[str] = "successive"
    Params: ClassVar[type[SuccessiveParams]] = SuccessiveParams
    description: ClassVar[str] = "ask and answer simple sub-questions, then the question"

    def check_limits(self, limits: Limits, max_tokens: int) -> None:
        limits.check_rounds(self.params.max_steps + 1, "successive.max_steps")
        super().check_limits(limits, max_tokens)

    def planned_samples(self) -> int:
        return 2 * self.params.max_steps + 2

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        params = self.params
        step_sampling = ctx.sampling_for(params, max_tokens=params.step_max_tokens)
        demos = self._demos(ctx)
        pairs: list[tuple[str, str]] = []
        stopped = False
        for step in range(1, params.max_steps + 1):
            room = ctx.room(ctx.chat(prompts.decomposition(ctx.question, pairs, demos)))
            if room is not None and room < 3 * params.step_max_tokens:
                # Two calls for the sub-question and its answer, and the final answer after
                # them: a budget that cannot hold that goes to the final answer now.
                await ctx.progress(f"the budget leaves no room for sub-question {step}")
                break
            await ctx.progress(f"sub-question {step}")
            asked = await ctx.generate(
                ctx.chat(prompts.decomposition(ctx.question, pairs, demos)),
                role="decompose",
                round=step,
                sampling=step_sampling,
            )
            text = asked.choices[0].text
            question = sub_question(text)
            if is_stop(text) or not question:
                stopped = True
                break
            answered = await ctx.generate(
                ctx.chat(prompts.sub_answer(ctx.question, pairs, question)),
                role="answer",
                round=step,
                sampling=step_sampling,
            )
            pairs.append((question, first_line(answered.choices[0].text)))
        final = await ctx.final(
            ctx.chat(prompts.final_from_pairs(ctx.question, pairs)),
            role="answer",
            round=len(pairs) + 1,
            sampling=ctx.sampling_for(params),
            annotate=noting(params.answer_format),
        )
        return StrategyResult(
            answers=[Answer.from_choice(final, params.answer_format)],
            details=SuccessiveDetails(
                pairs=[SubQuestion(question=q, answer=a) for q, a in pairs],
                stopped_by_signal=stopped,
            ),
        )

    @staticmethod
    def _demos(ctx: StrategyContext) -> list[str]:
        rendered = []
        for example in ctx.resources.worked_decompositions():
            lines = [f"Complex question: {example.question}"]
            for i, (q, a) in enumerate(example.steps, 1):
                lines += [f"Q{i}: {q}", f"A{i}: {a}"]
            lines.append(prompts.NO_MORE_QUESTIONS)
            rendered.append("\n".join(lines))
        return rendered

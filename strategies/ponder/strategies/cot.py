"""``cot``: Chain-of-Thought — zero-shot (Kojima et al. 2022), few-shot, or Auto-CoT.

- ``zero_shot``: "Q: <question> / A: Let's think step by step.", then the
  answer-extraction call when the rationale states no answer.
- ``few_shot``: the same after demonstrations from a demo set the operator
  configured (``demos`` names it) or given inline (``demos`` is a list).
- ``auto``: demonstrations built by Auto-CoT (Zhang et al. 2023) from a
  question pool the operator configured (``pool``), cached on disk.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from ponder.strategies import prompts
from ponder.strategies.autocot import auto_demos
from ponder.strategies.base import (
    Strategy,
    StrategyContext,
    StrategyInputError,
    StrategyResult,
)
from ponder.strategies.demos import Demo, UnknownResource
from ponder.strategies.details import Details
from ponder.strategies.two_stage import TwoStageParams, reason_then_extract


class CotParams(TwoStageParams):
    mode: Literal["zero_shot", "few_shot", "auto"] = "zero_shot"
    demos: str | list[Demo] | None = Field(
        None, description="few_shot: a demo set configured on the server, by name, or a list"
    )
    n_demos: int = Field(8, ge=1, le=32, description="demonstrations to show (auto: clusters)")
    pool: str | None = Field(None, description="auto: a question pool configured on the server")

    @model_validator(mode="after")
    def _mode_has_its_inputs(self) -> CotParams:
        if self.mode == "few_shot" and not self.demos:
            raise ValueError("mode few_shot needs demos (a demo set's name, or a list)")
        if self.mode == "auto" and not self.pool:
            raise ValueError("mode auto needs pool (a question pool's name)")
        return self


class CotDetails(Details):
    #: Demonstrations shown before the question.
    demos: int


class Cot(Strategy[CotParams]):
    name: ClassVar[str] = "cot"
    Params: ClassVar[type[CotParams]] = CotParams
    description: ClassVar[str] = "Chain-of-Thought: zero-shot, few-shot or Auto-CoT"

    def planned_samples(self) -> int:
        # Auto-CoT's first build adds two calls per tried question; it is bounded
        # by the pool and paid once per pool, so it is not counted here.
        return 2

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        demos = await self._demos(ctx)
        rendered = [prompts.demo(d.question, d.rationale, d.answer) for d in demos]
        answer = await reason_then_extract(ctx, self.params, prompts.COT_TRIGGER, demos=rendered)
        details = CotDetails(demos=len(rendered)) if rendered else None
        return StrategyResult(answers=[answer], details=details)

    async def _demos(self, ctx: StrategyContext) -> list[Demo]:
        params = self.params
        if params.mode == "zero_shot":
            return []
        if params.mode == "auto":
            assert params.pool is not None
            return await auto_demos(ctx, params.pool, params.n_demos, params)
        if isinstance(params.demos, list):
            return params.demos[: params.n_demos]
        assert params.demos is not None
        try:
            return ctx.resources.demos(params.demos)[: params.n_demos]
        except UnknownResource as error:
            raise StrategyInputError(str(error)) from None

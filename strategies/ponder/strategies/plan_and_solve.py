"""``plan_and_solve``: Plan-and-Solve prompting (Wang et al. 2023), PS or PS+.

The trigger asks for a plan, then its execution; the answer is extracted as
in zero-shot CoT.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from ponder.strategies import prompts
from ponder.strategies.base import Strategy, StrategyContext, StrategyResult
from ponder.strategies.two_stage import TwoStageParams, reason_then_extract

TRIGGERS = {"ps": prompts.PS_TRIGGER, "ps_plus": prompts.PS_PLUS_TRIGGER}


class PlanAndSolveParams(TwoStageParams):
    variant: Literal["ps", "ps_plus"] = Field("ps_plus", description="PS or PS+ trigger")


class PlanAndSolve(Strategy[PlanAndSolveParams]):
    name: ClassVar[str] = "plan_and_solve"
    Params: ClassVar[type[PlanAndSolveParams]] = PlanAndSolveParams
    description: ClassVar[str] = "Plan-and-Solve (PS / PS+) with answer extraction"

    def planned_samples(self) -> int:
        return 2

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        trigger = TRIGGERS[self.params.variant]
        return StrategyResult(answers=[await reason_then_extract(ctx, self.params, trigger)])

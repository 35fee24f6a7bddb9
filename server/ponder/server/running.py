"""Running a plan: its strategy runs against a session of the engine pool, through the cache."""

from __future__ import annotations

from dataclasses import dataclass

from ponder.server.cache import Cache, CachingEngine
from ponder.server.engines.provider import EngineProvider
from ponder.server.planning import Plan
from ponder.strategies.base import DeltaSink
from ponder.strategies.demos import Resources
from ponder.strategies.engine import Engine, RewardModel
from ponder.strategies.limits import Limits
from ponder.strategies.pace import Paces
from ponder.strategies.reasoning import ReasoningSink
from ponder.strategies.runs import Run, run_jobs


@dataclass(frozen=True)
class Outcome:
    """A plan's runs, and whether every engine call they made was deterministic."""

    run: Run
    deterministic: bool


@dataclass(frozen=True)
class Runner:
    engines: EngineProvider
    cache: Cache | None
    limits: Limits
    resources: Resources
    reward: RewardModel | None = None
    paces: Paces | None = None

    async def run(
        self,
        plan: Plan,
        on_delta: DeltaSink | None = None,
        on_reasoning: ReasoningSink | None = None,
    ) -> Outcome:
        engine: Engine = self.engines.session(plan.selection.model)
        caching: CachingEngine | None = None
        if self.cache is not None:
            engine = caching = CachingEngine(engine, self.cache, plan.caching.mode)
        run = await run_jobs(
            plan.strategy,
            plan.jobs,
            engine=engine,
            sampling=plan.sampling,
            limits=self.limits,
            resources=self.resources,
            reward=self.reward,
            shape=plan.shape,
            reasoning=plan.reasoning,
            on_delta=on_delta,
            on_reasoning=on_reasoning,
            user_budget=plan.budget,
            deadline=plan.deadline,
            pace=None if self.paces is None else self.paces.of(plan.selection.model),
        )
        # A run its budget cut short depends on timing: never stored.
        deterministic = caching is not None and caching.deterministic and not run.stopped
        return Outcome(run, deterministic=deterministic)

"""Running a plan: its strategy runs against a session of the engine pool, through the cache."""

from __future__ import annotations

import time
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
        started = time.monotonic()
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
        self._compare_with_frontier(plan, run, time.monotonic() - started)
        # A run its budget cut short depends on timing: never stored.
        deterministic = caching is not None and caching.deterministic and not run.stopped
        return Outcome(run, deterministic=deterministic)

    def _compare_with_frontier(self, plan: Plan, run: Run, seconds: float) -> None:
        """Teach the model's pace how this run of a frontier's choice went against what the
        evaluation measured (one problem a run, as the evaluation ran them)."""
        info = plan.selection.budget_info
        if (
            self.paces is None
            or info is None
            or info.source != "frontier"
            or info.config is None
            or not info.expected
            or not info.latency_scale
            or len(plan.jobs) != 1
        ):
            return
        self.paces.of(plan.selection.model).record_frontier_run(
            config=info.config,
            measured_seconds=info.expected["latency_s"] / info.latency_scale,
            measured_tokens=info.expected["all_tokens"],
            seconds=seconds,
            tokens=run.usage.all_tokens,
        )

"""What one gateway process holds: settings, engines, strategies, cache, metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

from ponder.server.cache import Cache
from ponder.server.engines.provider import EngineProvider
from ponder.server.engines.reward import HTTPRewardModel
from ponder.server.eval_results import EvalBoard
from ponder.server.frontier import FrontierStore
from ponder.server.metrics import Metrics
from ponder.server.serving import CompletionServing
from ponder.server.settings import Settings
from ponder.strategies.registry import Registry


@dataclass
class Gateway:
    settings: Settings
    engines: EngineProvider
    registry: Registry
    metrics: Metrics = field(default_factory=Metrics)
    #: None when caching is off.
    cache: Cache | None = None
    #: The reward scorer's model; None when none is configured.
    reward: HTTPRewardModel | None = None
    #: Where evaluation results are kept for budget requests; None: nowhere.
    frontier: FrontierStore | None = None
    serving: CompletionServing = field(init=False)
    evals: EvalBoard = field(init=False)

    def __post_init__(self) -> None:
        self.serving = CompletionServing(
            self.settings,
            self.engines,
            self.registry,
            self.metrics,
            self.cache,
            self.reward,
            self.frontier,
        )
        self.evals = EvalBoard(self.metrics, self.settings.max_eval_series)

"""What one gateway process holds: settings, engines, strategies, metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

from ponder.server.engines.provider import EngineProvider
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
    serving: CompletionServing = field(init=False)

    def __post_init__(self) -> None:
        self.serving = CompletionServing(self.settings, self.engines, self.registry, self.metrics)

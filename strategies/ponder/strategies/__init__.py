"""Reasoning strategies: each plans engine calls and reports what they cost."""

from ponder.strategies.base import (
    Answer,
    Strategy,
    StrategyContext,
    StrategyParams,
    StrategyResult,
)
from ponder.strategies.budget import Budget, CallRecord, Usage
from ponder.strategies.engine import (
    Choice,
    Engine,
    EngineError,
    EngineRejected,
    EngineTimeout,
    EngineUnavailable,
    Generation,
    Message,
    Prompt,
    Sampling,
    StreamEnd,
    StreamEvent,
    TextDelta,
)
from ponder.strategies.limits import Limits, OverCap
from ponder.strategies.registry import Registry

__all__ = [
    "Answer",
    "Budget",
    "CallRecord",
    "Choice",
    "Engine",
    "EngineError",
    "EngineRejected",
    "EngineTimeout",
    "EngineUnavailable",
    "Generation",
    "Limits",
    "Message",
    "OverCap",
    "Prompt",
    "Registry",
    "Sampling",
    "Strategy",
    "StrategyContext",
    "StrategyParams",
    "StrategyResult",
    "StreamEnd",
    "StreamEvent",
    "TextDelta",
    "Usage",
]

"""The Python SDK of a Ponder server: ``Ponder`` (blocking) and ``AsyncPonder``.

Depends on httpx and pydantic only; it imports nothing of the server.
"""

from ponder.clients.client import AsyncPonder, Ponder
from ponder.clients.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    BadRequestError,
    GatewayTimeoutError,
    InternalServerError,
    NotFoundError,
    PonderError,
    RateLimitError,
    RequestTooLargeError,
    ServiceUnavailableError,
    StreamError,
)
from ponder.clients.models import (
    ChatCompletion,
    Finished,
    PonderInfo,
    PonderUsage,
    Progress,
    StrategyInfo,
    StreamEvent,
    TextChunk,
    TraceCall,
    Usage,
)
from ponder.clients.strategies import (
    PDR,
    SR,
    CoT,
    Custom,
    Direct,
    PlanAndSolve,
    SelfConsistency,
    Strategy,
    Successive,
)

__all__ = [
    "PDR",
    "SR",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncPonder",
    "BadRequestError",
    "ChatCompletion",
    "CoT",
    "Custom",
    "Direct",
    "Finished",
    "GatewayTimeoutError",
    "InternalServerError",
    "NotFoundError",
    "PlanAndSolve",
    "Ponder",
    "PonderError",
    "PonderInfo",
    "PonderUsage",
    "Progress",
    "RateLimitError",
    "RequestTooLargeError",
    "SelfConsistency",
    "ServiceUnavailableError",
    "Strategy",
    "StrategyInfo",
    "StreamError",
    "StreamEvent",
    "Successive",
    "TextChunk",
    "TraceCall",
    "Usage",
]

"""Where the gateway gets engines from: a pool of replicas, or fixed engines in tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ponder.strategies.engine import Engine


class EngineProvider(Protocol):
    @property
    def ready(self) -> bool:
        """Whether any engine answers now."""
        ...

    def models(self) -> list[str]: ...

    def session(self, model: str) -> Engine:
        """The engine every call of one client request goes to."""
        ...


class StaticEngines:
    """Engines by model name, always ready: for tests with the scripted engine."""

    def __init__(self, engines: Mapping[str, Engine]) -> None:
        self._engines = dict(engines)

    @property
    def ready(self) -> bool:
        return bool(self._engines)

    def models(self) -> list[str]:
        return sorted(self._engines)

    def session(self, model: str) -> Engine:
        return self._engines[model]

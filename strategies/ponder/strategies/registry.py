"""Strategies by name: the built-ins plus the entry-point group ``ponder.strategies``."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from importlib.metadata import entry_points
from typing import Any

from pydantic import ValidationError

from ponder.strategies.base import Strategy, StrategyParams
from ponder.strategies.best_of_n import BestOfN
from ponder.strategies.cot import Cot
from ponder.strategies.direct import Direct
from ponder.strategies.pdr import PDR
from ponder.strategies.plan_and_solve import PlanAndSolve
from ponder.strategies.self_consistency import SelfConsistency
from ponder.strategies.sr import SequentialRefinement
from ponder.strategies.successive import Successive

ENTRY_POINT_GROUP = "ponder.strategies"

logger = logging.getLogger(__name__)

StrategyType = type[Strategy[Any]]


class UnknownStrategy(LookupError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(f"unknown strategy {name!r}; known strategies: {', '.join(sorted(known))}")
        self.name = name


class InvalidParams(ValueError):
    """Strategy parameters that failed validation; ``param`` names the first bad field."""

    def __init__(self, message: str, param: str | None) -> None:
        super().__init__(message)
        self.param = param


def builtin_strategies() -> list[StrategyType]:
    return [
        Direct,
        Cot,
        PlanAndSolve,
        Successive,
        SelfConsistency,
        BestOfN,
        SequentialRefinement,
        PDR,
    ]


class Registry:
    """An immutable map from strategy name to strategy class."""

    def __init__(self, strategies: Iterable[StrategyType]) -> None:
        self._by_name: dict[str, StrategyType] = {}
        for strategy in strategies:
            if strategy.name in self._by_name:
                raise ValueError(f"two strategies are named {strategy.name!r}")
            self._by_name[strategy.name] = strategy

    @classmethod
    def default(cls, *, load_entry_points: bool = True) -> Registry:
        """The built-ins, then every installed plugin that loads."""
        strategies = builtin_strategies()
        if load_entry_points:
            names = {s.name for s in strategies}
            for plugin in _entry_point_strategies():
                if plugin.name in names:
                    logger.warning("plugin strategy %r is already registered; ignored", plugin.name)
                    continue
                names.add(plugin.name)
                strategies.append(plugin)
        return cls(strategies)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._by_name))

    def get(self, name: str) -> StrategyType:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownStrategy(name, self._by_name) from None

    def build(self, name: str, params: Mapping[str, Any]) -> Strategy[Any]:
        """The strategy ``name`` with ``params`` validated against its model."""
        strategy = self.get(name)
        return strategy(validate_params(strategy.Params, params))


def validate_params(model: type[StrategyParams], params: Mapping[str, Any]) -> StrategyParams:
    """``params`` as the strategy's model reads them from JSON, strictly: a count is a JSON
    integer (``"3"`` and ``true`` are refused), a flag a JSON boolean."""
    try:
        return model.model_validate_json(json.dumps(dict(params)), strict=True)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        raise InvalidParams(f"ponder.{location}: {first['msg']}", f"ponder.{location}") from None


def _entry_point_strategies() -> Iterator[StrategyType]:
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry_point.load()
        except Exception:
            logger.exception("strategy plugin %r failed to load", entry_point.name)
            continue
        if not (isinstance(loaded, type) and issubclass(loaded, Strategy)):
            logger.error("strategy plugin %r is not a Strategy subclass", entry_point.name)
            continue
        yield loaded

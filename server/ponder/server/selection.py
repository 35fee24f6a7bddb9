"""Which model and which strategy a request asks for, and under what budget.

Four ways, most explicit first: ``"ponder": {"strategy": ...}`` in the body
(the openai SDK's ``extra_body``); a model named ``<strategy>:<model>``;
``"ponder": {"budget": ...}``, for which the server picks the configuration;
and ``reasoning_effort``, which picks a preset (a budget or a strategy).
Otherwise the server's default. A budget given with a named strategy caps it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ponder.server.budget_choice import BudgetInfo
from ponder.server.errors import InvalidRequest
from ponder.server.protocol import PonderOptions
from ponder.server.settings import Preset
from ponder.strategies.base import StrategyParams
from ponder.strategies.registry import Registry
from ponder.strategies.user_budget import UserBudget

#: Picks the configuration a budget buys: (strategy, params, what was chosen and why).
BudgetChooser = Callable[[UserBudget], tuple[str, Mapping[str, Any], BudgetInfo]]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Selection:
    model: str
    strategy: str
    params: Mapping[str, Any] = field(default_factory=dict)
    #: The budget the run is held to (the request's, or its reasoning_effort's).
    budget: UserBudget | None = None
    #: What the budget chose and why (``ponder.details.budget``).
    budget_info: BudgetInfo | None = None


def named_strategy(model: str, options: PonderOptions, registry: Registry) -> bool:
    """Whether the request names its strategy (then a budget only caps it)."""
    prefix, _, plain_model = model.partition(":")
    return options.strategy is not None or bool(plain_model and prefix in registry)


def select(
    *,
    model: str,
    options: PonderOptions,
    reasoning_effort: str | None,
    registry: Registry,
    default_strategy: str,
    presets: Mapping[str, Preset],
    choose: BudgetChooser | None = None,
) -> Selection:
    ponder = options.strategy_params
    named = options.strategy
    budget = options.budget
    prefix, _, plain_model = model.partition(":")
    if plain_model and prefix in registry:
        if named is not None and named != prefix:
            raise InvalidRequest(
                f"the model names strategy {prefix!r} but ponder.strategy is {named!r}",
                param="ponder.strategy",
                code="invalid_parameter",
            )
        return _capped(Selection(plain_model, prefix, ponder), budget)
    if named is not None:
        return _capped(Selection(model, named, ponder), budget)
    if budget is None and reasoning_effort is not None:
        preset = presets.get(reasoning_effort)
        if preset is None:
            raise InvalidRequest(
                f"reasoning_effort must be one of {', '.join(sorted(presets))}",
                param="reasoning_effort",
                code="invalid_parameter",
            )
        budget = preset.budget
        if preset.strategy is not None and preset.strategy in registry:
            return Selection(model, preset.strategy, {**preset.params, **ponder})
    if budget is not None and choose is not None:
        own = sorted(set(ponder) - set(StrategyParams.model_fields))
        if own:
            raise InvalidRequest(
                f"strategy parameters ({', '.join(own)}) need a strategy named: with a budget "
                "alone the server picks the configuration (trace, max_tokens, temperature and "
                "answer_format apply to any)",
                param="ponder",
                code="invalid_parameter",
            )
        strategy, params, info = choose(budget)
        return Selection(model, strategy, {**params, **ponder}, budget, info)
    if preset_strategy_missing(reasoning_effort, presets, registry):
        logger.warning(
            "reasoning_effort=%s names a strategy that is not installed; using %r",
            reasoning_effort,
            default_strategy,
        )
    return _capped(Selection(model, default_strategy, ponder), budget)


def preset_strategy_missing(
    effort: str | None, presets: Mapping[str, Preset], registry: Registry
) -> bool:
    preset = presets.get(effort) if effort is not None else None
    return preset is not None and preset.strategy is not None and preset.strategy not in registry


def _capped(selection: Selection, budget: UserBudget | None) -> Selection:
    if budget is None:
        return selection
    info = BudgetInfo(budget=budget.model_dump(exclude_none=True), source="named")
    return Selection(selection.model, selection.strategy, selection.params, budget, info)
